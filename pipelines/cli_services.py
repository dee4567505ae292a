"""`retailpulse services …` and `retailpulse db …`: backing services and the schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.settings import get_settings
from pipelines.console import console

services_app = typer.Typer(
    help="Start, stop and inspect the backing services.", no_args_is_help=True
)
db_app = typer.Typer(help="Warehouse schema migrations.", no_args_is_help=True)


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
    from alembic.util import CommandError

    from core import migrate

    if not revision.strip():
        raise typer.BadParameter("give a revision, e.g. head", param_hint="--revision")
    try:
        migrate.upgrade(revision=revision)
    except CommandError as exc:  # an unknown or ambiguous revision: Alembic's own words
        raise typer.BadParameter(
            f"{exc} (`head` is the newest; the revisions are core/migrations/versions/*.py)",
            param_hint="--revision",
        ) from None
    console.print(f"warehouse schema at revision [bold]{migrate.current()}[/]")
