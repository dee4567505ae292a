"""Training jobs: one function per model, each tuning, logging, registering and promoting.

A failure anywhere before promotion leaves the tenant's champion untouched (the registry is
only written at the end).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ValidationFailed
from core.settings import get_settings

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome

# --quick: a smoke-sized search that still exercises the whole path (about a minute here).
SEGMENTER_QUICK: dict[str, Any] = {"k_values": [3, 4, 5], "pca_components": [3], "n_init": 3}


def train_segmenter(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    max_trials: int | None = None,
    quick: bool = False,
    as_of: datetime | None = None,
    promote: bool = True,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tune the K-Means + PCA segmenter on the tenant's features, log it to MLflow, register
    it as `<tenant>.segmenter` and promote it if it beats the champion on the same held-back
    customers. Returns a summary (with `outcome`, the full TuneOutcome)."""
    from core.ray_runtime import ensure_ray
    from features.offline import training_frame
    from training import registry
    from training.config import load_segmenter_config
    from training.segmenter import holdout_evaluator, tune_segmenter
    from training.specs import SEGMENTER

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = load_segmenter_config(
        config, **{**(SEGMENTER_QUICK if quick else {}), "max_trials": max_trials}
    )
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    step(f"loading features of tenant {tenant!r}")
    frame = training_frame(tenant=tenant, as_of=as_of)
    if frame.empty:
        raise ValidationFailed(
            f"no customer features for tenant {tenant!r}"
            + (f" as of {as_of.isoformat()}" if as_of else "")
            + ": run `retailpulse features materialize` first"
        )
    frame = frame.set_index("customer_id")
    step("starting Ray")
    ensure_ray()
    outcome = tune_segmenter(frame, cfg, tenant=tenant, on_trial=on_trial)
    summary: dict[str, Any] = {
        "model": SEGMENTER.key,
        "tenant": tenant,
        "customers": outcome.n_rows,
        "trials": len(outcome.trials),
        "best_k": outcome.best.k,
        "best_n_components": outcome.best.n_components,
        "silhouette": outcome.silhouette,
        "run_id": outcome.run_id,
        "seconds": round(outcome.duration_s, 1),
        "outcome": outcome,
    }
    if promote:
        step("registering in MLflow")
        result = registry.register_and_promote(
            SEGMENTER,
            outcome.run_id,
            outcome.silhouette,
            tenant=tenant,
            evaluate=holdout_evaluator(outcome.holdout, sample_size=cfg.sample_size, seed=cfg.seed),
        )
        summary.update({k: result[k] for k in ("name", "version", "promoted", "reason")})
    return summary
