"""Training jobs: one function per model, each tuning, logging, registering and promoting.

A failure anywhere before promotion leaves the tenant's champion untouched (the registry is
only written at the end).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ValidationFailed
from core.settings import get_settings

if TYPE_CHECKING:
    from training.segmenter import TrialOutcome


def _load(loader: Callable[..., Any], path: Path | None, **options: Any) -> Any:
    """`loader(path, **options)`; a config it refuses is a ValidationFailed naming the file and
    each bad key (not pydantic's bare "1 validation error for …" line)."""
    import yaml
    from pydantic import ValidationError

    where = path or "the default config"
    try:
        return loader(path, **options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationFailed(f"config {where}: {problems}") from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable, not YAML, no such profile
        raise ValidationFailed(f"config {where}: {exc}") from exc


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
    cfg = _load(
        load_segmenter_config,
        config,
        **{**(SEGMENTER_QUICK if quick else {}), "max_trials": max_trials},
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


def train_forecaster(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    tune: bool = True,
    challenger: bool | None = None,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Judge naive, mean-4, LightGBM, the LSTM (Ray Tune + Ray Train) and the TFT challenger on
    the tenant's weeks, refit the one selected on inner validation, log it to MLflow, register
    it as `<tenant>.forecaster` and promote it if it beats the champion on the same test
    window. `quick` uses the config's quick profile and skips the TFT challenger."""
    from core.ray_runtime import ensure_ray
    from training.forecast_run import log_run, run_forecaster
    from training.forecasting.config import load_forecaster_config
    from training.specs import FORECASTER

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = _load(load_forecaster_config, config, profile="quick" if quick else None)
    step("starting Ray")
    ensure_ray()
    started = time.perf_counter()
    run = run_forecaster(
        tenant=tenant,
        cfg=cfg,
        challenger=(not quick) if challenger is None else challenger,
        tune=tune,
        on_step=step,
    )
    step("logging to MLflow")
    log_run(run, cfg, tenant=tenant)
    test = run.table["test"][run.selected]
    summary: dict[str, Any] = {
        "model": FORECASTER.key,
        "tenant": tenant,
        "selected": run.selected,
        "table": run.table,
        "window": run.window,
        "mase": test["MASE"],
        "wape": test["WAPE"],
        "coverage": test.get("coverage_p10_p90"),
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if promote:
        origin, last = run.window["origins"]["test"], run.window["last_week"]
        window = f"tenant {tenant}: weeks {origin + 1}..{last} from origin {origin}, top {run.window['n_series']} series"
        _register(FORECASTER, run.run_id, test["MASE"], tenant, window, summary, step)
    return summary


def train_churn(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Judge the calibrated LightGBM churn model beside the logistic and recency baselines on
    the tenant's churn windows (PROTOCOLS §5 shape), log it to MLflow with a calibration plot,
    register it as `<tenant>.churn` and promote it if it beats the champion's ROC AUC on the
    same window. `quick` judges on 3 splits instead of the config's 20."""
    from training.churn import load_churn_config
    from training.churn_run import log_run, run_churn
    from training.specs import CHURN

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = _load(load_churn_config, config, splits=3 if quick else None)
    started = time.perf_counter()
    run = run_churn(tenant=tenant, cfg=cfg, on_step=step)
    step("logging to MLflow")
    log_run(run, cfg, tenant=tenant)
    main = run.table["main"]["models"]
    summary: dict[str, Any] = {
        "model": CHURN.key,
        "tenant": tenant,
        "roc_auc": run.metric,
        "baselines": {k: v["roc_auc_mean"] for k, v in main.items() if k != "lightgbm"},
        "households": run.window["households"],
        "churn_rate": run.window["churn_rate"],
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
        "table": {**run.table, "window": run.window},
    }
    if promote:
        w = run.window
        window = (
            f"tenant {tenant}: features to week {w['feature_end_week']}, label weeks "
            f"{w['label_weeks'][0]}..{w['label_weeks'][1]}, {w['splits']} splits"
        )
        _register(CHURN, run.run_id, run.metric, tenant, window, summary, step)
    return summary


def train_anomaly(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    tune: bool = True,
    tune_samples: int = 8,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Judge the sales-anomaly ensemble beside each single detector and the protocol baselines
    on the tenant's last 60 days (PROTOCOLS §4 shape, injected spikes and drops), log it to
    MLflow, register it as `<tenant>.anomaly` and promote it if its mean ROC AUC beats the
    champion's on the same window. `quick`: 3 seeds and no Tune search."""
    from core.ray_runtime import ensure_ray
    from training.anomaly.evaluate import SEEDS
    from training.anomaly_run import log_run, run_anomaly
    from training.models.anomaly import load_config
    from training.specs import ANOMALY

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = _load(load_config, config)
    seeds = SEEDS[:3] if quick else SEEDS
    samples = 0 if (quick or not tune) else tune_samples
    if samples:
        step("starting Ray")
        ensure_ray()
    started = time.perf_counter()
    run = run_anomaly(tenant=tenant, cfg=cfg, seeds=seeds, tune_samples=samples, on_step=step)
    step("logging to MLflow")
    log_run(run, tenant=tenant)
    summary: dict[str, Any] = {
        "model": ANOMALY.key,
        "tenant": tenant,
        "roc_auc": run.metric,
        "table": run.table["mean"],
        "window": run.window,
        "tuned": run.tuned,
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if promote:
        w = run.window
        window = (
            f"tenant {tenant}: days {w['window'][0]}..{w['window'][1]}, {w['stores']} stores, "
            f"seeds {w['seeds'][0]}..{w['seeds'][-1]}"
        )
        _register(ANOMALY, run.run_id, run.metric, tenant, window, summary, step)
    return summary


def _register(
    spec: Any,
    run_id: str,
    metric: float,
    tenant: str,
    window: str,
    summary: dict[str, Any],
    step: Any,
) -> None:
    """Register MLflow run `run_id` as a version of the tenant's `spec` model and promote it if
    `metric` beats the champion's logged metric on the identical `window`; adds the outcome to
    `summary`."""
    from training import registry

    step("registering in MLflow")
    result = registry.register_and_promote(
        spec, run_id, metric, tenant=tenant, tags={registry.WINDOW_TAG: window}
    )
    summary.update({k: result[k] for k in ("name", "version", "promoted", "reason")})


def train_recommender(
    *,
    tenant: str | None = None,
    config: Path | None = None,
    quick: bool = False,
    tune: bool = False,
    promote: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Judge popularity, repeat purchase, item-kNN, ALS, NCF alone and the hybrid on the
    tenant's baskets (recsys_cj shape), train the served NCF with Ray Train, log everything to
    MLflow, register it as `<tenant>.recommender` and promote it if its test NDCG@10 beats the
    champion's on the same split. `quick` uses the config's quick profile; `tune` first runs
    the Ray Tune (ASHA) search on inner validation."""
    from core.ray_runtime import ensure_ray
    from training.recommender_run import log_run, run_recommender
    from training.recommending.config import load_recommender_config
    from training.specs import RECOMMENDER

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    cfg = _load(load_recommender_config, config, profile="quick" if quick else None)
    step("starting Ray")
    ensure_ray()
    started = time.perf_counter()
    run = run_recommender(tenant=tenant, cfg=cfg, tune=tune, on_step=step)
    step("logging to MLflow")
    log_run(run, cfg, tenant=tenant)
    summary: dict[str, Any] = {
        "model": RECOMMENDER.key,
        "tenant": tenant,
        "ndcg_at_10": run.metric,
        "table": run.table,
        "window": run.window,
        "tuned": run.tuned,
        "run_id": run.run_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if promote:
        w = run.window
        window = (
            f"tenant {tenant}: last basket of {w['test_households']} households held out, "
            f"split at {w['split_time']}, catalog {w['catalog']}"
        )
        _register(RECOMMENDER, run.run_id, run.metric, tenant, window, summary, step)
    return summary


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
    cfg = _load(load_pricing_config, config)
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
        _register(PRICING, run.run_id, run.metric, tenant, window, summary, step)
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
    cfg = _load(load_promotions_config, config, **quick_overrides)
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
        _register(PROMOTIONS, run.run_id, run.metric, tenant, window, summary, step)
    return summary
