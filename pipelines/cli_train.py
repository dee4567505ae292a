"""`retailpulse train …`: tune, register and promote models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.settings import get_settings
from pipelines.options import TenantOpt

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome, TuneOutcome

console = Console()
app = typer.Typer(
    help="Train models with Ray Tune, track and register them in MLflow.", no_args_is_help=True
)

# --quick: a smoke-sized search that still exercises the whole path (about a minute here).
QUICK_OVERRIDES: dict[str, Any] = {"k_values": [3, 4, 5], "pca_components": [3], "n_init": 3}


def _trials_table(outcome: TuneOutcome) -> Table:
    table = Table(title="Segmenter trials (silhouette on held-back customers)")
    for col in ("k", "PCA", "silhouette", "inertia", "fit s", ""):
        table.add_column(col, justify="right" if col else "left")
    ranked = sorted(
        outcome.trials, key=lambda t: -(t.silhouette if t.silhouette is not None else float("-inf"))
    )
    for t in ranked:
        best = t == outcome.best
        table.add_row(
            str(t.k),
            str(t.n_components),
            f"{t.silhouette:.4f}" if t.silhouette is not None else "—",
            f"{t.inertia:,.1f}" if t.inertia is not None else "—",
            f"{t.fit_seconds:.2f}" if t.fit_seconds is not None else "—",
            "[bold green]best[/]" if best else (f"[red]{t.error}[/]" if t.error else ""),
            style="bold" if best else None,
        )
    return table


def _segments_table(outcome: TuneOutcome) -> Table:
    table = Table(title=f"Segments (k={outcome.best.k}, {outcome.n_rows:,} customers)")
    for col in ("id", "label", "customers", "share", "recency d", "frequency", "monetary"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for p in outcome.profiles:
        m = p["means"] or {}
        table.add_row(
            str(p["id"]),
            p["label"],
            f"{p['size']:,}",
            f"{p['share']:.1%}",
            f"{m.get('recency_days', 0):.0f}",
            f"{m.get('frequency', 0):.1f}",
            f"{m.get('monetary', 0):,.0f}",
        )
    return table


@app.command("segmenter")
def segmenter(
    tenant: TenantOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Tune config YAML (default: configs/segmenter.yaml)."),
    ] = None,
    max_trials: Annotated[
        int | None,
        typer.Option(help="Trial budget: run a seeded subset of the k x PCA grid."),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="Smoke-sized search: k 3-5, PCA 3, 3 K-Means restarts.")
    ] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Train on features as known at this time (UTC if no zone)."),
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Register the best model and promote it if it beats the champion.")
    ] = True,
) -> dict[str, Any]:
    """Tune the K-Means + PCA customer segmenter, log it to MLflow, register and promote it."""
    from core.ray_runtime import ensure_ray
    from features.offline import training_frame
    from training.config import load_segmenter_config
    from training.registry import register_and_promote
    from training.segmenter import tune_segmenter

    tenant = tenant or get_settings().tenant
    overrides = {**(QUICK_OVERRIDES if quick else {}), "max_trials": max_trials}
    cfg = load_segmenter_config(config, **overrides)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)

    with console.status(f"loading features of tenant {tenant!r} …"):
        frame = training_frame(tenant=tenant, as_of=as_of)
    if frame.empty:
        console.print(
            f"[bold red]error:[/] no customer features for tenant {tenant!r}; run "
            "`retailpulse features materialize` first"
        )
        raise typer.Exit(1)
    frame = frame.set_index("customer_id")
    console.print(f"{len(frame):,} customers x {frame.shape[1]} features")

    with console.status("starting Ray …"):
        ensure_ray()
    n_trials = len(cfg.grid())
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"tuning {n_trials} trials (k x PCA)", total=n_trials)

        def on_trial(t: TrialOutcome) -> None:
            score = f"{t.silhouette:.4f}" if t.silhouette is not None else t.error
            progress.console.print(f"  k={t.k} PCA={t.n_components}: silhouette {score}")
            progress.advance(task)

        outcome = tune_segmenter(frame, cfg, tenant=tenant, on_trial=on_trial)
        progress.update(task, description="tuned; refit on all customers and logged to MLflow")

    console.print(_trials_table(outcome))
    console.print(_segments_table(outcome))
    summary: dict[str, Any] = {
        "tenant": tenant,
        "customers": outcome.n_rows,
        "trials": len(outcome.trials),
        "best_k": outcome.best.k,
        "best_n_components": outcome.best.n_components,
        "silhouette": outcome.silhouette,
        "run_id": outcome.run_id,
        "seconds": round(outcome.duration_s, 1),
    }
    if promote:
        with console.status("registering in MLflow …"):
            result = register_and_promote(
                outcome.run_id,
                outcome.silhouette,
                holdout=outcome.holdout,
                sample_size=cfg.sample_size,
                seed=cfg.seed,
            )
        summary.update(
            version=result["version"], promoted=result["promoted"], reason=result["reason"]
        )
        mark = "[bold green]promoted to champion[/]" if result["promoted"] else "[yellow]kept[/]"
        console.print(f"model version {result['version']}: {mark} — {result['reason']}")
    console.print(
        f"MLflow run {outcome.run_id} ({summary['seconds']} s); "
        "browse it with `retailpulse mlflow-ui`"
    )
    return summary
