"""One churn training run on a tenant's warehouse: churn_cj on the tenant's own weeks.

Windows come from the tenant's weeks (label = the last 9 weeks, 4 lead weeks, features
before; Complete Journey: features to week 40, label 45..53). The training features are the
churn snapshot at the feature cutoff, read through Feast's point-in-time join (`churn_v1`);
labels come from the warehouse. Every model of the protocol (our calibrated LightGBM, the
logistic baseline, recency alone, the fixed LightGBM baseline) is scored on the same 20
stratified splits in the same run; the served model is then refit on every household.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.churn import ChurnConfig

# Risk bands of the route (documented in the API): probability ranges, upper bound excluded.
RISK_BANDS = (("low", 0.0, 0.2), ("medium", 0.2, 0.5), ("high", 0.5, 1.0001))


def risk_band(p: float) -> str:
    return next(name for name, lo, hi in RISK_BANDS if lo <= p < hi)


def snapshot_times(items: pd.DataFrame) -> dict[str, tuple[int, datetime]]:
    """{"train": (feature end week, as-of), "now": (newest week, as-of)}: the as-of of a
    snapshot is the end of the newest day with a transaction in its weeks (UTC). "train" is
    absent when the tenant has too few weeks for the churn windows."""
    from features.churn import windows_for

    weeks = items["week"]
    cutoffs = {"now": int(weeks.max())}
    try:
        cutoffs["train"] = windows_for(int(weeks.min()), int(weeks.max())).feature_end_week
    except ValueError:
        pass
    out = {}
    for name, week in cutoffs.items():
        last = items.loc[weeks <= week, "transaction_timestamp"].max()
        as_of = (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).tz_localize("UTC")
        out[name] = (week, as_of.to_pydatetime())
    return out


@dataclass
class ChurnBundle:
    """The served churn model: calibrated LightGBM + what the route reports beside it."""

    model: Any  # training.models.churn.ChurnModel
    window: dict[str, Any] = field(default_factory=dict)
    docs: dict[str, str] = field(default_factory=dict)

    KIND = "churn"

    def analyze(self, X: np.ndarray) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """(calibrated probabilities, top-3 drivers per row) for a [n, features] matrix."""
        return self.model.predict_proba(X), self.model.drivers(X, top=3)

    def save(self, folder: Path) -> None:
        from training.bundles import write_meta

        self.model.save(folder / "model")
        write_meta(
            folder, kind=self.KIND, loader="training.churn_run:ChurnBundle",
            window=self.window, docs=self.docs,
        )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> ChurnBundle:
        from training.bundles import read_meta
        from training.models.churn import ChurnModel

        meta = read_meta(folder)
        return cls(ChurnModel.load(folder / "model"), meta.get("window", {}), meta.get("docs", {}))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """pyfunc: rows of the model's features → probability and risk band."""
        p = self.model.predict_proba(frame[self.model.feature_names].to_numpy(np.float64))
        return pd.DataFrame({"probability": p, "risk_band": [risk_band(x) for x in p]})


@dataclass
class ChurnRun:
    table: dict[str, Any]
    window: dict[str, Any]
    bundle: ChurnBundle
    metric: float
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_churn(
    *, tenant: str, cfg: ChurnConfig, on_step: Callable[[str], None] | None = None
) -> ChurnRun:
    """Judge the churn models on the tenant's data and refit the served one."""
    from core.errors import ValidationFailed
    from features.churn import (
        BTYD_DOCS,
        FEATURE_DOCS,
        FEATURE_NAMES,
        churn_feature_set,
        churn_labels,
        windows_for,
    )
    from features.offline import churn_frame as feast_churn_frame
    from training.churn.evaluate import ChurnFrame, evaluate_protocol
    from training.datasets import warehouse_line_items
    from training.models.churn import ChurnModel

    step = on_step or (lambda text: None)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    step(f"loading the line items of tenant {tenant!r}")
    items, _ = warehouse_line_items(tenant)
    if items.empty:
        raise ValidationFailed(f"tenant {tenant!r} has no transactions", details={"tenant": tenant})
    times = snapshot_times(items)
    if "train" not in times:
        raise ValidationFailed(
            f"tenant {tenant!r} has too few weeks ({items['week'].min()}..{items['week'].max()})"
            " to train a churn model: it needs 26 feature weeks, 4 lead weeks and 9 label weeks",
            details={"tenant": tenant},
        )
    week, as_of = times["train"]
    win = windows_for(int(items["week"].min()), int(items["week"].max()))
    step(f"reading churn features as of {as_of.date()} through Feast (churn_v1)")
    X = feast_churn_frame(tenant=tenant, as_of=as_of).set_index("customer_id")
    if X.empty:
        raise ValidationFailed(
            f"no churn features for tenant {tenant!r} as of {as_of.isoformat()}: run "
            "`retailpulse features materialize`",
            details={"tenant": tenant},
        )
    X = X[list(FEATURE_NAMES)].astype(np.float64)
    seconds["data"] = round(time.perf_counter() - start, 1)
    y = churn_labels(items, X.index, label_weeks=(win.label_start, win.label_end))
    recent = items["week"].between(win.feature_end_week - cfg.clean_weeks + 1, win.feature_end_week)
    clean = X.index.isin(items.loc[recent, "customer_id"].unique())
    if y.nunique() < 2:
        raise ValidationFailed(
            f"tenant {tenant!r}: every household is labelled {'churned' if y.iloc[0] else 'active'}"
            f" in weeks {win.label_start}..{win.label_end}; a churn model needs both",
            details={"tenant": tenant},
        )
    # the bad-input accounting of the snapshot (rows skipped, gap features filled) for the card
    built = churn_feature_set(items, feature_end_week=week)
    pops = {"main": np.ones(len(y), bool), "clean": clean}
    frame = ChurnFrame(X, y, pops, win, built.skipped_rows, dict(built.filled))
    step(f"judging lightgbm, logistic, recency and BG/NBD on {cfg.splits} stratified splits")
    start = time.perf_counter()
    table = evaluate_protocol(items, None, cfg, splits=cfg.splits, frame=frame)
    seconds["evaluate"] = round(time.perf_counter() - start, 1)
    step("refitting the calibrated LightGBM on every household")
    model = ChurnModel(cfg.model).fit(X.to_numpy(), y.to_numpy().astype(int), FEATURE_NAMES)
    window = {
        "feature_end_week": win.feature_end_week,
        "label_weeks": [win.label_start, win.label_end],
        "as_of": as_of.isoformat(),
        "households": int(len(y)),
        "churn_rate": float(y.mean()),
        "splits": cfg.splits,
        "feature_service": "churn_v1",
    }
    bundle = ChurnBundle(model, window, {**FEATURE_DOCS, **BTYD_DOCS})
    metric = table["main"]["models"]["lightgbm"]["roc_auc_mean"]
    return ChurnRun(table, window, bundle, metric, seconds=seconds)


def log_run(run: ChurnRun, cfg: ChurnConfig, *, tenant: str) -> str:
    """One MLflow run: parameters, the table beside the baselines, the calibration plot, and
    the bundle as a pyfunc model."""
    import mlflow

    from training.bundles import log_bundle
    from training.churn.evaluate import calibration_plot
    from training.tracking import configure_mlflow

    configure_mlflow("retailpulse-churn")
    with mlflow.start_run(run_name="churn-lightgbm", tags={"model": "churn", "tenant": tenant}):
        mlflow.log_params(
            {**{f"model.{k}": v for k, v in cfg.model.model_dump().items()}, **run.window}
        )
        for pop in ("main", "clean"):
            for name, row in run.table[pop]["models"].items():
                mlflow.log_metrics(
                    {f"{pop}.{name}.{k}": float(v) for k, v in row.items() if v is not None}
                )
        mlflow.log_metric("roc_auc", run.metric)
        card = {k: v for k, v in run.table.items() if k not in ("main", "clean")}
        for pop in ("main", "clean"):
            card[pop] = {k: v for k, v in run.table[pop].items() if k != "calibration"}
        mlflow.log_dict({"table": card, "window": run.window, "seconds": run.seconds},
                        "model_card.json")  # fmt: skip
        calib = run.table["main"].get("calibration") or {}
        if calib.get("y"):
            with tempfile.TemporaryDirectory() as d:
                path = calibration_plot(
                    np.array(calib["y"]), np.array(calib["p"]), Path(d) / "calibration.png"
                )
                mlflow.log_artifact(str(path))
        log_bundle(run.bundle.save, requirements=["lightgbm", "numpy", "pandas", "scipy", "mlflow"])
        run.run_id = mlflow.active_run().info.run_id
    return run.run_id
