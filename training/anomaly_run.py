"""The anomaly detector on a tenant's warehouse: its store x day panel from the SQL rollup.

`panel_from_rollup` turns `store_daily_sales` rows (features/store_daily.py) into the same
`DailyPanel` that `training.anomaly.data.daily_panel` builds from line items, so the protocol
code, the platform's training run and the serving deployment score identical series (an
integration test compares both on the sample warehouse).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.anomaly.data import DailyPanel, assemble


def panel_from_rollup(
    frame: pd.DataFrame,
    *,
    start: date | np.datetime64 | None = None,
    end: date | np.datetime64 | None = None,
    store_ids: list[str] | None = None,
) -> DailyPanel:
    """Dense panel over `start`..`end` (default: the rows' span) of `store_ids` (default: the
    rows' stores); a store-day without a row sold 0."""
    days = frame["business_date"].to_numpy("datetime64[D]")
    lo = np.datetime64(start, "D") if start is not None else days.min()
    hi = np.datetime64(end, "D") if end is not None else days.max()
    dates = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    stores = np.array(sorted(store_ids if store_ids is not None else frame["store_id"].unique()))
    stores = stores.astype(str)
    shape = (len(stores), len(dates))
    sales, transactions = np.zeros(shape), np.zeros(shape)
    price = np.full(shape, np.nan)
    keep = (days >= lo) & (days <= hi) & np.isin(frame["store_id"].to_numpy(str), stores)
    rows = frame[keep]
    s_idx = np.searchsorted(stores, rows["store_id"].to_numpy(str))
    d_idx = (rows["business_date"].to_numpy("datetime64[D]") - lo).astype(np.int64)
    sales[s_idx, d_idx] = rows["sales"].to_numpy(np.float64)
    transactions[s_idx, d_idx] = rows["transactions"].to_numpy(np.float64)
    price[s_idx, d_idx] = rows["median_unit_price"].to_numpy(np.float64)
    return assemble(stores, dates, sales, transactions, price)


def tenant_panel(tenant: str, url: str | None = None) -> DailyPanel:
    """The tenant's whole store x day panel from the warehouse rollup."""
    from core.db import connect
    from core.errors import ValidationFailed
    from features.store_daily import load_store_daily

    with connect(url) as conn:
        frame = load_store_daily(conn, tenant=tenant)
    if frame.empty:
        raise ValidationFailed(
            f"no store x day sales for tenant {tenant!r}: run `retailpulse features materialize`",
            details={"tenant": tenant},
        )
    return panel_from_rollup(frame)


# ----------------------------------------------------------------------------- training run

# A store-day is flagged when the ensemble score (a weighted mean of the detectors' pre-window
# percentiles) reaches this and at least one weighted detector voted.
FLAG_SCORE = 0.98
LOOKBACK_DAYS = 70  # history the detectors read before the first scored day (56 + margin)


def flagged_day(
    store_id: Any,
    day: Any,
    sales: float,
    expected: float,
    score: float,
    spike: bool,
    voted: np.ndarray,
) -> dict[str, Any]:
    """One flagged store-day as the route and batch scoring report it (`voted`: [K] bool over
    `DETECTORS`, the weighted detectors that voted)."""
    from training.models.anomaly import DETECTORS

    return {
        "storeId": str(store_id),
        "date": str(day),
        "sales": round(float(sales), 2),
        "expected": round(float(expected), 2),
        "score": round(float(score), 4),
        "direction": "spike" if spike else "drop",
        "detectors": [d for k, d in enumerate(DETECTORS) if voted[k]],
    }


@dataclass
class AnomalyBundle:
    """The served detector: the ensemble fitted on every day of the tenant's history."""

    ensemble: Any  # training.models.anomaly.AnomalyEnsemble
    window: dict[str, Any] = field(default_factory=dict)
    flag_score: float = FLAG_SCORE

    KIND = "anomaly"

    def save(self, folder: Path) -> None:
        from training.bundles import write_meta

        self.ensemble.save(folder / "ensemble")
        write_meta(
            folder, kind=self.KIND, loader="training.anomaly_run:AnomalyBundle",
            window=self.window, flag_score=self.flag_score,
        )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> AnomalyBundle:
        from training.bundles import read_meta
        from training.models.anomaly import AnomalyEnsemble

        meta = read_meta(folder)
        return cls(AnomalyEnsemble.load(folder / "ensemble"), meta["window"], meta["flag_score"])

    def flags(self, res: Any) -> tuple[np.ndarray, np.ndarray]:
        """(flagged [S, T], voted [K, S, T]) of `EnsembleScores`: a store-day is flagged when
        its score reaches `flag_score` and a detector with a weight voted for it."""
        from training.models.anomaly import DETECTORS

        weighted = np.array([self.ensemble.cfg.weights.get(d, 0.0) > 0 for d in DETECTORS])
        voted = res.votes & weighted[:, None, None]
        return (np.nan_to_num(res.score) >= self.flag_score) & voted.any(axis=0), voted

    def detect(self, panel: DailyPanel, days: np.ndarray) -> list[dict[str, Any]]:
        """Flagged store-days among column indices `days` of `panel`, highest score first."""
        res = self.ensemble.score(panel, days)
        flagged, voted = self.flags(res)
        out = []
        for s, t in zip(*np.nonzero(flagged), strict=True):
            col = res.days[t]
            out.append(
                flagged_day(
                    panel.store_ids[s], panel.dates[col], panel.sales[s, col],
                    res.expected[s, t], res.score[s, t], res.direction[s, t] >= 0, voted[:, s, t],
                )
            )  # fmt: skip
        return sorted(out, key=lambda a: -a["score"])

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """pyfunc: store_daily_sales rows → the flagged store-days of their last 60 days."""
        panel = panel_from_rollup(frame)
        days = np.arange(max(0, len(panel.dates) - 60), len(panel.dates))
        return pd.DataFrame(self.detect(panel, days))


@dataclass
class AnomalyRun:
    table: dict[str, Any]
    window: dict[str, Any]
    bundle: AnomalyBundle
    metric: float
    tuned: dict[str, Any] | None = None
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_anomaly(
    *,
    tenant: str,
    cfg: Any,
    seeds: tuple[int, ...],
    tune_samples: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> AnomalyRun:
    """anomaly_cj on the tenant's last 60 days (every detector and the ensemble, same seeds),
    then the ensemble refit on all days for serving. `tune_samples` > 0 first searches the
    config's space with Ray Tune on the pre-window days only."""
    from training.anomaly.evaluate import evaluate_protocol
    from training.anomaly.tune import apply_params, tune_anomaly
    from training.models.anomaly import AnomalyEnsemble

    step = on_step or (lambda text: None)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    step(f"loading the store x day sales of tenant {tenant!r}")
    panel = tenant_panel(tenant)
    seconds["data"] = round(time.perf_counter() - start, 1)
    tuned = None
    if tune_samples:
        step(f"Ray Tune: {tune_samples} trials on the pre-window days")
        start = time.perf_counter()
        tuned = tune_anomaly(panel, cfg, num_samples=tune_samples)
        cfg = apply_params(cfg, tuned["params"])
        seconds["tune"] = round(time.perf_counter() - start, 1)
    step(f"judging the detectors and the ensemble on {len(seeds)} injection seeds")
    start = time.perf_counter()
    try:
        table = evaluate_protocol(panel, cfg, seeds=seeds)
    except ValueError as exc:  # too short a history, no eligible store …
        from core.errors import ValidationFailed

        raise ValidationFailed(f"tenant {tenant!r}: {exc}", details={"tenant": tenant}) from exc
    seconds["evaluate"] = round(time.perf_counter() - start, 1)
    step("refitting the ensemble on every day for serving")
    ensemble = AnomalyEnsemble(cfg).fit(panel, slice(0, len(panel.dates)))
    window = {
        "window": table["window"],
        "stores": table["n_stores"],
        "skipped_stores": table["skipped_stores"],
        "candidates": table["n_candidates"],
        "seeds": list(seeds),
        "last_day": str(panel.dates[-1]),
        "feature_service": "anomaly_v1",
    }
    metric = table["mean"]["ensemble"]["auc"]
    bundle = AnomalyBundle(ensemble, window)
    return AnomalyRun(table, window, bundle, metric, tuned=tuned, seconds=seconds)


def log_run(run: AnomalyRun, *, tenant: str) -> str:
    """One MLflow run: the config, every detector beside the ensemble, and the bundle."""
    import mlflow

    from training.bundles import log_bundle
    from training.tracking import configure_mlflow

    configure_mlflow("retailpulse-anomaly")
    with mlflow.start_run(run_name="anomaly-ensemble", tags={"model": "anomaly", "tenant": tenant}):
        cfg = run.bundle.ensemble.cfg.model_dump(exclude={"search_space"})
        mlflow.log_params({**{k: v for k, v in cfg.items() if not isinstance(v, dict)},
                           **{f"weight.{k}": v for k, v in cfg["weights"].items()},
                           "window": "..".join(run.window["window"])})  # fmt: skip
        for name, row in run.table["mean"].items():
            mlflow.log_metrics({f"{name}.{k}": float(v) for k, v in row.items()})
        mlflow.log_metric("roc_auc", run.metric)
        card = {k: v for k, v in run.table.items() if k != "per_seed"}
        mlflow.log_dict({"table": card, "window": run.window, "tuned": run.tuned,
                         "seconds": run.seconds}, "model_card.json")  # fmt: skip
        mlflow.log_figure(_auc_plot(run.table["mean"]), "detectors_auc.png")
        log_bundle(run.bundle.save, requirements=["scikit-learn", "scipy", "numpy", "mlflow"])
        run.run_id = mlflow.active_run().info.run_id
    return run.run_id


def _auc_plot(mean: dict[str, dict[str, float]]):
    """Bars: AUC overall, on spikes and on drops per detector (ensemble last)."""
    from matplotlib.figure import Figure

    names = sorted(mean, key=lambda n: (n == "ensemble", mean[n]["auc"]))
    fig = Figure(figsize=(9, 4.5), dpi=100)
    ax = fig.subplots()
    x = np.arange(len(names))
    for i, key in enumerate(("auc", "auc_spike", "auc_drop")):
        ax.bar(x + (i - 1) * 0.27, [mean[n].get(key, np.nan) for n in names], 0.27, label=key)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.8, color="grey", ls=":", lw=1)
    ax.legend(fontsize=8)
    ax.set_title("Sales-anomaly detectors: ROC AUC on injected spikes and drops")
    fig.tight_layout()
    return fig
