"""Tune the customer segmenter with Ray Tune (grid over k x PCA components), log it to MLflow.

Each trial fits on the train split and reports the silhouette of its segments on the held-back
split (`segment_silhouette`, a space shared by every config). The best config is refit on all
rows. MLflow logging happens on the driver after Tune finishes, so workers need no tracking URI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.ray_runtime import ensure_ray
from core.settings import get_settings
from training.config import SegmenterTuneConfig
from training.models.segmenter import (
    CustomerSegmenter,
    FastSegmenter,
    segment_silhouette,
    validate_features,
)
from training.registry import MODEL_ARTIFACT, MODEL_URI_TAG
from training.specs import SEGMENTER
from training.tracking import configure_mlflow

METRIC = SEGMENTER.metric
PLOT_ARTIFACT = "silhouette_by_k.png"
TRIALS_ARTIFACT = "trials.json"
PROFILES_ARTIFACT = "profiles.json"


@dataclass(frozen=True)
class SegmenterBundle:
    """A registered segmenter as serving and scoring use it.

    `model` is the sklearn-backed `CustomerSegmenter` (batch work, re-scoring); `fast` its
    numpy twin for one row at a time; `profiles` the training-time segment profiles.
    """

    model: CustomerSegmenter
    fast: FastSegmenter
    profiles: list[dict[str, Any]]

    def label(self, segment: int) -> str:
        return next((p["label"] for p in self.profiles if p["id"] == segment), str(segment))


def load_bundle(model_uri: str, run_id: str) -> SegmenterBundle:
    """The `ModelSpec.load` of the segmenter: pipeline (mlflow.sklearn) + profiles.json."""
    import mlflow.artifacts
    import mlflow.sklearn

    model = CustomerSegmenter.from_pipeline(mlflow.sklearn.load_model(model_uri))
    profiles = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILES_ARTIFACT}")["segments"]
    return SegmenterBundle(model=model, fast=FastSegmenter(model), profiles=profiles)


def holdout_evaluator(
    holdout: pd.DataFrame, *, sample_size: int | None, seed: int
) -> Callable[[SegmenterBundle], float]:
    """The promotion yardstick: silhouette of a bundle's segments on the same held-back rows."""

    def evaluate(bundle: SegmenterBundle) -> float:
        x = holdout[bundle.model.feature_names]
        return segment_silhouette(
            x,
            bundle.model.predict(x),
            sample_size=sample_size,
            seed=seed,
            feature_names=bundle.model.feature_names,
        )

    return evaluate


@dataclass(frozen=True)
class TrialOutcome:
    """One grid point: its config and what it scored on the held-back split."""

    k: int
    n_components: int
    silhouette: float | None
    inertia: float | None = None
    fit_seconds: float | None = None
    error: str | None = None


@dataclass
class TuneOutcome:
    """Everything a caller needs after tuning: the refit model, its profiles, the MLflow run."""

    best: TrialOutcome
    trials: list[TrialOutcome]
    model: CustomerSegmenter
    profiles: list[dict[str, Any]]
    holdout: pd.DataFrame
    n_rows: int
    duration_s: float
    run_id: str | None = None
    model_uri: str | None = None

    @property
    def silhouette(self) -> float:
        assert self.best.silhouette is not None
        return self.best.silhouette


def split_holdout(
    df: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): a seeded random `fraction` of rows held back."""
    order = np.random.default_rng(seed).permutation(len(df))
    n_holdout = max(1, int(round(len(df) * fraction)))
    return df.iloc[np.sort(order[n_holdout:])], df.iloc[np.sort(order[:n_holdout])]


def _segmenter_trial(
    config: dict[str, Any],
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    n_init: int,
    seed: int,
    sample_size: int | None,
) -> None:
    """Ray Tune function trainable: fit one (k, n_components) and report holdout silhouette."""
    from ray import tune

    params = config["params"]
    start = time.perf_counter()
    model = CustomerSegmenter(
        k=int(params["k"]),
        n_components=int(params["n_components"]),
        n_init=n_init,
        random_state=seed,
    ).fit(train)
    fit_seconds = time.perf_counter() - start
    score = segment_silhouette(holdout, model.predict(holdout), sample_size=sample_size, seed=seed)
    tune.report({METRIC: score, "inertia": model.inertia, "fit_seconds": fit_seconds})


def _progress_callback(on_trial: Callable[[TrialOutcome], None]):
    from ray import tune

    class _Progress(tune.Callback):
        def __init__(self, hook: Callable[[TrialOutcome], None]) -> None:
            self.hook: Callable[[TrialOutcome], None] | None = hook

        # Tuner pickles its run config for resumption; the hook (often bound to a rich
        # console) is driver-only state, so it stays out of the pickle.
        def __getstate__(self) -> dict:
            return {"hook": None}

        def _emit(self, trial, error: str | None) -> None:
            if self.hook is None:
                return
            params = trial.config["params"]
            metrics = trial.last_result or {}
            self.hook(
                TrialOutcome(
                    k=int(params["k"]),
                    n_components=int(params["n_components"]),
                    silhouette=metrics.get(METRIC),
                    inertia=metrics.get("inertia"),
                    fit_seconds=metrics.get("fit_seconds"),
                    error=error,
                )
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._emit(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._emit(trial, "failed")

    return _Progress(on_trial)


def run_tune(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    cfg: SegmenterTuneConfig,
    *,
    on_trial: Callable[[TrialOutcome], None] | None = None,
) -> list[TrialOutcome]:
    """Run the Ray Tune grid; one TrialOutcome per grid point (failed ones carry `error`)."""
    from ray import tune

    ensure_ray()
    trainable = tune.with_resources(
        tune.with_parameters(
            _segmenter_trial,
            train=train,
            holdout=holdout,
            n_init=cfg.n_init,
            seed=cfg.seed,
            sample_size=cfg.sample_size,
        ),
        {"cpu": 1},
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    tuner = tune.Tuner(
        trainable,
        param_space={"params": tune.grid_search(cfg.grid())},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            max_concurrent_trials=cfg.max_concurrent_trials,
            # Trials last well under a second; starting an actor per trial would dominate.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"segmenter-{stamp}",
            storage_path=str(get_settings().home_dir / "ray_results"),
            verbose=0,
            callbacks=[_progress_callback(on_trial)] if on_trial else None,
        ),
    )
    results = tuner.fit()
    trials: list[TrialOutcome] = []
    for result in results:
        params = result.config["params"]
        metrics = result.metrics or {}
        score = metrics.get(METRIC)
        trials.append(
            TrialOutcome(
                k=int(params["k"]),
                n_components=int(params["n_components"]),
                silhouette=float(score) if score is not None else None,
                inertia=metrics.get("inertia"),
                fit_seconds=metrics.get("fit_seconds"),
                error=repr(result.error) if result.error else None,
            )
        )
    return sorted(trials, key=lambda t: (t.k, t.n_components))


def pick_best(trials: list[TrialOutcome]) -> TrialOutcome:
    """Highest silhouette; ties go to the simpler model (smaller k, then fewer components)."""
    scored = [t for t in trials if t.silhouette is not None and math.isfinite(t.silhouette)]
    if not scored:
        errors = "; ".join(f"k={t.k} pca={t.n_components}: {t.error}" for t in trials)
        raise RuntimeError(f"every segmenter trial failed: {errors}")
    return min(scored, key=lambda t: (-t.silhouette, t.k, t.n_components))


def tune_segmenter(
    df: pd.DataFrame,
    cfg: SegmenterTuneConfig,
    *,
    tenant: str | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    log_to_mlflow: bool = True,
) -> TuneOutcome:
    """Grid-tune k x PCA components on a held-back split, refit the best on all rows, log it.

    `df` holds exactly the SEGMENTER_FEATURES columns (customer ids in the index).
    """
    start = time.perf_counter()
    x = validate_features(df, CustomerSegmenter().feature_names)
    train, holdout = split_holdout(x, cfg.holdout_fraction, cfg.seed)
    k_max = max(cfg.k_values)
    if len(train) < k_max or len(holdout) <= k_max:
        raise ValueError(
            f"{len(x)} customers is too few for k up to {k_max} with holdout_fraction "
            f"{cfg.holdout_fraction}: need more than {k_max} rows in each split"
        )
    trials = run_tune(train, holdout, cfg, on_trial=on_trial)
    best = pick_best(trials)
    model = CustomerSegmenter(
        k=best.k, n_components=best.n_components, n_init=cfg.n_init, random_state=cfg.seed
    ).fit(x)
    profiles = model.profiles(x)
    outcome = TuneOutcome(
        best=best,
        trials=trials,
        model=model,
        profiles=profiles,
        holdout=holdout,
        n_rows=len(x),
        duration_s=0.0,
    )
    if log_to_mlflow:
        _log_to_mlflow(outcome, cfg, x, train_rows=len(train), tenant=tenant)
    outcome.duration_s = time.perf_counter() - start
    return outcome


def _silhouette_figure(trials: list[TrialOutcome], best: TrialOutcome):
    from matplotlib.figure import Figure  # Figure without pyplot: Agg, no GUI backend

    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot()
    for n in sorted({t.n_components for t in trials}):
        points = sorted((t.k, t.silhouette) for t in trials if t.n_components == n)
        points = [(k, s) for k, s in points if s is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"PCA {n}")
    ax.scatter([best.k], [best.silhouette], s=180, facecolors="none", edgecolors="red", zorder=3)
    ax.annotate(
        f"best: k={best.k}, PCA {best.n_components}",
        (best.k, best.silhouette),
        textcoords="offset points",
        xytext=(10, -16),
    )
    ax.set_xticks(sorted({t.k for t in trials}))
    ax.margins(x=0.08, y=0.15)
    ax.set_xlabel("k (segments)")
    ax.set_ylabel("silhouette on held-back customers")
    ax.set_title("Customer segmenter: silhouette by k and PCA components")
    ax.grid(alpha=0.3)
    ax.legend(title="PCA components")
    fig.tight_layout()
    return fig


def _pip_requirements() -> list[str]:
    # Pinned explicitly: MLflow would otherwise infer them in a subprocess (seconds per run).
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "pandas")]


def _log_to_mlflow(
    outcome: TuneOutcome,
    cfg: SegmenterTuneConfig,
    x: pd.DataFrame,
    *,
    train_rows: int,
    tenant: str | None,
) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    configure_mlflow(cfg.experiment)
    best, model = outcome.best, outcome.model
    tags = {"model": "segmenter", "tenant": tenant or get_settings().tenant}
    with mlflow.start_run(run_name="segmenter-tune", tags=tags) as parent:
        mlflow.log_params(
            {
                **cfg.model_dump(),
                "n_rows": len(x),
                "n_train": train_rows,
                "n_holdout": len(outcome.holdout),
                "n_trials": len(outcome.trials),
                "best_k": best.k,
                "best_n_components": best.n_components,
                "feature_names": ",".join(model.feature_names),
            }
        )
        for t in outcome.trials:
            with mlflow.start_run(run_name=f"k={t.k} pca={t.n_components}", nested=True, tags=tags):
                mlflow.log_params({"k": t.k, "n_components": t.n_components})
                metrics = {METRIC: t.silhouette, "inertia": t.inertia, "fit_seconds": t.fit_seconds}
                mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
                if t.error:
                    mlflow.set_tag("error", t.error[:5000])
        sample = x.head(200)
        info = mlflow.sklearn.log_model(
            model.pipeline,
            name=MODEL_ARTIFACT,
            signature=infer_signature(sample, model.predict(sample)),
            pip_requirements=_pip_requirements(),
        )
        # Logged after the model and linked to it: logging them first makes log_model re-insert
        # them for the model (MLflow swallows the duplicate key, psycopg logs a warning).
        mlflow.log_metrics(
            {METRIC: float(best.silhouette), "inertia": model.inertia}, model_id=info.model_id
        )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        mlflow.log_dict(
            {
                "k": best.k,
                "n_components": best.n_components,
                "feature_names": model.feature_names,
                "segments": outcome.profiles,
            },
            PROFILES_ARTIFACT,
        )
        mlflow.log_dict({"trials": [t.__dict__ for t in outcome.trials]}, TRIALS_ARTIFACT)
        mlflow.log_figure(_silhouette_figure(outcome.trials, best), PLOT_ARTIFACT)
    outcome.run_id = parent.info.run_id
    outcome.model_uri = info.model_uri
