"""One forecaster training run on a tenant's data: the PROTOCOLS §1 splits on the tenant's own
weeks, every model and baseline scored in the same run, selection on inner validation, refit
of the selected model on every week, MLflow run with the table, plots and the bundle.

Splits: the newest complete week is `last`; test = origin last-8 → weeks last-7..last; inner
validation = origin last-16 → last-15..last-8 (trained only on targets up to its origin). On
Complete Journey that is exactly forecast_cj (weeks 2..52, origins 44 and 36).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.forecasting.config import ForecasterConfig

HORIZON = 8
SPLITS = ("inner_validation", "test")


@dataclass
class ForecastRun:
    table: dict[str, dict[str, dict[str, float]]]
    selected: str
    window: dict[str, Any]
    bundle: Any
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    tuned: dict[str, Any] | None = None


def complete_weeks(tenant: str) -> tuple[int, int]:
    """(first, last) complete retailer weeks of the tenant: weeks whose sales span at least six
    days (Complete Journey: 2..52; week 1 is one day and week 53 partial)."""
    from core.db import connect
    from core.errors import ValidationFailed
    from features.store import service_urls

    with connect(service_urls()[0]) as conn:
        row = conn.execute(
            "SELECT min(week), max(week) FROM (SELECT week FROM transactions"
            " WHERE tenant_id = %s GROUP BY week"
            " HAVING max(transaction_timestamp) - min(transaction_timestamp) >= interval '6 days') w",
            (tenant,),
        ).fetchone()
    if not row or row[0] is None or row[1] is None or row[1] - row[0] < 2 * HORIZON + 8:
        raise ValidationFailed(
            f"tenant {tenant!r} has too few complete weeks to train and judge a forecaster "
            f"(need {2 * HORIZON + 8}; found {row}): run `retailpulse features materialize`",
            details={"tenant": tenant},
        )
    return int(row[0]), int(row[1])


def _week_starts(tenant: str) -> dict[int, str]:
    from core.db import connect
    from features.store import service_urls

    with connect(service_urls()[0]) as conn:
        rows = conn.execute(
            "SELECT week, (week_end - interval '7 days')::date FROM calendar_weeks"
            " WHERE tenant_id = %s",
            (tenant,),
        ).fetchall()
    return {int(w): d.isoformat() for w, d in rows}


def _train_lstm(cfg: ForecasterConfig, panel: Any, train_end: int) -> Any:
    """The LSTM on Ray Train (TorchTrainer, cfg.num_workers workers)."""
    from training.trainers.forecaster import build_trainer, load_checkpoint

    storage = tempfile.mkdtemp(prefix="rp-forecaster-")
    result = build_trainer(cfg, panel, train_end, storage_path=storage).fit()
    if result.error:
        raise RuntimeError(f"forecaster training failed: {result.error}")
    return load_checkpoint(result)


def run_forecaster(
    *,
    tenant: str,
    cfg: ForecasterConfig,
    challenger: bool = True,
    tune: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> ForecastRun:
    """Evaluate naive, mean of 4 weeks, LightGBM, the LSTM (Ray Tune + Ray Train) and the TFT
    challenger on both splits; select by inner-validation MASE; refit; return the bundle."""
    from features.offline import forecast_frame
    from training.forecaster import BLEND, BlendedForecaster, ForecastBundle
    from training.forecasting.evaluate import FORECASTERS, blend_splits, score_split, select_model
    from training.forecasting.panel import panel_from_weekly
    from training.models.forecast_baselines import LightGBMForecaster

    step = on_step or (lambda text: None)
    first, last = complete_weeks(tenant)
    origins = {"inner_validation": last - 2 * HORIZON, "test": last - HORIZON}
    n_read = max(cfg.n_series, cfg.lstm.train_series)
    step(f"reading weeks {first}..{last} of the top {n_read} store x product series")
    # one read: the scored top n_series are the rows ranked ≤ n_series of the LSTM's wider set
    read = forecast_frame(
        tenant=tenant,
        first_week=first,
        last_week=last,
        n_series=n_read,
        rank_until_week=origins["test"],
        with_rank=True,
    )
    covariates = set(cfg.lstm.covariates) | set(cfg.lstm.future_covariates)
    static = set(cfg.lstm.static) | {"department"}
    if challenger:  # the TFT reads the calendar, the promotion plan and more attributes
        from training.trainers.forecast_tft import KNOWN, STATIC

        covariates |= {*KNOWN, "discount_depth"}
        static |= set(STATIC)

    def to_panel(frame: Any) -> Any:
        return panel_from_weekly(
            frame.drop(columns="series_rank").reset_index(drop=True),
            weeks=(first, last),
            covariates=sorted(covariates),
            static=sorted(static),
        )

    panel = to_panel(read[read["series_rank"] <= cfg.n_series])
    # the LSTM's panel: more series than scored when lstm.train_series says so
    train_panel = to_panel(read) if cfg.lstm.train_series > cfg.n_series else panel
    window = {
        "tenant": tenant,
        "first_week": first,
        "last_week": last,
        "origins": origins,
        "n_series": int(panel.n_series),
        "train_series": int(train_panel.n_series),
        "feature_service": "forecaster_v1",
    }
    seconds: dict[str, float] = {}
    tuned = None
    if tune:
        from training.trainers.forecaster import tune_forecaster

        step(f"Ray Tune + ASHA: {cfg.tune.num_samples} LSTM trials on the inner-validation window")
        start = time.perf_counter()
        result = tune_forecaster(train_panel, cfg, origins["inner_validation"])
        seconds["tune"] = round(time.perf_counter() - start, 1)
        cfg = cfg.model_copy(update={"lstm": result.best_config})
        tuned = {"best": result.best_config.model_dump(), "trials": result.trials}

    def lstm(p: Any, origin: int, c: ForecasterConfig) -> np.ndarray:
        return _train_lstm(c, train_panel, origin).predict(p, origin, HORIZON)

    models = {name: FORECASTERS[name] for name in ("naive", "mean4", "lightgbm")}
    models["lstm"] = lstm
    if challenger:
        models["tft"] = FORECASTERS["tft"]
    table: dict[str, dict[str, dict[str, float]]] = {split: {} for split in SPLITS}
    test_q: dict[tuple[str, str], np.ndarray] = {}
    for split in SPLITS:
        for name, forecast in models.items():
            step(f"{split}: {name}")
            start = time.perf_counter()
            q = forecast(panel, origins[split], cfg)
            table[split][name] = score_split(panel, origins[split], q)
            test_q[(split, name)] = q
            seconds[f"{name}/{split}"] = round(time.perf_counter() - start, 1)
    # the LSTM + LightGBM quantile blend, weights fitted on inner validation (evaluate.py)
    blend, blended = blend_splits(
        panel,
        origins,
        {split: (test_q[(split, "lstm")], test_q[(split, "lightgbm")]) for split in SPLITS},
    )
    for split, q in blended.items():
        table[split][BLEND] = score_split(panel, origins[split], q)
        test_q[(split, BLEND)] = q
    selected = select_model(table, candidates=("lstm", "lightgbm", BLEND))
    step(f"refitting the selected {selected} on weeks {first}..{last}")
    last_col = panel.week_index(last)
    lstm_model = _train_lstm(cfg, train_panel, last) if selected != "lightgbm" else None
    lgbm = None
    if selected != "lstm":
        department = panel.static["department"]
        if lstm_model is not None and "department" in cfg.lstm.static:
            # the bundle codes department with the LSTM's vocabulary (its training series)
            department = lstm_model.codes_for(panel)[:, cfg.lstm.static.index("department")]
        lgbm = LightGBMForecaster(horizon=HORIZON).fit(panel.units, last_col, department)
    vocab = {"department": list(panel.static_vocab["department"])} if lgbm else {}
    if lstm_model is not None:
        vocab |= lstm_model.static_vocab
    if selected == BLEND:
        model = BlendedForecaster(lstm_model, lgbm, blend)
    else:
        model = lstm_model if selected == "lstm" else lgbm
    bundle = ForecastBundle(
        kind=selected, model=model, static_vocab=vocab, week_start=_week_starts(tenant),
        window=window,
    )  # fmt: skip
    run = ForecastRun(table, selected, window, bundle, seconds=seconds, tuned=tuned)
    run.blend = {BLEND: list(blend.weights)}  # type: ignore[attr-defined]
    # for the MLflow plots; not persisted
    run.panel = panel  # type: ignore[attr-defined]
    run.test_quantiles = test_q[("test", selected)]  # type: ignore[attr-defined]
    return run


def _plot(run: ForecastRun, n: int = 6):
    """Forecast vs actual on the test weeks for the top series (the refit model's history)."""
    from matplotlib.figure import Figure

    panel = run.panel  # type: ignore[attr-defined]
    origin = run.window["origins"]["test"]
    o = panel.week_index(origin)
    fig = Figure(figsize=(11, 6.5), dpi=100)
    axes = fig.subplots(2, 3).ravel()
    last = run.window["last_week"]
    for ax, i in zip(axes, range(min(n, panel.n_series)), strict=False):
        weeks = panel.weeks
        ax.plot(weeks, panel.units[i], color="black", lw=1, label="actual units")
        ax.axvline(origin, color="grey", ls=":", lw=1)
        ax.set_title(f"store {panel.store_ids[i]} / product {panel.product_ids[i]}", fontsize=9)
        ax.set_xlim(max(weeks[0], origin - 20), last)
        ax.tick_params(labelsize=8)
    q = run.test_quantiles  # type: ignore[attr-defined]
    horizon = np.arange(origin + 1, origin + 1 + q.shape[1])
    for ax, i in zip(axes, range(min(n, panel.n_series)), strict=False):
        ax.fill_between(horizon, q[i, :, 0], q[i, :, 2], alpha=0.25, label="p10–p90")
        ax.plot(horizon, q[i, :, 1], lw=1.5, label=f"{run.selected} p50")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Demand forecast vs actual, test weeks {origin + 1}..{last} (o = {o})")
    fig.tight_layout()
    return fig


def log_run(run: ForecastRun, cfg: ForecasterConfig, *, tenant: str) -> str:
    """One MLflow run: parameters, the metrics table beside the baselines, the data window and
    feature service, forecast-vs-actual plots and the bundle as a pyfunc model."""
    import mlflow
    import mlflow.pyfunc

    from training.forecaster import BUNDLE_ARTIFACT, pyfunc_model
    from training.registry import MODEL_ARTIFACT, MODEL_URI_TAG
    from training.tracking import configure_mlflow

    configure_mlflow(cfg.experiment)
    tags = {"model": "forecaster", "tenant": tenant, "selected": run.selected}
    with mlflow.start_run(run_name=f"forecaster-{run.selected}", tags=tags) as active:
        mlflow.log_params(
            {
                "selected": run.selected,
                "n_series": run.window["n_series"],
                "weeks": f"{run.window['first_week']}..{run.window['last_week']}",
                "test_origin": run.window["origins"]["test"],
                "inner_validation_origin": run.window["origins"]["inner_validation"],
                "feature_service": run.window["feature_service"],
                "num_workers": cfg.num_workers,
                **{f"lstm.{k}": v for k, v in cfg.lstm.model_dump().items()},
            }
        )
        for split, rows in run.table.items():
            for name, metrics in rows.items():  # MLflow metric names take no "+" (lstm+lightgbm)
                mlflow.log_metrics(
                    {
                        f"{split}.{name.replace('+', '_plus_')}.{k}": float(v)
                        for k, v in metrics.items()
                        if v is not None
                    }
                )
        selected = run.table["test"][run.selected]
        mlflow.log_metrics({"mase": selected["MASE"], "wape": selected["WAPE"]})
        mlflow.log_dict(
            {"table": run.table, "selected": run.selected, "window": run.window,
             "seconds": run.seconds, "tuned": run.tuned, "blend": getattr(run, "blend", None)},
            "model_card.json",
        )  # fmt: skip
        if hasattr(run, "test_quantiles"):
            mlflow.log_figure(_plot(run), "forecast_vs_actual.png")
        with tempfile.TemporaryDirectory() as d:
            # MLflow keeps the artifact under artifacts/<folder name>: name it `bundle`.
            folder = run.bundle.save(f"{d}/{BUNDLE_ARTIFACT}")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=pyfunc_model(),
                artifacts={BUNDLE_ARTIFACT: str(folder)},
                pip_requirements=_requirements(),
            )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    run.run_id = active.info.run_id
    return run.run_id


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("torch", "lightgbm", "numpy", "pandas", "mlflow")]
