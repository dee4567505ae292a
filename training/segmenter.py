"""Tune the customer segmenter with Ray Tune (feature set x k x PCA components), log to MLflow.

Each trial fits on the train split and reports, in the fixed PROTOCOLS §3 space (log1p R, F, M
standardised), the silhouette of its segments on the held-back split, plus its smallest
segment share and bootstrap ARI on the train split. `pick_best` applies the config's criterion
(k >= min_k, smallest share and ARI thresholds, then best held-back silhouette); the winner is
refit on all rows. MLflow logging happens on the driver, so workers need no tracking URI.
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
from sklearn.metrics import silhouette_score

from core.ray_runtime import ensure_ray
from core.settings import get_settings
from features.catalog import SEGMENTER_FEATURES
from training.config import SegmenterTuneConfig
from training.models.segmenter import (
    SKOPS_TRUSTED_TYPES,
    CustomerSegmenter,
    FastSegmenter,
    validate_features,
)
from training.registry import MODEL_ARTIFACT, MODEL_URI_TAG
from training.segmenting.protocol import (
    bootstrap_ari,
    passes_criterion,
    relaxed_pool,
    score_assignments,
)
from training.specs import SEGMENTER
from training.tracking import configure_mlflow

METRIC = SEGMENTER.metric
PLOT_ARTIFACT = "silhouette_by_k.png"
TRIALS_ARTIFACT = "trials.json"
PROFILES_ARTIFACT = "profiles.json"
ASSIGNMENTS_ARTIFACT = "assignments.json"


@dataclass(frozen=True)
class SegmenterBundle:
    """A registered segmenter as serving and scoring use it.

    `model` is the sklearn-backed `CustomerSegmenter` (batch work, re-scoring); `fast` its
    numpy twin for one row at a time; `profiles` the training-time segment profiles.
    """

    model: CustomerSegmenter
    fast: FastSegmenter
    profiles: list[dict[str, Any]]
    assignments: dict[int, list[Any]] | None = None  # segment -> customer ids (training time)

    def members(self, segment: int) -> list[Any] | None:
        """Customers assigned to `segment` at training time ([] for an unknown segment); None
        for a version logged before assignments were kept."""
        if self.assignments is None:
            return None
        return list(self.assignments.get(int(segment), []))

    def label(self, segment: int) -> str:
        return next((p["label"] for p in self.profiles if p["id"] == segment), str(segment))


def load_bundle(model_uri: str, run_id: str) -> SegmenterBundle:
    """The `ModelSpec.load` of the segmenter: pipeline (mlflow.sklearn) + profiles.json."""
    import mlflow.artifacts
    import mlflow.sklearn

    model = CustomerSegmenter.from_pipeline(mlflow.sklearn.load_model(model_uri))
    profiles = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILES_ARTIFACT}")["segments"]
    try:
        raw = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ASSIGNMENTS_ARTIFACT}")
    except Exception:  # an older version without assignments: members() answers None
        raw = None
    assignments = None
    if raw is not None:
        assignments = {}
        for cid, seg in zip(raw["customer_ids"], raw["segments"], strict=True):
            assignments.setdefault(int(seg), []).append(cid)
    return SegmenterBundle(model=model, fast=FastSegmenter(model), profiles=profiles,
                           assignments=assignments)  # fmt: skip


def protocol_silhouette(
    df: pd.DataFrame, labels: np.ndarray, *, sample_size: int | None = None
) -> float:
    """Silhouette of `labels` in the PROTOCOLS §3 space (log1p R, F, M standardised on `df`)."""
    return float(score_assignments(df, labels, sample_size=sample_size)["silhouette"])


def holdout_evaluator(
    holdout: pd.DataFrame, *, sample_size: int | None, seed: int
) -> Callable[[SegmenterBundle], float]:
    """The promotion yardstick: protocol-space silhouette of a bundle's segments on the same
    held-back rows, so champion and challenger with different features are comparable.

    `seed` is kept for callers; the protocol space samples with its own fixed seed.
    """

    def evaluate(bundle: SegmenterBundle) -> float:
        x = holdout[bundle.model.feature_names]
        return protocol_silhouette(holdout, bundle.model.predict(x), sample_size=sample_size)

    return evaluate


def set_weights(weights: dict[str, float]) -> list[float]:
    """A feature set's weights over every SEGMENTER_FEATURES column (0 = not used)."""
    return [float(weights.get(f, 0.0)) for f in SEGMENTER_FEATURES]


def build_model(
    k: int, n_components: int, weights: dict[str, float], *, n_init: int, seed: int
) -> CustomerSegmenter:
    """An unfitted segmenter for one grid point (PCA clipped to the features in use)."""
    return CustomerSegmenter(
        k=k,
        n_components=min(n_components, sum(1 for w in weights.values() if w > 0)),
        n_init=n_init,
        random_state=seed,
        weights=set_weights(weights),
    )


def train_ari(model: CustomerSegmenter, train: pd.DataFrame, *, n: int, seed: int) -> float | None:
    """Bootstrap ARI of `model`'s configuration on the train rows (None when n = 0)."""
    if n <= 0:
        return None
    names = model.feature_names

    def fit(rows: np.ndarray):
        frame = pd.DataFrame(rows, columns=names)
        refit = build_model(
            model.k,
            model.n_components,
            dict(zip(names, model.weights, strict=True)),
            n_init=model.n_init,
            seed=model.random_state,
        ).fit(frame)
        return lambda z: refit.pipeline.predict(pd.DataFrame(z, columns=names))

    return bootstrap_ari(fit, train[names].to_numpy(dtype=np.float64), n=n, seed=seed)


@dataclass(frozen=True)
class TrialOutcome:
    """One grid point: its config and what it scored on the held-back split."""

    k: int
    n_components: int
    silhouette: float | None  # held-back rows, protocol space
    inertia: float | None = None
    fit_seconds: float | None = None
    error: str | None = None
    features: str = "rfm"
    smallest_share: float | None = None  # train rows
    ari: float | None = None  # bootstrap refits on train rows
    silhouette_own: float | None = None  # held-back rows, the model's own space


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
    skipped_rows: int = 0  # customers dropped for NaN/inf features (`drop_incomplete`)

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
    feature_sets: dict[str, dict[str, float]],
    n_init: int,
    n_bootstrap: int,
    seed: int,
    sample_size: int | None,
) -> None:
    """Ray Tune function trainable: fit one grid point, report the criterion's inputs."""
    from ray import tune

    params = config["params"]
    start = time.perf_counter()
    model = build_model(
        int(params["k"]),
        int(params["n_components"]),
        feature_sets[params["features"]],
        n_init=n_init,
        seed=seed,
    ).fit(train)
    fit_seconds = time.perf_counter() - start
    held = model.predict(holdout)
    fitted = model.predict(train)
    own = model.pipeline[:-1].transform(holdout)
    n_held = len(np.unique(held))
    tune.report(
        {
            METRIC: protocol_silhouette(holdout, held, sample_size=sample_size),
            "silhouette_own": float(silhouette_score(own, held)) if 1 < n_held < len(own) else -1.0,
            "smallest_share": float(np.bincount(fitted, minlength=model.k).min() / len(fitted)),
            "ari": train_ari(model, train, n=n_bootstrap, seed=seed),
            "inertia": model.inertia,
            "fit_seconds": fit_seconds,
        }
    )


def _outcome(params: dict[str, Any], metrics: dict[str, Any], error: str | None) -> TrialOutcome:
    def num(key: str) -> float | None:
        value = metrics.get(key)
        return float(value) if value is not None else None

    return TrialOutcome(
        k=int(params["k"]),
        n_components=int(params["n_components"]),
        silhouette=num(METRIC),
        inertia=num("inertia"),
        fit_seconds=num("fit_seconds"),
        error=error,
        features=str(params.get("features", "rfm")),
        smallest_share=num("smallest_share"),
        ari=num("ari"),
        silhouette_own=num("silhouette_own"),
    )


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
            self.hook(_outcome(params, metrics, error))

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
            feature_sets=cfg.feature_sets,
            n_init=cfg.n_init,
            n_bootstrap=cfg.n_bootstrap,
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
        error = repr(result.error) if result.error else None
        trials.append(_outcome(result.config["params"], result.metrics or {}, error))
    return sorted(trials, key=lambda t: (t.features, t.k, t.n_components))


def admissible(
    t: TrialOutcome, *, min_k: int = 2, min_segment_share: float = 0.0, min_ari: float = -1.0
) -> bool:
    """Whether a trial passes the criterion's gates (an unmeasured share or ARI passes)."""
    return passes_criterion(
        t.k,
        t.smallest_share,
        t.ari,
        min_k=min_k,
        min_segment_share=min_segment_share,
        min_ari=min_ari,
    )


def pick_best(
    trials: list[TrialOutcome],
    *,
    min_k: int = 2,
    min_segment_share: float = 0.0,
    min_ari: float = -1.0,
) -> TrialOutcome:
    """The criterion: among admissible trials, the highest held-back silhouette; ties go to
    the simpler model (smaller k, then fewer components). When no trial is admissible the
    gates are relaxed in `relaxed_pool`'s order (the run is tagged `criterion_met=false`)."""
    scored = [t for t in trials if t.silhouette is not None and math.isfinite(t.silhouette)]
    if not scored:
        errors = "; ".join(f"k={t.k} pca={t.n_components}: {t.error}" for t in trials)
        raise RuntimeError(f"every segmenter trial failed: {errors}")
    gates = {"min_k": min_k, "min_segment_share": min_segment_share, "min_ari": min_ari}
    passing, _ = relaxed_pool(scored, lambda t: (t.k, t.smallest_share, t.ari), **gates)
    return min(passing, key=lambda t: (-t.silhouette, t.k, t.n_components, t.features))


def drop_incomplete(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(customers whose features are all finite, how many were dropped).

    Rule: a customer with a NaN or infinite feature (e.g. a snapshot row written before a
    column existed) cannot be placed in any space, so training skips it and reports the count;
    missing columns and non-numeric dtypes still fail loudly in `validate_features`.
    """
    names = [c for c in SEGMENTER_FEATURES if c in df.columns]
    numeric = [c for c in names if pd.api.types.is_numeric_dtype(df[c])]
    if not numeric:
        return df, 0
    finite = np.isfinite(df[numeric].to_numpy(dtype=np.float64)).all(axis=1)
    return df.loc[finite], int((~finite).sum())


def _gates(cfg: SegmenterTuneConfig) -> dict[str, Any]:
    return {
        "min_k": cfg.min_k,
        "min_segment_share": cfg.min_segment_share,
        "min_ari": cfg.min_ari,
    }


def tune_segmenter(
    df: pd.DataFrame,
    cfg: SegmenterTuneConfig,
    *,
    tenant: str | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    log_to_mlflow: bool = True,
) -> TuneOutcome:
    """Grid-tune k x PCA components on a held-back split, refit the best on all rows, log it.

    `df` holds exactly the SEGMENTER_FEATURES columns (customer ids in the index); customers
    with a NaN/inf feature are skipped and counted in `TuneOutcome.skipped_rows`.
    """
    start = time.perf_counter()
    df, skipped = drop_incomplete(df)
    x = validate_features(df, CustomerSegmenter().feature_names)
    train, holdout = split_holdout(x, cfg.holdout_fraction, cfg.seed)
    k_max = max(cfg.k_values)
    if len(train) < k_max or len(holdout) <= k_max:
        raise ValueError(
            f"{len(x)} customers is too few for k up to {k_max} with holdout_fraction "
            f"{cfg.holdout_fraction}: need more than {k_max} rows in each split"
        )
    trials = run_tune(train, holdout, cfg, on_trial=on_trial)
    best = pick_best(trials, **_gates(cfg))
    model = build_model(
        best.k, best.n_components, cfg.feature_sets[best.features], n_init=cfg.n_init, seed=cfg.seed
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
        skipped_rows=skipped,
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
                "skipped_rows": outcome.skipped_rows,
                "n_train": train_rows,
                "n_holdout": len(outcome.holdout),
                "n_trials": len(outcome.trials),
                "best_k": best.k,
                "best_n_components": best.n_components,
                "best_features": best.features,
                "feature_names": ",".join(model.feature_names),
            }
        )
        mlflow.set_tag("criterion_met", str(admissible(best, **_gates(cfg))).lower())
        for t in outcome.trials:
            name = f"{t.features} k={t.k} pca={t.n_components}"
            with mlflow.start_run(run_name=name, nested=True, tags=tags):
                mlflow.log_params(
                    {"k": t.k, "n_components": t.n_components, "features": t.features}
                )
                metrics = {
                    METRIC: t.silhouette,
                    "silhouette_own": t.silhouette_own,
                    "smallest_share": t.smallest_share,
                    "ari": t.ari,
                    "inertia": t.inertia,
                    "fit_seconds": t.fit_seconds,
                }
                mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
                if t.error:
                    mlflow.set_tag("error", t.error[:5000])
        sample = x.head(200)  # every model takes all SEGMENTER_FEATURES (unused ones weigh 0)
        info = mlflow.sklearn.log_model(
            model.pipeline,
            name=MODEL_ARTIFACT,
            signature=infer_signature(sample, model.predict(sample)),
            pip_requirements=_pip_requirements(),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        # Logged after the model and linked to it: logging them first makes log_model re-insert
        # them for the model (MLflow swallows the duplicate key, psycopg logs a warning).
        best_metrics = {
            METRIC: best.silhouette,
            "silhouette_own": best.silhouette_own,
            "smallest_share": best.smallest_share,
            "ari": best.ari,
            "inertia": model.inertia,
        }
        mlflow.log_metrics(
            {k: float(v) for k, v in best_metrics.items() if v is not None}, model_id=info.model_id
        )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        mlflow.log_dict(
            {
                "k": best.k,
                "n_components": best.n_components,
                "features": best.features,
                "feature_names": model.feature_names,
                "weights": model.weights,
                "segments": outcome.profiles,
            },
            PROFILES_ARTIFACT,
        )
        mlflow.log_dict({"trials": [t.__dict__ for t in outcome.trials]}, TRIALS_ARTIFACT)
        # who is in which segment at training time: `POST /churn/analyze {segmentId}` reads it
        mlflow.log_dict(
            {
                "customer_ids": [c.item() if hasattr(c, "item") else c for c in x.index],
                "segments": [int(g) for g in outcome.model.predict(x)],
            },
            ASSIGNMENTS_ARTIFACT,
        )
        mlflow.log_figure(_silhouette_figure(outcome.trials, best), PLOT_ARTIFACT)
    outcome.run_id = parent.info.run_id
    outcome.model_uri = info.model_uri
