"""`retailpulse ingest …`: load data into the warehouse."""

from __future__ import annotations

from pathlib import Path
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
    """Load the 84.51° Complete Journey data (1.47M line items) through its mapping
    (configs/mappings/completejourney.yaml, the checks of `ingest file`) with COPY, idempotently."""
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
    from pipelines.quality import MESSAGES

    for rule, n in summary.rejected.items():
        console.print(f"[red]rejected[/] {n:,} line(s): {rule} ({MESSAGES.get(rule, rule)})")
    if summary.rejected_file:
        console.print(f"rejected rows written to {summary.rejected_file}")
    return summary


@app.command("file")
def ingest_file(
    paths: Annotated[
        list[Path],
        typer.Argument(help="CSV, Parquet (.parquet) or Excel (.xlsx) exports, one or more."),
    ],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            help="Mapping YAML: which columns are which fields (configs/mappings/*.yaml; "
            "docs/mappings.md).",
        ),
    ],
    tenant: TenantOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and report only; write nothing.")
    ] = False,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Abort the load (nothing written) when more than this share of a file's rows "
            "is rejected, e.g. 0.05.",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where rejected.csv and report.json go "
            "(default: RETAILPULSE_HOME/reports/<time>/)."
        ),  # fmt: skip
    ] = None,
) -> None:
    """Import retailer exports through a mapping, with a data-quality report.

    Every row is checked (types, missing values, duplicates in the file and against the warehouse, business rules) before anything is written; each file loads in one transaction and re-running a file changes nothing. Rejected rows go to the report (CSV and JSON).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from core import migrate
    from core.errors import ValidationFailed
    from pipelines.import_report import print_summary
    from pipelines.ingest_file import RejectRateExceeded, ingest_files
    from pipelines.mapping import load_mapping

    tenant = tenant or get_settings().tenant
    try:
        spec = load_mapping(mapping)
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.message, param_hint="--mapping") from exc
    migrate.upgrade()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, advance: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], advance=advance)

        try:
            summary, _ = ingest_files(
                paths, spec, tenant=tenant, dry_run=dry_run, max_reject_rate=max_reject_rate,
                report_dir=report_dir, progress=tick,
            )  # fmt: skip
        except RejectRateExceeded as exc:
            bar.stop()
            print_summary(exc.summary)
            console.print(f"[red]aborted:[/] {exc.message}")
            raise typer.Exit(2) from exc
        except ValidationFailed as exc:
            bar.stop()
            console.print(f"[red]error:[/] {exc.message}")
            raise typer.Exit(2) from exc
    print_summary(summary)
