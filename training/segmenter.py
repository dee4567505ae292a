"""Tune the customer segmenter with Ray Tune (feature set x k x PCA components), log to MLflow.

Each trial fits on the train split and reports, in the fixed PROTOCOLS §3 space (log1p R, F, M
standardised), the silhouette of its segments on the held-back split, plus its smallest
segment share and bootstrap ARI on the train split. `pick_best` applies the config's criterion
(k >= min_k, smallest share and ARI thresholds, then best held-back silhouette); the winner is
refit on all rows. MLflow logging happens on the driver, so workers need no tracking URI.
"""

from __future__ import annotations

import copy
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
    CustomerSegmenter,
    validate_features,
)
from training.segmenter_bundle import METRIC, SegmenterBundle
from training.segmenter_mlflow import log_to_mlflow as log_tune_run
from training.segmenting.protocol import (
    bootstrap_ari,
    passes_criterion,
    relaxed_pool,
    score_assignments,
)


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
    k: int, n_components: int, weights: dict[str, float], *, n_init: int, seed: int, **opts: Any
) -> CustomerSegmenter:
    """An unfitted segmenter for one grid point (PCA clipped to the features in use); `opts`
    are `SegmenterTuneConfig.centroid_options()` (bagging, soft refinement)."""
    return CustomerSegmenter(
        k=k,
        n_components=min(n_components, sum(1 for w in weights.values() if w > 0)),
        n_init=n_init,
        random_state=seed,
        weights=set_weights(weights),
        **opts,
    )


def train_ari(model: CustomerSegmenter, train: pd.DataFrame, *, n: int, seed: int) -> float | None:
    """Bootstrap ARI of `model`'s configuration on the train rows (None when n = 0): every
    refit repeats the whole procedure, bagging and soft refinement included."""
    if n <= 0:
        return None
    names = model.feature_names

    def fit(rows: np.ndarray):
        refit = copy.copy(model)  # the same configuration; fit() builds a fresh pipeline
        refit.fit(pd.DataFrame(rows, columns=names))
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
    centroids: dict[str, Any] | None = None,
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
        **(centroids or {}),
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
            centroids=cfg.centroid_options(),
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
    options = {"n_init": cfg.n_init, "seed": cfg.seed, **cfg.centroid_options()}
    model = build_model(best.k, best.n_components, cfg.feature_sets[best.features], **options)
    model.fit(x)
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
        log_tune_run(
            outcome,
            cfg,
            x,
            train_rows=len(train),
            tenant=tenant,
            criterion_met=admissible(outcome.best, **_gates(cfg)),
        )
    outcome.duration_s = time.perf_counter() - start
    return outcome
