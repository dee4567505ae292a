"""`retailpulse score {segments,churn,recommendations,forecasts,anomalies,all}`: batch scoring.

Each command scores every entity of a model with Ray Data and writes the rows to the
`predictions` table and to Redis (`pred:{tenant}:{model}:{entity}`). It joins the Ray cluster
of RETAILPULSE_RAY_ADDRESS or RAY_ADDRESS when set (so `ray job submit -- retailpulse score
all` runs on the job's cluster), else starts a local Ray.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.errors import ValidationFailed
from pipelines.console import console
from pipelines.options import TenantOpt

app = typer.Typer(
    help="Batch-score every customer, household, series or store-day with Ray Data; write the "
    "scores to PostgreSQL (`predictions`) and Redis for serving.",
    no_args_is_help=True,
)
VersionOpt = Annotated[
    int | None,
    typer.Option("--model-version", help="Registered version to score (default: the champion)."),
]
# The ranges are checked while parsing, so a bad value is a usage error (exit 2) even for
# `score all`, which would otherwise skip every model on the job's ValidationFailed and exit 0.
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, help="Rows per Ray Data batch (default per model)."),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency", min=1, help="Scoring tasks at once (default: the cluster's CPUs)."
    ),
]
LimitOpt = Annotated[int, typer.Option(min=1, max=100, help="Products kept per household.")]
HorizonOpt = Annotated[int, typer.Option(min=1, max=8, help="Weeks forecast per series.")]
DaysOpt = Annotated[int, typer.Option(min=1, max=92, help="Most recent business days scanned.")]


def _line(summary: dict[str, Any]) -> None:
    if "skipped" in summary:
        console.print(f"[yellow]{summary['target']}: skipped[/] — {summary['skipped']}")
        return
    console.print(
        f"[green]{summary['target']}[/]: {summary['rows']:,} rows from {summary['inputs']:,} "
        f"inputs · {summary['model']} v{summary['version']} (run {summary['run_id'][:8]}) · "
        f"{summary['seconds']:.1f} s · tenant {summary['tenant']}"
    )


def _run(target: str, **options: Any) -> dict[str, Any]:
    from pipelines.jobs import score as jobs

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{target}: starting", total=None)

        def on_step(text: str) -> None:
            progress.update(task, description=text)

        def on_progress(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        summary = jobs.score_model(target, on_step=on_step, on_progress=on_progress, **options)
    _line(summary)
    return summary


def _command(target: str, title: str, extra: str = "") -> None:
    def command(
        tenant: TenantOpt = None,
        model_version: VersionOpt = None,
        batch_size: BatchOpt = None,
        concurrency: ConcurrencyOpt = None,
        limit: LimitOpt = 20,
        horizon: HorizonOpt = 4,
        days: DaysOpt = 28,
    ) -> dict[str, Any]:
        return _run(
            target,
            tenant=tenant,
            version=model_version,
            batch_size=batch_size,
            concurrency=concurrency,
            limit=limit,
            horizon=horizon,
            days=days,
        )

    command.__doc__ = f"Score {title}.{extra}"
    app.command(target)(command)


_command("segments", "every customer's segment (id and label) from their newest RFM features")
_command("churn", "every customer's churn probability, risk band and top drivers")
_command(
    "recommendations",
    "every household's top --limit products from its precomputed candidate set",
)
_command("forecasts", "p10/p50/p90 units for the forecaster's series over --horizon weeks")
_command("anomalies", "the store-days of the last --days the detector flags")


@app.command("all")
def score_all(
    tenant: TenantOpt = None,
    model_version: VersionOpt = None,
    batch_size: BatchOpt = None,
    concurrency: ConcurrencyOpt = None,
    limit: LimitOpt = 20,
    horizon: HorizonOpt = 4,
    days: DaysOpt = 28,
) -> list[dict[str, Any]]:
    """Score every model that has a champion; say which were skipped and why."""
    if model_version is not None:
        raise ValidationFailed(
            "--model-version applies to one model; `score all` scores every champion",
            details={"model_version": model_version},
        )
    from pipelines.jobs import score as jobs

    out = []
    for target in jobs.TARGETS:
        try:
            out.append(
                _run(
                    target,
                    tenant=tenant,
                    batch_size=batch_size,
                    concurrency=concurrency,
                    limit=limit,
                    horizon=horizon,
                    days=days,
                )
            )
        except jobs.SKIPPABLE as exc:
            summary = {"target": target, "skipped": exc.message}
            _line(summary)
            out.append(summary)
    done = [s["target"] for s in out if "skipped" not in s]
    skipped = [s["target"] for s in out if "skipped" in s]
    console.print(
        f"scored: {', '.join(done) or 'none'}"
        + (f"; skipped: {', '.join(skipped)}" if skipped else "")
    )
    return out
