"""Forecast baselines of PROTOCOLS §1: naive, mean of the last 4 weeks, global LightGBM.

Every model returns [S, H, 3] (p10, p50, p90) from a units panel [S, T] and an origin column.
Naive and mean-4 intervals come from empirical quantiles of their own in-sample errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)
N_LAGS = 8


def _interval_from_residuals(
    units: np.ndarray, origin: int, horizon: int, point_fn, n_back: int = 12
) -> np.ndarray:
    """Per-h empirical (p10, p90) of scaled errors of `point_fn` at the last `n_back` origins."""
    lo_q, hi_q = np.zeros(horizon), np.zeros(horizon)
    for h in range(1, horizon + 1):
        errs = []
        for o in range(max(N_LAGS - 1, origin - h - n_back + 1), origin - h + 1):
            level = np.maximum(units[:, o - 3 : o + 1].mean(axis=1), 1.0)
            errs.append((units[:, o + h] - point_fn(units, o)) / level)
        e = np.concatenate(errs) if errs else np.zeros(1)
        lo_q[h - 1], hi_q[h - 1] = np.quantile(e, QUANTILES[0]), np.quantile(e, QUANTILES[2])
    return lo_q, hi_q


def _with_interval(units: np.ndarray, origin: int, horizon: int, point_fn) -> np.ndarray:
    point = point_fn(units, origin)
    level = np.maximum(units[:, origin - 3 : origin + 1].mean(axis=1), 1.0)
    lo_q, hi_q = _interval_from_residuals(units, origin, horizon, point_fn)
    p50 = np.repeat(point[:, None], horizon, axis=1)
    out = np.stack(
        [p50 + lo_q[None] * level[:, None], p50, p50 + hi_q[None] * level[:, None]], axis=-1
    )
    return np.sort(np.maximum(out, 0.0), axis=-1)


def naive_forecast(units: np.ndarray, origin: int, horizon: int = 8) -> np.ndarray:
    """Last observed value (column `origin`) for every horizon."""
    return _with_interval(units, origin, horizon, lambda u, o: u[:, o])


def mean4_forecast(units: np.ndarray, origin: int, horizon: int = 8) -> np.ndarray:
    """Mean of the 4 weeks up to and including `origin` for every horizon."""
    return _with_interval(units, origin, horizon, lambda u, o: u[:, o - 3 : o + 1].mean(axis=1))


def lgbm_features(
    units: np.ndarray, origin: int, department: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(features [S, 13], level [S]) at column `origin`: lags 1..8, mean4, std8, zero share,
    log level (scaled by the local level = mean of the last 8 weeks + 1) and department code."""
    window = units[:, origin - N_LAGS + 1 : origin + 1][:, ::-1]  # lag 1 first
    # +1 keeps near-empty windows from exploding the scaled target; it reproduces the
    # protocol's measured LightGBM figures (a floor at 1 or a mean-4 level land 0.002-0.003 worse).
    level = window.mean(axis=1) + 1.0
    feats = np.column_stack(
        [
            window / level[:, None],
            window[:, :4].mean(axis=1) / level,
            window.std(axis=1) / level,
            (window == 0).mean(axis=1),
            np.log1p(level),
            department.astype(float),
        ]
    )
    return feats, level


@dataclass
class LightGBMForecaster:
    """Global direct multi-horizon LightGBM: one model per (h, quantile), PROTOCOLS §1 setup."""

    horizon: int = 8
    n_rounds: int = 400
    learning_rate: float = 0.03
    num_leaves: int = 31
    quantiles: bool = True
    seed: int = 42
    # One thread: OpenMP spin-waits collapse when the 2 cores are shared (27 s vs < 1 s seen).
    num_threads: int = 1
    models: dict[tuple[int, float], object] = field(default_factory=dict)

    def _params(self, alpha: float) -> dict:
        base = {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "verbose": -1,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "deterministic": True,
        }
        if alpha == 0.5:
            return {**base, "objective": "l1"}
        return {**base, "objective": "quantile", "alpha": alpha}

    def fit(self, units: np.ndarray, train_end: int, department: np.ndarray) -> LightGBMForecaster:
        """Train on every origin whose target column o + h is <= `train_end` (a column index)."""
        import lightgbm as lgb

        alphas = QUANTILES if self.quantiles else (0.5,)
        cat = [N_LAGS + 4]
        for h in range(1, self.horizon + 1):
            xs, ys = [], []
            for o in range(N_LAGS - 1, train_end - h + 1):
                x, level = lgbm_features(units, o, department)
                xs.append(x)
                ys.append(units[:, o + h] / level)
            x, y = np.concatenate(xs), np.concatenate(ys)
            for a in alphas:
                ds = lgb.Dataset(x, y, categorical_feature=cat, free_raw_data=False)
                self.models[(h, a)] = lgb.train(self._params(a), ds, num_boost_round=self.n_rounds)
        return self

    def predict(self, units: np.ndarray, origin: int, department: np.ndarray) -> np.ndarray:
        """[S, H, 3] forecasts from column `origin` (p10 = p90 = p50 without quantile models)."""
        x, level = lgbm_features(units, origin, department)
        out = np.zeros((units.shape[0], self.horizon, 3))
        for h in range(1, self.horizon + 1):
            p50 = self.models[(h, 0.5)].predict(x) * level
            if self.quantiles:
                lo = self.models[(h, 0.1)].predict(x) * level
                hi = self.models[(h, 0.9)].predict(x) * level
            else:
                lo = hi = p50
            out[:, h - 1] = np.column_stack([lo, p50, hi])
        return np.sort(np.maximum(out, 0.0), axis=-1)
