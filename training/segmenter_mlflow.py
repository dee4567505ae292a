"""MLflow logging of a segmenter Tune run: parent run with one child per trial, the
registered-ready model, profiles, assignments and the silhouette-by-k plot (driver side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core.settings import get_settings
from training.config import SegmenterTuneConfig
from training.models.segmenter import SKOPS_TRUSTED_TYPES
from training.registry import MODEL_ARTIFACT, MODEL_URI_TAG
from training.segmenter_bundle import (
    ASSIGNMENTS_ARTIFACT,
    METRIC,
    PLOT_ARTIFACT,
    PROFILES_ARTIFACT,
    TRIALS_ARTIFACT,
)
from training.tracking import configure_mlflow

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome, TuneOutcome


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


def log_to_mlflow(
    outcome: TuneOutcome,
    cfg: SegmenterTuneConfig,
    x: pd.DataFrame,
    *,
    train_rows: int,
    tenant: str | None,
    criterion_met: bool,
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
        mlflow.set_tag("criterion_met", str(criterion_met).lower())
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
