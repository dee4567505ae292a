"""The churn_cj protocol (PROTOCOLS §5) on any retailer's line items, plus the bench figure.

Windows come from `windows_for` on the observed weeks (CJ: features ..40, label 45..53).
Populations: main = active in feature weeks; clean = also active in the last `clean_weeks`
feature weeks (CJ: 31..40). Each of `splits` stratified 75/25 splits (random_state = seed)
fits every model on the training part only and scores the test part.

Beside the protocol's models the table carries the BG/NBD model alone ("btyd": its probability
of no purchase in the label weeks) and the logistic baseline with the BG/NBD features appended
("logistic_btyd"); the BG/NBD parameters are fitted on each split's training households only.

`products` is accepted for the platform's uniform call shape but not used: the protocol counts
every line item (fuel included) as activity — its population sizes hold only unfiltered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from features.churn import (
    FEATURE_NAMES,
    ChurnWindows,
    churn_feature_set,
    churn_labels,
    windows_for,
)
from training.churn import ChurnConfig
from training.models.churn import BtydFeatures, ChurnModel, ChurnParams, LogisticBaseline

# PROTOCOLS §5 baseline LightGBM: fixed, uncalibrated
RAW_LGB = ChurnParams(
    num_rounds=300, learning_rate=0.03, num_leaves=15, min_data_in_leaf=20, calibration="none"
)
MODELS = ("lightgbm", "logistic", "recency", "lightgbm_raw", "btyd", "logistic_btyd")


@dataclass
class ChurnFrame:
    """Features, labels and population masks of one protocol run."""

    X: pd.DataFrame
    y: pd.Series
    populations: dict[str, np.ndarray]
    windows: ChurnWindows
    skipped_rows: int
    filled: dict[str, int]


def churn_frame(items: pd.DataFrame, *, clean_weeks: int = 10) -> ChurnFrame:
    """Build the protocol's features, labels and main/clean masks from line items."""
    weeks = items["week"].dropna()
    win = windows_for(int(weeks.min()), int(weeks.max()))
    fs = churn_feature_set(items, feature_end_week=win.feature_end_week)
    y = churn_labels(items, fs.frame.index, label_weeks=(win.label_start, win.label_end))
    recent = items["week"].between(win.feature_end_week - clean_weeks + 1, win.feature_end_week)
    clean = fs.frame.index.isin(items.loc[recent, "customer_id"].unique())
    pops = {"main": np.ones(len(y), dtype=bool), "clean": clean}
    return ChurnFrame(fs.frame, y, pops, win, fs.skipped_rows, fs.filled)


def _fit_score(
    name: str, params: ChurnParams, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray
) -> np.ndarray:
    if name == "recency":
        return Xte[:, FEATURE_NAMES.index("recency_days")]
    if name == "logistic":
        return LogisticBaseline().fit(Xtr, ytr).predict_proba(Xte)
    if name in ("btyd", "logistic_btyd"):
        bt = BtydFeatures().fit(Xtr, FEATURE_NAMES)
        Zte = bt.transform(Xte, FEATURE_NAMES)
        if name == "btyd":
            return Zte[:, -2]  # P(no purchase in the label weeks)
        return LogisticBaseline().fit(bt.transform(Xtr, FEATURE_NAMES), ytr).predict_proba(Zte)
    p = params if name == "lightgbm" else RAW_LGB
    return ChurnModel(p).fit(Xtr, ytr, FEATURE_NAMES).predict_proba(Xte)


def evaluate_protocol(
    items: pd.DataFrame,
    products: pd.DataFrame | None,
    cfg: ChurnConfig,
    *,
    splits: int = 20,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    models: tuple[str, ...] = MODELS,
    frame: ChurnFrame | None = None,
) -> dict[str, Any]:
    """Run churn_cj: per population and model, mean/sd ROC AUC, mean PR AUC and Brier score.

    `on_row` receives one dict per (population, seed, model). The "recency" score is days, not a
    probability, so it has no Brier score. The result also keeps the last split's lightgbm test
    predictions per population (`calibration`) for a reliability diagram.
    """
    fr = frame if frame is not None else churn_frame(items, clean_weeks=cfg.clean_weeks)
    out: dict[str, Any] = {
        "windows": fr.windows._asdict(),
        "skipped_rows": fr.skipped_rows,
        "filled": fr.filled,
        "splits": splits,
    }
    for pop, mask in fr.populations.items():
        X, y = fr.X.to_numpy()[mask], fr.y.to_numpy()[mask]
        rows: dict[str, list[dict[str, float]]] = {m: [] for m in models}
        calib: dict[str, list[float]] = {}
        for seed in range(splits):
            tr, te = train_test_split(
                np.arange(len(y)), test_size=cfg.test_size, stratify=y, random_state=seed
            )
            for name in models:
                p = _fit_score(name, cfg.model, X[tr], y[tr], X[te])
                row = {
                    "roc_auc": float(roc_auc_score(y[te], p)),
                    "pr_auc": float(average_precision_score(y[te], p)),
                    "brier": float(brier_score_loss(y[te], p)) if name != "recency" else np.nan,
                }
                rows[name].append(row)
                if on_row is not None:
                    on_row({"population": pop, "seed": seed, "model": name, **row})
                if name == "lightgbm" and seed == splits - 1:
                    calib = {"y": y[te].astype(int).tolist(), "p": p.tolist()}
        out[pop] = {
            "households": int(mask.sum()),
            "churn_rate": float(y.mean()),
            "models": {m: _summary(r) for m, r in rows.items()},
            "calibration": calib,
        }
    return out


def _summary(rows: list[dict[str, float]]) -> dict[str, float | None]:
    auc = np.array([r["roc_auc"] for r in rows])
    brier = np.array([r["brier"] for r in rows])
    return {
        "roc_auc_mean": float(auc.mean()),
        "roc_auc_sd": float(auc.std(ddof=1)) if len(auc) > 1 else 0.0,
        "pr_auc_mean": float(np.mean([r["pr_auc"] for r in rows])),
        "brier_mean": None if np.isnan(brier).all() else float(np.nanmean(brier)),
    }


def calibration_plot(y: np.ndarray, p: np.ndarray, path: str | Path, bins: int = 10) -> Path:
    """Save a reliability diagram (quantile bins: mean predicted vs observed churn) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    pred = [p[which == b].mean() for b in range(len(edges) - 1) if (which == b).any()]
    obs = [y[which == b].mean() for b in range(len(edges) - 1) if (which == b).any()]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.plot(pred, obs, "o-", label="model")
    ax.set_xlabel("mean predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title(f"churn reliability (n={len(y)})")
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def quality(items: pd.DataFrame, products: pd.DataFrame | None, cfg: ChurnConfig) -> dict[str, Any]:
    """The churn_quality bench figure (DESIGN §5 shape): our main ROC AUC vs logistic."""
    res = evaluate_protocol(items, products, cfg, splits=cfg.splits)
    main = res["main"]["models"]
    ours, base = main["lightgbm"]["roc_auc_mean"], main["logistic"]["roc_auc_mean"]

    def strip(pop: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in pop.items() if k != "calibration"}

    return {
        "figure": "churn_quality",
        "protocol": "churn_cj (PROTOCOLS §5)",
        "data": "line items, windows "
        + "/".join(str(v) for v in res["windows"].values())
        + " (feature end / label start / label end week)",
        "n": res["main"]["households"],
        "value": ours,
        "unit": f"ROC AUC, mean of {res['splits']} stratified 75/25 splits",
        "baseline": "logistic",
        "baseline_value": base,
        "ratio": ours / base,
        "skipped_rows": res["skipped_rows"],
        "filled": res["filled"],
        "main": strip(res["main"]),
        "clean": strip(res["clean"]),
    }
