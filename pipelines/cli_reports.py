"""`retailpulse reports {templates,generate,run-scheduler}`: reports from the command line.

`generate` writes one report straight to a file (nothing is stored in the `reports` table);
`run-scheduler` is the foreground scheduler loop for a cluster job (the API process runs the
same loop unless RETAILPULSE_REPORTS_SCHEDULER=false).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.console import console
from pipelines.options import TenantOpt

app = typer.Typer(
    help="Reports: sales summary, store comparison, forecast accuracy, segment profile and "
    "alert digest as PDF, Excel, CSV or JSON; the report scheduler.",
    no_args_is_help=True,
)
FORMAT_HELP = "pdf, xlsx, csv (the main table), zip (every table as CSV) or json"


def _params(
    start: str | None,
    end: str | None,
    last_days: int | None,
    stores: str | None,
    param: list[str] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: use KEY=VALUE, e.g. topN=20", param_hint="--param")
        params[key.strip()] = value.strip()
    if start:
        params["from"] = start
    if end:
        params["to"] = end
    if last_days is not None:
        params["lastDays"] = last_days
    if stores:
        params["stores"] = [s.strip() for s in stores.split(",") if s.strip()]
    return params


@app.command("templates")
def templates_cmd() -> None:
    """List the report templates, their parameters and the output formats."""
    from reports.formats import FORMATS
    from reports.templates import TEMPLATES

    table = Table(title="Report templates", show_lines=True)
    for column in ("template", "what it shows", "parameters"):
        table.add_column(column)
    for t in TEMPLATES.values():
        props = t.params.model_json_schema(by_alias=True).get("properties", {})
        table.add_row(t.name, t.description, ", ".join(props))
    console.print(table)
    console.print("formats: " + ", ".join(f"{f.name} ({f.description})" for f in FORMATS.values()))


@app.command("generate")
def generate_cmd(
    template: Annotated[
        str, typer.Argument(help="Template name (see `retailpulse reports templates`).")
    ],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "pdf",
    start: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC).")] = None,
    last_days: Annotated[
        int | None, typer.Option("--last-days", help="Instead of --from: this many days to --to.")
    ] = None,
    stores: Annotated[
        str | None, typer.Option("--stores", help="Comma-separated store ids (default: all).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A template parameter KEY=VALUE (repeatable), e.g. topN=20."),
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Generate one report from the warehouse and write it to --out."""
    from core.db import connect
    from core.errors import ValidationFailed
    from core.settings import get_settings
    from reports.runner import generate

    tenant = tenant or get_settings().tenant
    params = _params(start, end, last_days, stores, param)
    if out.is_dir():  # checked before the report is computed, not when writing it
        raise typer.BadParameter(f"{out} is a directory: give a file name", param_hint="--out")
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{template}: connecting", total=None)

        def step(text: str) -> None:
            progress.update(task, description=f"{template}: {text}")

        with connect() as conn:
            made = generate(conn, tenant=tenant, template=template, params=params, fmt=fmt,
                            step=step)  # fmt: skip
        step("writing")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(made.content)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and exc.filename != str(out) else ""
            raise ValidationFailed(
                f"cannot write {out}: {exc.strerror or exc}{where}", details={"out": str(out)}
            ) from exc
    console.print(
        f"[green]{made.title}[/] ({template}, tenant {tenant}) → {out} "
        f"({len(made.content):,} bytes, {made.content_type.split(';')[0]})"
    )


@app.command("run-scheduler")
def run_scheduler_cmd(
    poll_seconds: Annotated[
        float | None,
        typer.Option(help="Seconds between looks for due schedules (at most a day, 86400)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
) -> None:
    """Run due report schedules in the foreground until interrupted (safe beside others)."""
    from core.db import database_url
    from reports.config import ReportSettings
    from reports.scheduler import Scheduler, tick

    settings = ReportSettings()
    if poll_seconds is not None:
        # nan slipped through `<= 0` (a busy loop); inf crashed the wait after the first pass
        if not 0 < poll_seconds <= 86_400:
            raise typer.BadParameter(
                f"{poll_seconds:g}: must be a number of seconds > 0 and at most 86400",
                param_hint="--poll-seconds",
            )
        settings = settings.model_copy(update={"poll_seconds": poll_seconds})
    url = database_url()

    def show(claimed: list[Any]) -> None:
        for c in claimed:
            console.print(f"{datetime.now():%H:%M:%S} schedule {c.schedule_id} (tenant "
                          f"{c.tenant}) → report {c.report_id}")  # fmt: skip

    if once:
        show(tick(url, settings=settings))
        return
    console.print(f"report scheduler: polling every {settings.poll_seconds:g} s (Ctrl-C stops)")
    Scheduler(lambda: url, settings).run_forever(on_tick=show)
