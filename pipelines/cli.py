"""The `retailpulse` command line: the root app mounting one thin sub-app per domain.

Only this module imports the `cli_*` modules; they import job functions (`pipelines/jobs/`,
`pipelines/ingest.py`) and never each other's modules back, so there is no import cycle.
"""

from __future__ import annotations

import sys

import typer

from core.errors import RetailPulseError
from pipelines import cli_demo, cli_features, cli_ingest, cli_serve, cli_services, cli_train
from pipelines.console import console
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
app.command("serve")(cli_serve.serve_cmd)
app.command("mlflow-ui")(cli_serve.mlflow_ui)
app.command("demo")(cli_demo.demo)


def main() -> None:
    """Entry point: our errors become one clear line and a non-zero exit."""
    quiet_third_party()
    try:
        app(standalone_mode=True)
    except RetailPulseError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
