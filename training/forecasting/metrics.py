"""PROTOCOLS §1 forecast metrics, pooled over series x horizon cells.

Arrays are [S, H] (actuals and point forecasts); `history` is [S, T] of the weeks up to the
origin, used only by MASE's per-series scale (in-sample naive-1 MAE).
"""

from __future__ import annotations

import numpy as np


def mae(y: np.ndarray, f: np.ndarray) -> float:
    """Mean absolute error over all cells."""
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(f, float))))


def rmse(y: np.ndarray, f: np.ndarray) -> float:
    """Root mean squared error over all cells."""
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(f, float)) ** 2)))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    """Mean of 2|e| / (|y| + |f|) in percent; a cell with y = f = 0 counts as 0."""
    y, f = np.asarray(y, float), np.asarray(f, float)
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(2 * np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.mean(ratio))


def wape(y: np.ndarray, f: np.ndarray) -> float:
    """Σ|e| / Σ|y| in percent."""
    y, f = np.asarray(y, float), np.asarray(f, float)
    return float(100 * np.abs(y - f).sum() / np.abs(y).sum())


def naive_scale(history: np.ndarray) -> np.ndarray:
    """Per series: mean |y_t - y_{t-1}| over the in-sample weeks (the naive-1 MAE)."""
    h = np.asarray(history, float)
    return np.mean(np.abs(np.diff(h, axis=1)), axis=1)


def mase(y: np.ndarray, f: np.ndarray, history: np.ndarray) -> float:
    """Mean over series of (series MAE / in-sample naive-1 MAE); series with a 0 scale skipped."""
    scale = naive_scale(history)
    series_mae = np.mean(np.abs(np.asarray(y, float) - np.asarray(f, float)), axis=1)
    ok = scale > 0
    return float(np.mean(series_mae[ok] / scale[ok]))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of cells (percent) with lo <= y <= hi."""
    y = np.asarray(y, float)
    return float(100 * np.mean((y >= lo) & (y <= hi)))


def forecast_metrics(y: np.ndarray, quantiles: np.ndarray, history: np.ndarray) -> dict[str, float]:
    """All protocol metrics for forecasts [S, H, 3] (p10, p50, p90); point forecast = p50."""
    q = np.asarray(quantiles, float)
    if q.ndim == 2:  # point forecasts only: no interval
        q = np.stack([q, q, q], axis=-1)
    f = q[..., 1]
    return {
        "MAE": mae(y, f),
        "RMSE": rmse(y, f),
        "sMAPE": smape(y, f),
        "WAPE": wape(y, f),
        "MASE": mase(y, f, history),
        "coverage_p10_p90": coverage(y, q[..., 0], q[..., 2]),
    }
