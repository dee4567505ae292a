"""The `retailpulse` command line: one sub-app per domain."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import RetailPulseError
from core.settings import get_settings
from pipelines.ingest import IngestSummary
from pipelines.options import TenantOpt

console = Console()
app = typer.Typer(
    help="RetailPulse: warehouse, feature store, training and serving for retail data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(
    help="Start, stop and inspect the backing services.", no_args_is_help=True
)
db_app = typer.Typer(help="Warehouse schema migrations.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load data into the warehouse.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a clear error and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# ----------------------------------------------------------------------------- services


@services_app.command("up")
def services_up() -> None:
    """Start the embedded services that are not configured by URL (reuses running ones)."""
    from core.services import get_endpoints

    ep = get_endpoints()
    services_status()
    if ep.embedded:
        console.print(f"embedded: {', '.join(ep.embedded)} (state in {get_settings().home_dir})")


@services_app.command("down")
def services_down(
    purge: Annotated[bool, typer.Option(help="Also delete the embedded services' data.")] = False,
) -> None:
    """Stop the embedded services started under RETAILPULSE_HOME."""
    from core.services import stop_embedded, wipe_embedded

    if purge:
        wipe_embedded()
        console.print("stopped and purged embedded services")
        return
    for name, was_running in stop_embedded().items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@services_app.command("status")
def services_status() -> None:
    """Show what runs where (never starts anything)."""
    from core.services import status

    table = Table("service", "mode", "url", "up")
    for row in status():
        table.add_row(row["service"], row["mode"], row["url"], "yes" if row["up"] else "no")
    console.print(table)


# ----------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target Alembic revision.")] = "head",
) -> None:
    """Create or migrate the warehouse schema (idempotent)."""
    from core import migrate

    migrate.upgrade(revision=revision)
    console.print(f"warehouse schema at revision [bold]{migrate.current()}[/]")


# ----------------------------------------------------------------------------- ingest


@ingest_app.command("completejourney")
def ingest_completejourney(
    households: Annotated[
        int | None,
        typer.Option(min=1, help="Load only the first N households (default: all 2,469)."),
    ] = None,
    tenant: TenantOpt = None,
    force: Annotated[
        bool, typer.Option(help="Re-check every row even if this scope was loaded before.")
    ] = False,
) -> IngestSummary:
    """Load the 84.51° Complete Journey data (1.47M line items) with COPY, idempotently."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from core import migrate
    from pipelines.ingest import ingest_completejourney as run
    from pipelines.ingest import table_counts

    tenant = tenant or get_settings().tenant
    migrate.upgrade()
    tasks: dict[str, int] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:

        def tick(stage: str, advance: int, total: int) -> None:
            key = "dimensions" if stage != "transaction_items" else stage
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=total)
            bar.update(tasks[key], advance=advance)

        summary = run(
            tenant=tenant,
            households=households,
            force=force,
            progress=tick,
            rejected_dir=get_settings().home_dir / "rejected",
        )
    if summary.skipped:
        console.print(f"[yellow]already loaded[/] ({summary.scope}, tenant {tenant}); "
                      "use --force to re-check every row")  # fmt: skip
    counts = table_counts(tenant=tenant)
    table = Table("table", "written now", f"rows for tenant {tenant}", title="ingest summary")
    for name, total in counts.items():
        written = "-" if summary.skipped else f"{summary.written.get(name, 0):,}"
        table.add_row(name, written, f"{total:,}")
    console.print(table)
    for reason, n in summary.rejected.items():
        console.print(f"[red]rejected[/] {n} line(s): {reason}")
    if summary.rejected_file:
        console.print(f"rejected rows written to {summary.rejected_file}")
    return summary


def _mount_optional() -> None:
    """Mount the sub-apps that live in their own modules."""
    from pipelines import cli_features, cli_serve, cli_train

    app.add_typer(cli_features.app, name="features")
    app.add_typer(cli_train.app, name="train")
    cli_serve.register(app)


_mount_optional()


def _quiet_third_party_warnings() -> None:
    """Deprecation chatter from libraries we pin is noise to a retailer's data team."""
    import warnings

    warnings.filterwarnings("ignore", message=".*noload.*loader strategy")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(feast|mlflow|ray)\.")


def main() -> None:
    """Entry point: turns our errors into a one-line message and a non-zero exit."""
    _quiet_third_party_warnings()
    try:
        app(standalone_mode=True)
    except RetailPulseError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
