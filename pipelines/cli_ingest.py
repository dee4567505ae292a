"""`retailpulse ingest …`: load data into the warehouse."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from core.settings import get_settings
from pipelines.console import console
from pipelines.ingest import IngestSummary
from pipelines.options import TenantOpt

app = typer.Typer(help="Load data into the warehouse.", no_args_is_help=True)


@app.command("completejourney")
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
