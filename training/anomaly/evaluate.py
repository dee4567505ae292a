"""anomaly_cj protocol (PROTOCOLS §4): injections, protocol baselines, detector and ensemble metrics.

Protocol: eligible stores (>= min_days days of sales > 0), window = last `window_days` days,
candidates = window store-days with sales > 0 (row-major: store, then day). For seed s,
`numpy.random.default_rng(s)` picks round(5% of candidates) without replacement, then for each
picked store-day one uniform draw < 0.5 makes it a spike (x3), otherwise a drop (x0.2). Detectors
see only the injected series and are fitted on pre-window days only (never injected).
Development windows (`evaluate_development`): the same on the windows just before the protocol
window, seeds 1000.., where detectors and settings are chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.anomaly.data import DailyPanel, eligible_stores, head, subset, windows_for
from training.models.anomaly import (
    DETECTORS,
    HISTORY_DAYS,
    AnomalyConfig,
    AnomalyEnsemble,
    _lag_median,
    _prev_median,
)

SEEDS = tuple(range(42, 52))
DEV_SEEDS = tuple(range(1000, 1010))  # development windows: never the protocol's seeds
DEV_WINDOWS = 2
METRIC_KEYS = ("auc", "auc_spike", "auc_drop", "ap", "precision_at_5", "recall_at_5")
RATE, SPIKE, DROP = 0.05, 3.0, 0.2
PROTOCOL_BASELINES = ("seasonal_raw", "seasonal_log1p", "iforest_protocol")


def inject(
    panel: DailyPanel, window: slice, seed: int, rate: float = RATE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(injected sales [S, D], labels [S, D] bool, kind [S, D] int8: +1 spike, -1 drop, 0)."""
    cand = candidates(panel, window)
    flat = np.flatnonzero(cand.ravel())
    rng = np.random.default_rng(seed)
    k = int(round(rate * len(flat)))
    picked = flat[rng.choice(len(flat), size=k, replace=False)]
    spike = rng.random(k) < 0.5
    sales = panel.sales.copy().ravel()
    labels = np.zeros(sales.size, dtype=bool)
    kind = np.zeros(sales.size, dtype=np.int8)
    sales[picked] *= np.where(spike, SPIKE, DROP)
    labels[picked] = True
    kind[picked] = np.where(spike, 1, -1)
    shape = panel.sales.shape
    return sales.reshape(shape), labels.reshape(shape), kind.reshape(shape)


def candidates(panel: DailyPanel, window: slice) -> np.ndarray:
    """Bool [S, D]: window store-days with sales > 0 (the panel holds eligible stores only)."""
    cand = np.zeros(panel.sales.shape, dtype=bool)
    cand[:, window] = panel.sales[:, window] > 0
    return cand


def metrics(score: np.ndarray, labels: np.ndarray, kind: np.ndarray) -> dict[str, float]:
    """AUC (all, spikes vs normal, drops vs normal), AP, precision/recall at the top 5%."""
    # an abstaining detector (NaN) ranks its store-day as least anomalous
    s = np.where(np.isfinite(score), score, -np.inf)
    s = np.where(np.isinf(s), np.nanmin(np.where(np.isfinite(score), score, np.nan)) - 1, s)
    top = np.argsort(-s, kind="stable")[: int(round(RATE * len(s)))]
    hits = labels[top].sum()
    return {
        "auc": float(roc_auc_score(labels, s)),
        "auc_spike": float(roc_auc_score(labels[kind >= 0], s[kind >= 0])),
        "auc_drop": float(roc_auc_score(labels[kind <= 0], s[kind <= 0])),
        "ap": float(average_precision_score(labels, s)),
        "precision_at_5": float(hits / len(top)),
        "recall_at_5": float(hits / labels.sum()),
    }


def baseline_seasonal(sales: np.ndarray, pre_stop: int, log: bool) -> np.ndarray:
    """PROTOCOLS baseline: |y - median(y[t-7,14,21,28])| / MAD of pre-window residuals."""
    x = np.log1p(np.maximum(sales, 0)) if log else sales
    r = x - _lag_median(x, (7, 14, 21, 28))
    rp = r[:, 28:pre_stop]
    med = np.median(rp, axis=1, keepdims=True)
    mad = np.median(np.abs(rp - med), axis=1, keepdims=True)
    return np.abs(r) / np.maximum(mad, 1e-9)


def baseline_iforest(sales: np.ndarray, dow: np.ndarray, pre_stop: int, seed: int) -> np.ndarray:
    """PROTOCOLS baseline: IsolationForest(200) on y/store median, y/median prev 7 and 28, dow."""
    med = np.median(sales[:, :pre_stop], axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        feats = np.stack(
            [
                sales / np.maximum(med, 1e-9),
                sales / np.maximum(_prev_median(sales, 7), 1e-9),
                sales / np.maximum(_prev_median(sales, 28), 1e-9),
                np.broadcast_to(dow[None, :], sales.shape).astype(float),
            ],
            axis=-1,
        )
    model = IsolationForest(n_estimators=200, random_state=seed)
    model.fit(feats[:, 28:pre_stop].reshape(-1, 4))
    out = np.full(sales.shape, np.nan)
    out[:, pre_stop:] = -model.score_samples(feats[:, pre_stop:].reshape(-1, 4)).reshape(
        len(sales), -1
    )
    return out


def score_all(
    panel: DailyPanel, injected: np.ndarray, pre: slice, window: slice, cfg: AnomalyConfig
) -> dict[str, np.ndarray]:
    """Scores [S, D] of the protocol baselines, each detector and the ensemble on `injected`."""
    seen = replace(panel, sales=injected)
    out = {
        "seasonal_raw": baseline_seasonal(injected, pre.stop, log=False),
        "seasonal_log1p": baseline_seasonal(injected, pre.stop, log=True),
        "iforest_protocol": baseline_iforest(injected, seen.dow, pre.stop, cfg.seed),
    }
    # fitting reads only pre-window days, which injection never touches: fit once per panel
    model = AnomalyEnsemble(cfg).fit(panel, pre)
    res = model.score(seen, window)
    for k, name in enumerate(DETECTORS):
        full = np.full(panel.sales.shape, np.nan)
        full[:, res.days] = res.detector_scores[k]
        out[name] = full
    full = np.full(panel.sales.shape, np.nan)
    full[:, res.days] = res.score
    out["ensemble"] = full
    return out


def _eligible(panel: DailyPanel, cfg: AnomalyConfig) -> np.ndarray:
    """The protocol's stores (>= min_days days of sales > 0), or a ValueError saying why none."""
    elig = eligible_stores(panel, cfg.min_days)
    if not elig.any():
        most = int((panel.sales > 0).sum(axis=1).max()) if len(panel.sales) else 0
        raise ValueError(
            f"no store has sales on at least min_days = {cfg.min_days} days (of "
            f"{len(panel.sales)} stores the longest history has {most}): load more history "
            "or households, or lower min_days in the anomaly config"
        )
    return elig


def _score_seeds(
    p: DailyPanel,
    cfg: AnomalyConfig,
    seeds: tuple[int, ...],
    on_row: Callable[[dict], None] | None,
    label: dict | None = None,
) -> list[dict]:
    """Metric rows (seed x detector) on the last `window_days` days of `p`, fitted before them."""
    pre, window = windows_for(p, cfg.window_days)
    cand = candidates(p, window)
    rows = []
    for seed in seeds:
        injected, labels, kind = inject(p, window, seed)
        scores = score_all(p, injected, pre, window, cfg)
        for name, s in scores.items():
            row = {**(label or {}), "seed": seed, "detector": name}
            row.update(metrics(s[cand], labels[cand], kind[cand]))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _mean(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean of every metric per detector over `rows`."""
    names = list(dict.fromkeys(r["detector"] for r in rows))
    keys = [k for k in METRIC_KEYS if k in rows[0]]
    return {
        n: {k: float(np.mean([r[k] for r in rows if r["detector"] == n])) for k in keys}
        for n in names
    }


def evaluate_protocol(
    panel: DailyPanel,
    cfg: AnomalyConfig,
    on_row: Callable[[dict], None] | None = None,
    seeds: tuple[int, ...] = SEEDS,
) -> dict:
    """Run the protocol; returns {"n_stores", "n_candidates", "per_seed", "mean": {name: metrics}}.

    `panel` may hold every store: the protocol keeps the eligible ones itself.
    """
    elig = _eligible(panel, cfg)
    p = subset(panel, elig)
    _, window = windows_for(p, cfg.window_days)
    rows = _score_seeds(p, cfg, seeds, on_row)
    return {
        "n_stores": int(elig.sum()),
        "skipped_stores": int((~elig).sum()),
        "n_candidates": int(candidates(p, window).sum()),
        "window": [str(p.dates[window][0]), str(p.dates[window][-1])],
        "per_seed": rows,
        "mean": _mean(rows),
    }


def evaluate_development(
    panel: DailyPanel,
    cfg: AnomalyConfig,
    windows: int = DEV_WINDOWS,
    seeds: tuple[int, ...] = DEV_SEEDS,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """The protocol on the `windows` windows of `window_days` days just before the protocol
    window (Complete Journey: 2017-07-05..09-02 and 09-03..11-01), each fitted on the days
    before it, with injection seeds `seeds`: where detectors and settings are chosen. The panel
    is cut at each window's end, so the protocol window is never read; the stores are the
    protocol's (eligible over the whole panel)."""
    elig = _eligible(panel, cfg)
    p = subset(panel, elig)
    pre, _ = windows_for(p, cfg.window_days)
    rows, spans, n_cand = [], [], 0
    for k in range(windows, 0, -1):
        stop = pre.stop - (k - 1) * cfg.window_days
        cut = head(p, stop)
        _, window = windows_for(cut, cfg.window_days)
        if window.start <= HISTORY_DAYS:
            raise ValueError(f"development window {k} has <= {HISTORY_DAYS} days before it")
        span = [str(cut.dates[window][0]), str(cut.dates[window][-1])]
        spans.append(span)
        n_cand += int(candidates(cut, window).sum())
        rows += _score_seeds(cut, cfg, seeds, on_row, {"window": span[0]})
    return {
        "n_stores": int(elig.sum()),
        "n_candidates": n_cand,
        "windows": spans,
        "seeds": list(seeds),
        "per_window": {s[0]: _mean([r for r in rows if r["window"] == s[0]]) for s in spans},
        "mean": _mean(rows),
    }


def quality(panel: DailyPanel, cfg: AnomalyConfig, data: str = "Complete Journey") -> dict:
    """The protocol as a DESIGN §5 bench figure: ensemble mean AUC vs the best single baseline."""
    res = evaluate_protocol(panel, cfg)
    mean = res["mean"]
    base = max(PROTOCOL_BASELINES, key=lambda n: mean[n]["auc"])
    value = mean["ensemble"]["auc"]
    return {
        "figure": "anomaly_quality",
        "protocol": "anomaly_cj (PROTOCOLS §4)",
        "data": f"{data}: {res['n_stores']} stores, window {res['window'][0]}..{res['window'][1]}",
        "n": res["n_candidates"],
        "value": round(value, 4),
        "unit": "ROC AUC (mean over seeds 42..51)",
        "baseline": base,
        "baseline_value": round(mean[base]["auc"], 4),
        "ratio": round(value / mean[base]["auc"], 4),
        "detectors": {n: {k: round(v, 4) for k, v in m.items()} for n, m in mean.items()},
        "ensemble": {k: round(v, 4) for k, v in mean["ensemble"].items()},
    }
