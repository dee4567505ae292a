"""A weighted combination of two forecasters' quantiles (pure numpy, no I/O).

`QuantileBlend` holds, per quantile (p10, p50, p90), the weight of the first member; the
second gets the rest. Its weights are fitted on the inner-validation window only: the p50
weight by MASE (the protocol's primary metric), each interval weight by that quantile's
pinball loss scaled like MASE, from a grid over [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.forecasting.metrics import mase, naive_scale

QUANTILES = (0.1, 0.5, 0.9)
GRID = tuple(round(float(w), 2) for w in np.linspace(0.0, 1.0, 21))


@dataclass(frozen=True)
class QuantileBlend:
    """Weight of the first member per quantile; `combine(a, b)` = w * a + (1 - w) * b."""

    weights: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.weights) != len(QUANTILES) or not all(0 <= w <= 1 for w in self.weights):
            raise ValueError(f"one weight in [0, 1] per quantile {QUANTILES}, got {self.weights}")

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """[n, H, 3] blend of two [n, H, 3] quantile forecasts (non-negative, ordered)."""
        w = np.asarray(self.weights, dtype=np.float64)
        out = w * np.asarray(a, np.float64) + (1.0 - w) * np.asarray(b, np.float64)
        return np.sort(np.maximum(out, 0.0), axis=-1)

    def to_dict(self) -> dict[str, list[float]]:
        return {"weights": [float(w) for w in self.weights]}

    @classmethod
    def from_dict(cls, meta: dict[str, list[float]]) -> QuantileBlend:
        return cls(tuple(float(w) for w in meta["weights"]))  # type: ignore[arg-type]


def scaled_pinball(y: np.ndarray, q: np.ndarray, alpha: float, scale: np.ndarray) -> float:
    """Mean over series of the quantile-`alpha` pinball loss / the series' naive-1 scale."""
    e = np.asarray(y, float) - np.asarray(q, float)
    loss = np.maximum(alpha * e, (alpha - 1) * e).mean(axis=1)
    ok = scale > 0
    return float(np.mean(loss[ok] / scale[ok]))


def fit_blend(
    a: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    history: np.ndarray,
    grid: tuple[float, ...] = GRID,
) -> QuantileBlend:
    """Weights of `a` against `b` ([S, H, 3] forecasts of actuals `y` [S, H]) on one window:
    p50 by MASE, p10 / p90 by scaled pinball loss; ties go to the larger weight of `a`."""
    scale = naive_scale(history)
    weights = []
    for k, alpha in enumerate(QUANTILES):

        def loss(w: float, k: int = k, alpha: float = alpha) -> float:
            q = w * a[..., k] + (1 - w) * b[..., k]
            if alpha == 0.5:
                return mase(y, q, history)
            return scaled_pinball(y, q, alpha, scale)

        weights.append(min(sorted(grid, reverse=True), key=loss))
    return QuantileBlend(tuple(weights))  # type: ignore[arg-type]


def cross_fitted(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, history: np.ndarray, folds: int = 2
) -> np.ndarray:
    """[S, H, 3] blend of `a` and `b` where each series' weights were fitted on the other
    series only (series i in fold i % folds): an out-of-sample score on the fitting window."""
    out = np.zeros(np.shape(a), dtype=np.float64)
    fold = np.arange(len(y)) % folds
    for k in range(folds):
        fit_rows, rows = fold != k, fold == k
        blend = fit_blend(a[fit_rows], b[fit_rows], y[fit_rows], history[fit_rows])
        out[rows] = blend.combine(a[rows], b[rows])
    return out
