"""`retailpulse train {segmenter,forecaster,all}`: tune, register and promote models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines import train_tables as tables
from pipelines.console import console
from pipelines.jobs import train as jobs
from pipelines.options import TenantOpt

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome

app = typer.Typer(
    help="Train models on Ray, track them in MLflow, register and promote the better one.",
    no_args_is_help=True,
)


def _check_config(path: Path | None) -> Path | None:
    """--config must be a readable YAML file holding a mapping (its keys are checked by the
    model's loader): anything else is a usage error before any service or Ray starts."""
    import yaml

    if path is None:
        return None
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise typer.BadParameter(f"{path} {why}: give a YAML file like configs/<model>.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8 text
        reason = str(exc)
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            mark = exc.problem_mark
            reason = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        raise typer.BadParameter(f"cannot read {path} as YAML: {reason}") from None
    if raw is not None and not isinstance(raw, dict):
        raise typer.BadParameter(
            f"{path} holds a {type(raw).__name__}: a config is a mapping of keys to values"
        )
    return path


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Config YAML (default: configs/<model>.yaml).", callback=_check_config
    ),
]
QuickOpt = Annotated[bool, typer.Option(help="Smoke-sized budget that still runs every step.")]
PromoteOpt = Annotated[
    bool, typer.Option(help="Register the result and promote it if it beats the champion.")
]


@app.command("segmenter")
def segmenter(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    max_trials: Annotated[
        int | None,
        typer.Option(min=1, help="Trial budget: run a seeded subset of the k x PCA grid."),
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
    console.print(tables.trials_table(outcome))
    console.print(tables.segments_table(outcome))
    tables.print_promotion(summary)
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


def _run(
    name: str, job: Callable[..., dict[str, Any]], table: Callable[[dict], Any], **kwargs: Any
) -> dict[str, Any]:
    """Run one training job under a spinner, then print its table, promotion and MLflow run."""
    with console.status(f"{name} …") as status:
        summary = job(**kwargs, on_step=lambda t: status.update(f"{name}: {t} …"))
    console.print(table(summary))
    tables.print_promotion(summary)
    console.print(
        f"MLflow run {summary['run_id']} ({summary['seconds']} s); "
        "browse it with `retailpulse mlflow-ui`"
    )
    return summary


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
    return _run(
        "forecaster", jobs.train_forecaster, tables.forecast_table,
        tenant=tenant, config=config, quick=quick, tune=tune, challenger=challenger,
        promote=promote,
    )  # fmt: skip


COMMANDS["forecaster"] = forecaster


@app.command("churn")
def churn(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Train the churn model: calibrated LightGBM vs logistic and recency baselines."""
    return _run(
        "churn", jobs.train_churn, tables.churn_table,
        tenant=tenant, config=config, quick=quick, promote=promote,
    )  # fmt: skip


COMMANDS["churn"] = churn


@app.command("anomaly")
def anomaly(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    tune: Annotated[
        bool, typer.Option(help="Search weights and thresholds with Ray Tune (pre-window days).")
    ] = True,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Train the sales-anomaly ensemble: Isolation Forest, seasonal z-score, IQR and more."""
    return _run(
        "anomaly", jobs.train_anomaly, tables.anomaly_table,
        tenant=tenant, config=config, quick=quick, tune=tune, promote=promote,
    )  # fmt: skip


COMMANDS["anomaly"] = anomaly


@app.command("recommender")
def recommender(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    tune: Annotated[
        bool, typer.Option(help="Search NCF hyperparameters with Ray Tune + ASHA first.")
    ] = False,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Train the product recommender: NCF on Ray Train, blended with repeat purchase."""
    return _run(
        "recommender", jobs.train_recommender, tables.recommender_table,
        tenant=tenant, config=config, quick=quick, tune=tune, promote=promote,
    )  # fmt: skip


COMMANDS["recommender"] = recommender


@app.command("pricing")
def pricing(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Fit per-category price elasticities (fixed effects, clustered CIs) vs a no-price baseline."""
    from pipelines.train_tables_pricing import pricing_table

    return _run(
        "pricing", jobs.train_pricing, pricing_table,
        tenant=tenant, config=config, quick=quick, promote=promote,
    )  # fmt: skip


COMMANDS["pricing"] = pricing


@app.command("promotions")
def promotions(
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    quick: QuickOpt = False,
    promote: PromoteOpt = True,
) -> dict[str, Any]:
    """Measure campaign uplift: difference-in-differences vs propensity-matched households."""
    from pipelines.train_tables_pricing import promotions_table

    return _run(
        "promotions", jobs.train_promotions, promotions_table,
        tenant=tenant, config=config, quick=quick, promote=promote,
    )  # fmt: skip


COMMANDS["promotions"] = promotions
