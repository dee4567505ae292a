"""Training jobs of the business models (price elasticity, promotion uplift): each fits, logs
to MLflow, registers and promotes, as the ML models' jobs in pipelines/jobs/train.py do."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import get_settings
from pipelines.jobs.train_common import load_config, register


def train_pricing(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit per-category log-log price elasticities (entity and week fixed effects, clustered
    CIs), judge them on the tenant's last weeks against the no-price-effect baseline, log to
    MLflow with the CI plot, register `<tenant>.pricing` and promote it if its held-out RMSE
    beats the champion's on the same weeks. `quick` changes nothing (the fit takes seconds)."""
    from training.pricing import load_pricing_config, log_run, run_pricing
    from training.specs import PRICING

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = load_config(load_pricing_config, config)
    started = time.perf_counter()
    run = run_pricing(tenant=tenant, cfg=cfg, on_step=step)
    step("logging to MLflow")
    log_run(run, cfg, tenant=tenant)
    summary: dict[str, Any] = {
        "model": PRICING.key,
        "tenant": tenant,
        "rmse_log_units": run.metric,
        "holdout": run.holdout,
        "window": run.window,
        "categories": run.bundle.categories,
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if promote:
        h = run.holdout
        window = (
            f"tenant {tenant}: weeks {h['test_weeks'][0]}..{h['test_weeks'][1]} held out, "
            f"{h['rows']} rows, entity {cfg.entity}, {cfg.price} price"
        )
        register(PRICING, run.run_id, run.metric, tenant, window, summary, step)
    return summary


def train_promotions(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every campaign's uplift (difference-in-differences against propensity-matched
    unexposed households, bootstrap CIs, balance and a placebo), log to MLflow with the uplift
    plot, register `<tenant>.promotions` and promote it if its post-matching balance (mean
    largest |SMD|) beats the champion's. `quick`: 100 bootstrap draws and no placebo."""
    from training.promotions import load_promotions_config, run_promotions
    from training.promotions_mlflow import log_run
    from training.specs import PROMOTIONS

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    quick_overrides = {"bootstrap": 100, "placebo": False} if quick else {}
    cfg = load_config(load_promotions_config, config, **quick_overrides)
    started = time.perf_counter()
    run = run_promotions(tenant=tenant, cfg=cfg, on_step=step)
    step("logging to MLflow")
    log_run(run, cfg, tenant=tenant)
    summary: dict[str, Any] = {
        "model": PROMOTIONS.key,
        "tenant": tenant,
        "max_abs_smd": run.metric,
        "table": run.table,
        "campaigns": run.bundle.campaigns,
        "window": run.window,
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if promote:
        w = run.window
        window = (
            f"tenant {tenant}: days {w['days'][0]}..{w['days'][1]}, {run.table['campaigns']} "
            f"campaigns, pre-period {cfg.pre_days} days, controls {w['controls']}"
        )
        register(PROMOTIONS, run.run_id, run.metric, tenant, window, summary, step)
    return summary
