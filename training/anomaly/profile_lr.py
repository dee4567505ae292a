"""`profile_lr`: a shift likelihood ratio around a stable store x weekday profile.

On Complete Journey a store's day is a handful of baskets (median 4 transactions a day in the 94
protocol stores), so most of a day's deviation is sampling noise that no recent-days statistic can
predict. Recent medians (last 28 days, same weekday over 8 weeks) then add their own estimation
noise to the expectation; a level estimated on every pre-window day is much steadier. This
detector therefore expects, on x = log(sales) of a day with sales > 0:

    expected[s, t] = profile[s, dow(t)] + w * static[s] + (1 - w) * rolling[s, t] + day[t]

- profile: the store's pre-window median of x per weekday, centred, shrunk by `profile_shrink`
  toward the median profile of all fitted stores (a weekday median of ~40 noisy days is noisy);
- static: the store's pre-window median of the de-seasonalised x; rolling: the median of the
  previous `level_days` de-seasonalised days (days without sales count as the static level), so
  the level still follows a store that drifts after the fit (weight 1 - `static_weight`);
- day: the median over fitted stores of their centred residuals on day t, soft-thresholded by
  `day_effect_k` standard errors of that median: zero on ordinary days (where it is only noise),
  the shared move on holidays that move every store (Thanksgiving, Christmas Eve); zero on a
  day with fewer than MIN_DAY_STORES stores with sales (a request scoring one store).

The score is the log likelihood ratio of "sales were multiplied by spike_factor or by
drop_factor (p = 1/2 each)" against "normal", with the residual density of a store-day = one
pooled, skewed KDE shape of every fitted store's standardised pre-window residuals, placed at the
store's pre-window median residual and scaled by its scale. The scale is the store's pre-window
MAD pulled (in logs, by `scale_shrink`) toward a straight line of log MAD on the store's static
level (fewer baskets a day, noisier days; fitted across stores), and with `weekday_scale` the
same slope times the weekday profile moves it by weekday (a busy Saturday is calmer in logs). Days with sales <= 0 abstain (NaN): there is no
log, and whether a closed day is an anomaly is left to the other detectors.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import gaussian_kde

GRID = np.linspace(-60.0, 60.0, 6001)  # standardised residuals the pooled density is tabled on
FLOOR = 1e-12  # density outside the table and added everywhere (finite log ratios)
MIN_DAY_STORES = 10  # fewer stores with sales on a day: no day effect (one store's anomaly
# would otherwise read as a move shared by every store)


class ProfileLRConfig(BaseModel):
    """`profile_lr` settings (configs/anomaly.yaml, key `profile_lr`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile_shrink: float = Field(0.5, ge=0.0, le=1.0, description="weekday profile -> pooled")
    static_weight: float = Field(0.75, ge=0.0, le=1.0, description="static vs rolling level")
    level_days: int = Field(56, ge=7, le=56, description="days of the rolling level")
    day_effect_k: float = Field(2.0, ge=0.0, description="day effect soft threshold (SEs)")
    drift_days: int = Field(0, ge=0, le=56, description="days of the shared drift (0: none)")
    scale_shrink: float = Field(0.6, ge=0.0, le=1.0, description="log scale -> size regression")
    weekday_scale: bool = Field(True, description="scale a weekday by the size slope too")


def _log_sales(sales: np.ndarray) -> np.ndarray:
    """log(sales) on days with sales > 0 (floored at 1 currency unit), NaN elsewhere."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sales > 0, np.log(np.maximum(sales, 1.0)), np.nan)


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        return np.nanmedian(a, axis=axis)


class ProfileLR:
    """Fit on pre-window days of fitted stores; score any days of the same stores."""

    def __init__(
        self, cfg: ProfileLRConfig, spike_factor: float = 3.0, drop_factor: float = 0.2
    ) -> None:
        self.cfg = cfg
        self.log_up, self.log_down = np.log(spike_factor), np.log(drop_factor)

    def _expected(self, x: np.ndarray, dow: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Expected log sales [S, D] without the day effect; rows index fitted stores."""
        season = self.profile[rows][:, dow]
        static = self.static[rows][:, None]
        xd = np.where(np.isfinite(x), x - season, static)  # no-sales days: the static level
        w, k = self.cfg.static_weight, self.cfg.level_days
        level = np.broadcast_to(static, x.shape).copy()
        if w < 1.0 and x.shape[1] > k:
            rolling = np.median(sliding_window_view(xd, k, axis=1), axis=2)[:, :-1]
            level[:, k:] = w * static + (1.0 - w) * rolling
        return season + level

    def _day_effect(self, r: np.ndarray) -> np.ndarray:
        """[D] soft-thresholded median of the stores' centred residuals (see module doc)."""
        day = np.nan_to_num(_nanmedian(r - self.center[:, None], axis=0))
        n = np.isfinite(r).sum(axis=0)
        se = 1.2533 * self.typical_scale / np.sqrt(np.maximum(n, 1))  # SE of a normal median
        k = self.cfg.drift_days
        drift = np.zeros_like(day)
        if k and len(day) > k:
            drift[k:] = sliding_window_view(day, k).mean(axis=1)[:-1]
        excess = day - drift
        out = drift + np.sign(excess) * np.maximum(np.abs(excess) - self.cfg.day_effect_k * se, 0)
        return np.where(n >= MIN_DAY_STORES, out, 0.0)

    def fit(self, sales: np.ndarray, dow: np.ndarray, from_day: int) -> ProfileLR:
        """Fit on every day of `sales` [S, P] (pre-window only); residual statistics use days
        `from_day`.. (the rolling level needs `level_days` before them)."""
        x = _log_sales(sales)
        prof = np.stack([_nanmedian(x[:, dow == d], axis=1) for d in range(7)], axis=1)
        prof = np.nan_to_num(prof - np.nanmean(prof, axis=1, keepdims=True))
        shrink = self.cfg.profile_shrink
        self.profile = (1 - shrink) * prof + shrink * np.median(prof, axis=0, keepdims=True)
        self.static = np.nan_to_num(_nanmedian(x - self.profile[:, dow], axis=1))
        rows = np.arange(len(x))
        r = (x - self._expected(x, dow, rows))[:, from_day:]
        self.center = np.nan_to_num(_nanmedian(r, axis=1))
        self.scale = np.maximum(
            np.nan_to_num(1.4826 * _nanmedian(np.abs(r - self.center[:, None]), axis=1)), 1e-3
        )
        self.scale = self._shrunk_scale(self.scale)
        self.typical_scale = float(np.median(self.scale))
        r = r - self._day_effect(r)[None, :]
        u = ((r - self.center[:, None]) / self._day_scale(rows, dow[from_day:])).ravel()
        u = u[np.isfinite(u)]
        if len(u) < 2 or np.ptp(u) == 0:
            raise ValueError("profile_lr: too few distinct pre-window residuals to fit")
        self.density = gaussian_kde(u)(GRID) + FLOOR
        return self

    def _shrunk_scale(self, mad: np.ndarray) -> np.ndarray:
        """Per-store MADs pulled (in logs, by `scale_shrink`) toward their straight-line fit on
        the store's static level: a small store's day is fewer baskets, hence noisier, and a
        MAD of ~200 days is itself noisy."""
        w = self.cfg.scale_shrink
        self.size_slope = 0.0
        if len(mad) < 3 or np.ptp(self.static) == 0:
            return mad
        slope, intercept = np.polyfit(self.static, np.log(mad), 1)
        self.size_slope = float(slope)
        fit = intercept + slope * self.static
        return np.exp((1 - w) * np.log(mad) + w * fit)

    def _day_scale(self, rows: np.ndarray, dow: np.ndarray) -> np.ndarray:
        """Scale [S, D]: the store's, times exp(size slope x weekday profile) with
        `weekday_scale` (a busier weekday is more baskets, as in a bigger store)."""
        scale = self.scale[rows][:, None]
        if not self.cfg.weekday_scale:
            return np.broadcast_to(scale, (len(rows), len(dow)))
        return scale * np.exp(self.size_slope * self.profile[rows][:, dow])

    def _pdf(self, u: np.ndarray) -> np.ndarray:
        """The pooled density at `u`, linear between grid points (np.interp on the uniform
        grid without its binary search); FLOOR outside the grid, NaN stays NaN."""
        pos = (u - GRID[0]) / (GRID[1] - GRID[0])
        with np.errstate(invalid="ignore"):
            i = np.clip(np.floor(np.nan_to_num(pos)), 0, len(GRID) - 2).astype(np.int64)
            frac = pos - i
            val = self.density[i] * (1.0 - frac) + self.density[i + 1] * frac
            return np.where((pos >= 0) & (pos <= len(GRID) - 1) | np.isnan(pos), val, FLOOR)

    def score(
        self, sales: np.ndarray, dow: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log likelihood ratio, signed z, expected log sales), each [S, D], for `sales` of
        fitted stores `rows` (NaN on days with sales <= 0)."""
        x = _log_sales(sales)
        expected = self._expected(x, dow, rows)
        expected = expected + self._day_effect(x - expected)[None, :]
        scale = self._day_scale(rows, dow)
        z = (x - expected - self.center[rows][:, None]) / scale
        up, down = self.log_up / scale, self.log_down / scale
        return shift_log_ratio(self._pdf, z, up, down), z, expected


def shift_log_ratio(pdf, z: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """log of [density of z if the day was multiplied by the spike or the drop factor (1/2
    each: z shifted by `up` or `down` in its standardised units)] / [its density as a normal
    day], for a residual density `pdf` (shift_lr and profile_lr)."""
    with np.errstate(invalid="ignore"):
        return np.log(0.5 * pdf(z - up) + 0.5 * pdf(z - down)) - np.log(pdf(z))
