"""The `retailpulse` command line: the root app mounting one thin sub-app per domain.

Only this module imports the `cli_*` modules; they import job functions (`pipelines/jobs/`,
`pipelines/ingest.py`) and never each other's modules back, so there is no import cycle.
"""

from __future__ import annotations

import logging
import sys

import typer

from core.errors import RetailPulseError
from pipelines import (
    cli_alerts,
    cli_demo,
    cli_features,
    cli_ingest,
    cli_models,
    cli_reports,
    cli_score,
    cli_serve,
    cli_services,
    cli_stream,
    cli_train,
    cli_users,
)
from pipelines.console import console
from pipelines.logs import capture_stderr
from pipelines.quiet import quiet_third_party

app = typer.Typer(
    help="RetailPulse: warehouse, feature store, training and serving for retail data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_services.services_app, name="services")
app.add_typer(cli_services.db_app, name="db")
app.add_typer(cli_ingest.app, name="ingest")
app.add_typer(cli_features.app, name="features")
app.add_typer(cli_train.app, name="train")
app.add_typer(cli_models.app, name="models")
app.add_typer(cli_score.app, name="score")
app.add_typer(cli_alerts.app, name="alerts")
app.add_typer(cli_reports.app, name="reports")
app.command("serve")(cli_serve.serve_cmd)
app.command("mlflow-ui")(cli_serve.mlflow_ui)
app.add_typer(cli_users.app, name="users")
app.command("demo")(cli_demo.demo)
app.command("consume")(cli_stream.consume_cmd)
app.command("produce-sample")(cli_stream.produce_sample_cmd)


# Long-running commands: library output (Ray, MLflow, Feast, Lightning) goes to a log file.
LOGGED = {"demo", "train", "serve", "features", "ingest", "score", "consume", "produce-sample"}


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(UsageError, Abort, Exit) classes of click and of the click Typer vendors (typer._click
    in recent Typer): a command raises the vendored ones, so catching only click's let a
    usage error through as a traceback."""
    import click

    kinds: list[tuple[type, type, type]] = [
        (click.exceptions.UsageError, click.exceptions.Abort, click.exceptions.Exit)
    ]
    try:
        from typer._click.exceptions import UsageError
    except ImportError:  # pragma: no cover - older Typer uses click itself
        pass
    else:
        kinds.append((UsageError, typer.Abort, typer.Exit))
    usage, abort, leave = zip(*kinds, strict=True)
    return tuple(usage), tuple(abort), tuple(leave)


def main() -> None:
    """Entry point: our errors become one clear line and a non-zero exit.

    For long-running commands, everything libraries print to stderr goes to
    `RETAILPULSE_HOME/logs/<command>-<time>.log`; a failure prints one line and that path.
    """
    usage, abort, leave = _click_exceptions()
    quiet_third_party()
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    log_path = None
    if command in LOGGED and not {"--help", "-h"} & set(sys.argv):
        log_path = capture_stderr(command)
    try:
        # Without standalone mode click returns an Exit's code (or the command's value).
        code = app(standalone_mode=False)
    except usage as exc:  # a bad command, option or argument: click's own message, exit 2
        exc.show(file=sys.stdout)
        sys.exit(exc.exit_code)
    except (*abort, KeyboardInterrupt):
        console.print("aborted")
        sys.exit(130)
    except leave as exc:
        sys.exit(exc.exit_code)
    except RetailPulseError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        if log_path:
            console.print(f"full log: {log_path}")
        sys.exit(2)
    except Exception as exc:
        logging.getLogger("retailpulse").exception("command failed")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        console.print(f"[bold red]error:[/] {type(exc).__name__}: {reason}")
        console.print(f"full log: {log_path}" if log_path else "")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
