"""Store-day sales anomaly detectors and their ensemble (pure numpy/sklearn; I/O only in save/load).

Every detector scores day t of a store from the series up to and including t (causal) plus
parameters fitted on pre-window days. They share one expectation on x = log1p(sales):

    expected[s, t] = dow_profile[s, dow(t)] + level[s, t] + day_effect[t]

- dow_profile: the store's pre-window median of x per weekday, centred (fitted);
- level: mix of the median of the previous `level_days` de-seasonalised days and the median of
  the same weekday over the previous 8 weeks (both robust to a few anomalous past days);
- day_effect: median residual across all fitted stores on day t (holidays and other days that
  move every store; same-day data of other stores only, so still causal).

Detectors (score: higher = more anomalous; NaN = abstain):
- seasonal: |z| with z = (r - median) / (1.4826 MAD) of the store's pre-window residuals r;
- iqr: distance of r outside the store's pre-window [Q1, Q3] fences in IQR units (negative
  inside);
- iforest: IsolationForest on (r, x vs store median, x vs median of previous 7 and 28 days, day of
  week, previous day's transactions vs their 28-day median); transactions and basket size enter
  only from previous days, because the protocol's anomaly is a demand change of the day itself;
- shift_lr: log likelihood ratio of "sales were multiplied by spike_factor or drop_factor" vs
  "normal", from the pooled density of standardised pre-window residuals (skewed: quiet days are
  common, so a low day is weaker evidence than a high one of the same |z|);
- profile_lr: the same likelihood ratio around a steadier expectation (pre-window level and
  shrunk weekday profile, log of sales > 0): training/anomaly/profile_lr.py.

Short history: a store with fewer than `min_history_days` pre-window days of sales > 0 is not
fitted (counted in `AnomalyEnsemble.skipped_stores`); every detector abstains on it, and on days
with fewer than 56 days of history before them.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import gaussian_kde
from sklearn.ensemble import IsolationForest

from training.anomaly.profile_lr import GRID, ProfileLR, ProfileLRConfig, shift_log_ratio
from training.models.fast_forest import FastIsolationForest

DETECTORS = ("seasonal", "iqr", "iforest", "shift_lr", "profile_lr")
HISTORY_DAYS = 56  # the 8 same-weekday lags of the level need 8 weeks before a scored day
CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "anomaly.yaml"


class AnomalyConfig(BaseModel):
    """Hyperparameters of the anomaly ensemble (configs/anomaly.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(42, description="IsolationForest random_state")
    trees: int = Field(200, ge=1, description="IsolationForest trees")
    contamination: float | str = Field("auto", description="IsolationForest contamination")
    window_days: int = Field(60, ge=1, description="days at the end scored by the protocol")
    min_days: int = Field(300, ge=1, description="eligible store: days with sales > 0")
    min_history_days: int = Field(56, ge=1, description="fitted store: pre-window sales days")
    level_days: int = Field(28, ge=7, le=HISTORY_DAYS, description="days of the recent level")
    cross_sectional: bool = Field(True, description="remove the all-store day effect")
    spike_factor: float = Field(3.0, gt=1.0, description="smallest spike shift_lr looks for")
    drop_factor: float = Field(0.2, gt=0.0, lt=1.0, description="largest drop shift_lr looks for")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"seasonal": 1.0, "iqr": 0.0, "iforest": 0.0, "shift_lr": 1.0}
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {d: 0.99 for d in DETECTORS},
        description="a detector votes when its pre-window percentile exceeds this",
    )
    profile_lr: ProfileLRConfig = Field(default_factory=ProfileLRConfig)
    search_space: dict[str, list[float]] = Field(default_factory=dict)

    def model_post_init(self, __context: object) -> None:
        """Reject unknown detector names and all-zero weights."""
        for name, m in (("weights", self.weights), ("thresholds", self.thresholds)):
            bad = set(m) - set(DETECTORS)
            if bad:
                raise ValueError(f"{name}: unknown detector(s) {sorted(bad)}; know {DETECTORS}")
        if sum(self.weights.get(d, 0.0) for d in DETECTORS) <= 0:
            raise ValueError("weights: at least one detector needs a weight > 0")


def load_config(path: str | Path | None = None, **overrides: object) -> AnomalyConfig:
    """Read configs/anomaly.yaml (or `path`) and apply non-None overrides."""
    raw = yaml.safe_load(Path(path or CONFIG_PATH).read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return AnomalyConfig.model_validate(raw)


@dataclass(frozen=True)
class EnsembleScores:
    """Scores of store-days: arrays are [S, T] for `days` (column indices into the panel)."""

    days: np.ndarray  # [T] int
    score: np.ndarray  # [S, T] ensemble score in [0, 1] (NaN: every detector abstained)
    expected: np.ndarray  # [S, T] expected sales
    z: np.ndarray  # [S, T] signed seasonal z (> 0 spike, < 0 drop)
    direction: np.ndarray  # [S, T] int8: +1 spike, -1 drop, 0 unknown
    detector_scores: np.ndarray  # [K, S, T] raw score per detector (order: DETECTORS)
    votes: np.ndarray  # [K, S, T] bool: detector's percentile over its threshold
    percentiles: np.ndarray  # [K, S, T] detector score vs its pre-window scores, in [0, 1]


def _prev_median(x: np.ndarray, w: int) -> np.ndarray:
    """Median of the previous `w` days (not today); NaN for the first `w` days."""
    out = np.full_like(x, np.nan)
    if x.shape[1] > w:
        out[:, w:] = np.median(sliding_window_view(x, w, axis=1), axis=2)[:, :-1]
    return out


def _lag_median(x: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """Median of x[t - lag] over `lags`; NaN where a lag is before the first day."""
    out = np.full_like(x, np.nan)
    m = max(lags)
    if x.shape[1] > m:
        out[:, m:] = np.median(np.stack([x[:, m - lag : x.shape[1] - lag] for lag in lags]), 0)
    return out


def _dow(dates: np.ndarray) -> np.ndarray:
    return (dates.astype("datetime64[D]").astype(np.int64) + 3) % 7


class AnomalyEnsemble:
    """Fit on pre-window days of a panel, score any days of a (possibly newer) panel."""

    def __init__(self, cfg: AnomalyConfig) -> None:
        self.cfg = cfg
        self.store_ids: np.ndarray = np.array([], dtype=str)
        self.skipped_stores = 0

    # --- shared expectation -------------------------------------------------------------
    def _residuals(self, panel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, expected log, residual) [S, D] for fitted stores `rows` (-1 = unknown store)."""
        known = rows >= 0
        x = np.log1p(np.maximum(panel.sales, 0.0))
        prof = np.where(known[:, None], self.profile[np.maximum(rows, 0)], np.nan)
        season = prof[:, _dow(panel.dates)]
        xd = x - season
        level = 0.5 * (
            _prev_median(xd, self.cfg.level_days)
            + _lag_median(xd, tuple(range(7, HISTORY_DAYS + 1, 7)))
        )
        expected = season + level
        r = x - expected
        if self.cfg.cross_sectional and known.any():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN days before history
                day = np.nanmedian(np.where(known[:, None], r, np.nan), axis=0)
            day = np.nan_to_num(day)
            expected, r = expected + day, r - day
        return x, expected, r

    def _features(self, panel, x: np.ndarray, r: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """IsolationForest features [S, D, 6]."""
        tx = np.log1p(panel.transactions)
        prev_tx = np.full_like(tx, np.nan)
        prev_tx[:, 1:] = tx[:, :-1] - _prev_median(tx, 28)[:, 1:]
        med = np.where(rows >= 0, self.store_median[np.maximum(rows, 0)], np.nan)
        dow = np.broadcast_to(_dow(panel.dates)[None, :], x.shape).astype(float)
        return np.stack(
            [r, x - med[:, None], x - _prev_median(x, 7), x - _prev_median(x, 28), dow, prev_tx],
            axis=-1,
        )

    @property
    def fast_forest(self) -> FastIsolationForest:
        """The fitted forest's numpy scorer, built once per fit (not pickled with the model)."""
        fast = self.__dict__.get("_fast_forest")
        if fast is None or fast[0] is not self.iforest:
            fast = (self.iforest, FastIsolationForest(self.iforest))
            self.__dict__["_fast_forest"] = fast
        return fast[1]

    def _raw_scores(
        self, panel, rows: np.ndarray, cols: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """(raw [K, S, D], z [S, D], expected log [S, D]) over all days of the panel; with
        `cols`, the forest (the costly detector) scores only those columns (NaN elsewhere)."""
        x, expected, r = self._residuals(panel, rows)
        known = rows >= 0
        g = np.maximum(rows, 0)
        med, mad = self.r_median[g][:, None], self.r_mad[g][:, None]
        z = (r - med) / mad
        q1, q3 = self.r_q1[g][:, None], self.r_q3[g][:, None]
        iqr = np.maximum(q3 - q1, 1e-9)
        iqr_score = np.maximum((r - q3) / iqr, (q1 - r) / iqr)
        feats = self._features(panel, x, r, rows)
        ok = np.isfinite(feats).all(-1) & known[:, None]
        if cols is not None:
            ok[:, np.setdiff1d(np.arange(x.shape[1]), cols)] = False
        iso = np.full(x.shape, np.nan)
        if ok.any():
            iso[ok] = self.fast_forest.scores(feats[ok])
        # shift_lr: z-shift of a multiplicative change is log(factor) / scale of that store
        up = np.log(self.cfg.spike_factor) / mad
        dn = np.log(self.cfg.drop_factor) / mad
        lr = shift_log_ratio(self._density, z, up, dn)
        plr = np.full(x.shape, np.nan)
        profile = self.__dict__.get("profile_model")  # None: saved before profile_lr existed
        if profile is not None and known.any():
            plr[known] = profile.score(panel.sales[known], _dow(panel.dates), rows[known])[0]
        raw = np.stack([np.abs(z), iqr_score, iso, lr, plr])
        raw[:, ~known] = np.nan
        return raw, z, expected

    def _density(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.kde_grid, self.kde_density, left=1e-12, right=1e-12) + 1e-12

    def _rows(self, panel) -> np.ndarray:
        """Index of each panel store among the fitted stores, -1 when not fitted."""
        pos = {s: i for i, s in enumerate(self.store_ids)}
        return np.array([pos.get(s, -1) for s in panel.store_ids], dtype=np.int64)

    # --- public API ---------------------------------------------------------------------
    def fit(self, panel, pre_window: slice) -> AnomalyEnsemble:
        """Fit per-store profiles, residual scales, the forest and score calibrations."""
        pre = slice(0, pre_window.stop)  # fitting may read every day before the window
        sales_days = (panel.sales[:, pre] > 0).sum(axis=1)
        keep = sales_days >= self.cfg.min_history_days
        self.skipped_stores = int((~keep).sum())
        if not keep.any():
            raise ValueError(f"no store has >= {self.cfg.min_history_days} pre-window sales days")
        self.store_ids = panel.store_ids[keep]
        x = np.log1p(np.maximum(panel.sales[keep, pre], 0.0))
        dow = _dow(panel.dates[pre])
        prof = np.stack([np.median(x[:, dow == d], axis=1) for d in range(7)], axis=1)
        self.profile = prof - prof.mean(axis=1, keepdims=True)
        self.store_median = np.median(x, axis=1)
        rows = self._rows(panel)
        _, _, r = self._residuals(panel, rows)
        fit_cols = slice(HISTORY_DAYS, pre.stop)
        if fit_cols.start >= fit_cols.stop:
            raise ValueError(f"need more than {HISTORY_DAYS} pre-window days to fit")
        self.profile_model = ProfileLR(
            self.cfg.profile_lr, self.cfg.spike_factor, self.cfg.drop_factor
        ).fit(panel.sales[keep, pre], dow, HISTORY_DAYS)
        rp = r[keep][:, fit_cols]
        self.r_median = np.nanmedian(rp, axis=1)
        self.r_mad = np.maximum(
            1.4826 * np.nanmedian(np.abs(rp - self.r_median[:, None]), axis=1), 1e-6
        )
        self.r_q1, self.r_q3 = np.nanpercentile(rp, [25, 75], axis=1)
        u = ((rp - self.r_median[:, None]) / self.r_mad[:, None]).ravel()
        u = u[np.isfinite(u)]
        self.kde_grid = GRID
        self.kde_density = gaussian_kde(u)(self.kde_grid)
        x_all = np.log1p(np.maximum(panel.sales, 0.0))
        feats = self._features(panel, x_all, r, rows)[keep][:, fit_cols].reshape(-1, 6)
        feats = feats[np.isfinite(feats).all(axis=1)]
        self.iforest = IsolationForest(
            n_estimators=self.cfg.trees,
            contamination=self.cfg.contamination,
            random_state=self.cfg.seed,
        ).fit(feats)
        raw, _, _ = self._raw_scores(panel, rows)
        # per-detector calibration: sorted pre-window scores turn a raw score into a percentile
        self.calibration = [
            np.sort(k[keep][:, fit_cols][np.isfinite(k[keep][:, fit_cols])]) for k in raw
        ]
        return self

    def score(self, panel, days: slice | np.ndarray) -> EnsembleScores:
        """Score `days` (column slice or indices of `panel`) of every store in `panel`."""
        cols = np.arange(len(panel.dates))[days]
        rows = self._rows(panel)
        raw, z, expected_log = self._raw_scores(panel, rows, cols)
        raw, z, expected_log = raw[:, :, cols], z[:, cols], expected_log[:, cols]
        pct = np.full(raw.shape, np.nan)
        for k, ref in enumerate(self.calibration):
            ok = np.isfinite(raw[k])
            pct[k][ok] = np.searchsorted(ref, raw[k][ok], side="right") / (len(ref) + 1.0)
        w = np.array([self.cfg.weights.get(d, 0.0) for d in DETECTORS])[:, None, None]
        wsum = np.where(np.isfinite(pct), w, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(wsum > 0, np.nansum(np.nan_to_num(pct) * w, axis=0) / wsum, np.nan)
        thr = np.array([self.cfg.thresholds.get(d, 1.0) for d in DETECTORS])[:, None, None]
        return EnsembleScores(
            days=cols,
            score=score,
            expected=np.expm1(expected_log),
            z=z,
            direction=np.sign(np.nan_to_num(z)).astype(np.int8),
            detector_scores=raw,
            votes=np.nan_to_num(pct) > thr,
            percentiles=pct,
        )

    def save(self, directory: str | Path) -> None:
        """Write config and fitted state to `directory` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.yaml").write_text(yaml.safe_dump(self.cfg.model_dump(), sort_keys=True))
        state = {k: v for k, v in self.__dict__.items() if k not in ("cfg", "_fast_forest")}
        with open(d / "state.pkl", "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, directory: str | Path) -> AnomalyEnsemble:
        """Read an ensemble written by `save` (trusted files only: the state is a pickle)."""
        d = Path(directory)
        obj = cls(AnomalyConfig.model_validate(yaml.safe_load((d / "config.yaml").read_text())))
        with open(d / "state.pkl", "rb") as f:
            obj.__dict__.update(pickle.load(f))
        return obj
