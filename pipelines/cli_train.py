"""`retailpulse train {segmenter,forecaster,all}`: tune, register and promote models."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.console import console
from pipelines.jobs import train as jobs
from pipelines.options import TenantOpt

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome, TuneOutcome

app = typer.Typer(
    help="Train models on Ray, track them in MLflow, register and promote the better one.",
    no_args_is_help=True,
)
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Config YAML (default: configs/<model>.yaml).")
]
QuickOpt = Annotated[bool, typer.Option(help="Smoke-sized budget that still runs every step.")]
PromoteOpt = Annotated[
    bool, typer.Option(help="Register the result and promote it if it beats the champion.")
]


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


def _print_promotion(summary: dict[str, Any]) -> None:
    if "version" not in summary:
        return
    mark = "[bold green]promoted to champion[/]" if summary["promoted"] else "[yellow]kept[/]"
    console.print(f"{summary['name']} v{summary['version']}: {mark} — {summary['reason']}")


@app.command("segmenter")
def segmenter(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    max_trials: Annotated[
        int | None, typer.Option(help="Trial budget: run a seeded subset of the k x PCA grid.")
    ] = None,
    quick: QuickOpt = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Train on features as known at this time (UTC if no zone)."),
    ] = None,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Tune the K-Means + PCA customer segmenter with Ray Tune, log it to MLflow, promote it."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("segmenter: loading features", total=None)

        def on_step(text: str) -> None:
            progress.update(task, description=f"segmenter: {text}")

        def on_trial(t: TrialOutcome) -> None:
            score = f"{t.silhouette:.4f}" if t.silhouette is not None else t.error
            progress.console.print(f"  k={t.k} PCA={t.n_components}: silhouette {score}")
            progress.advance(task)

        summary = jobs.train_segmenter(
            tenant=tenant,
            config=config,
            max_trials=max_trials,
            quick=quick,
            as_of=as_of,
            promote=promote,
            on_trial=on_trial,
            on_step=on_step,
        )
        progress.update(task, description="segmenter: done")
    outcome = summary["outcome"]
    console.print(_trials_table(outcome))
    console.print(_segments_table(outcome))
    _print_promotion(summary)
    console.print(
        f"MLflow run {summary['run_id']} ({summary['seconds']} s); "
        "browse it with `retailpulse mlflow-ui`"
    )
    return summary


@app.command("all")
def train_all(
    tenant: TenantOpt = None,
    quick: QuickOpt = False,
    promote: PromoteOpt = True,
) -> dict[str, dict[str, Any]]:
    """Train every model of the platform in turn (each with its default config)."""
    results: dict[str, dict[str, Any]] = {}
    for name, command in COMMANDS.items():
        console.rule(f"[bold]train {name}")
        results[name] = command(tenant=tenant, quick=quick, promote=promote)
    return results


COMMANDS = {"segmenter": segmenter}


@app.command("forecaster")
def forecaster(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    tune: Annotated[
        bool, typer.Option(help="Search LSTM hyperparameters with Ray Tune + ASHA.")
    ] = True,
    challenger: Annotated[
        bool | None, typer.Option(help="Also judge the TFT challenger (default: not with --quick).")
    ] = None,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Train the demand forecaster: LSTM on Ray Train vs LightGBM, TFT and naive baselines."""
    with console.status("forecaster …") as status:
        summary = jobs.train_forecaster(
            tenant=tenant,
            config=config,
            quick=quick,
            tune=tune,
            challenger=challenger,
            promote=promote,
            on_step=lambda t: status.update(f"forecaster: {t} …"),
        )
    console.print(_forecast_table(summary))
    _print_promotion(summary)
    console.print(
        f"MLflow run {summary['run_id']} ({summary['seconds']} s); "
        "browse it with `retailpulse mlflow-ui`"
    )
    return summary


def _forecast_table(summary: dict[str, Any]) -> Table:
    w = summary["window"]
    table = Table(
        title=f"Forecasters on {w['n_series']} series (test: weeks {w['origins']['test'] + 1}.."
        f"{w['last_week']}; selection on inner validation)"
    )
    for col in ("model", "val MASE", "test MASE", "test WAPE", "test MAE", "p10-p90 cover", ""):
        table.add_column(col, justify="left" if col == "model" else "right")
    val, test = summary["table"]["inner_validation"], summary["table"]["test"]
    for name in sorted(test, key=lambda n: val[n]["MASE"]):
        chosen = name == summary["selected"]
        table.add_row(
            name,
            f"{val[name]['MASE']:.3f}",
            f"{test[name]['MASE']:.3f}",
            f"{test[name]['WAPE']:.1f}%",
            f"{test[name]['MAE']:.3f}",
            f"{test[name]['coverage_p10_p90']:.1f}%",
            "[bold green]selected[/]" if chosen else "",
            style="bold" if chosen else None,
        )
    return table


COMMANDS["forecaster"] = forecaster
