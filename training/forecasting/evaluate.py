"""PROTOCOLS §1 table: every model and baseline fit and scored in one run, on two splits.

test: origin week 44 -> weeks 45..52; inner validation: origin 36 -> 37..44 (targets <= 36 only).
Selection reads inner validation only (`select_model`), never test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from training.forecasting.config import ForecasterConfig
from training.forecasting.metrics import forecast_metrics
from training.forecasting.panel import (
    COVARIATES,
    PROTOCOL_TRAIN_WEEKS,
    STATIC,
    Panel,
    panel_from_weekly,
    top_series,
)
from training.models.forecast_blend import QuantileBlend, cross_fitted, fit_blend

SPLITS = {"test": 44, "inner_validation": 36}
MODELS = ("naive", "mean4", "lightgbm", "lstm", "tft")
HORIZON = 8
# A blend serves two models (twice the refit and inference cost): it must beat the better of
# them on inner validation by this share of the metric, or the member is selected.
BLEND_MIN_GAIN = 0.01

Forecast = Callable[[Panel, int, ForecasterConfig], np.ndarray]


def _naive(panel: Panel, origin_week: int, cfg: ForecasterConfig) -> np.ndarray:
    from training.models.forecast_baselines import naive_forecast

    return naive_forecast(panel.units, panel.week_index(origin_week), HORIZON)


def _mean4(panel: Panel, origin_week: int, cfg: ForecasterConfig) -> np.ndarray:
    from training.models.forecast_baselines import mean4_forecast

    return mean4_forecast(panel.units, panel.week_index(origin_week), HORIZON)


def _lightgbm(panel: Panel, origin_week: int, cfg: ForecasterConfig) -> np.ndarray:
    from training.models.forecast_baselines import LightGBMForecaster

    o = panel.week_index(origin_week)
    dept = panel.static["department"]
    model = LightGBMForecaster(horizon=HORIZON).fit(panel.units, o, dept)
    return model.predict(panel.units, o, dept)


def _lstm(
    panel: Panel, origin_week: int, cfg: ForecasterConfig, train_panel: Panel | None = None
) -> np.ndarray:
    """Trained on `train_panel` (more series than scored, cfg.lstm.train_series) when given,
    forecasts `panel`'s series."""
    from training.trainers.forecast_steps import fit

    model = fit(panel if train_panel is None else train_panel, origin_week, cfg.lstm)
    return model.predict(panel, origin_week, HORIZON)


def _tft(panel: Panel, origin_week: int, cfg: ForecasterConfig) -> np.ndarray:
    from training.trainers.forecast_tft import fit_predict_tft

    return fit_predict_tft(panel, origin_week, cfg.tft, HORIZON, cfg.lstm.num_threads)


FORECASTERS: dict[str, Forecast] = {
    "naive": _naive,
    "mean4": _mean4,
    "lightgbm": _lightgbm,
    "lstm": _lstm,
    "tft": _tft,
}


def protocol_panel(panel_frame: pd.DataFrame, n_series: int = 500) -> Panel:
    """Panel of the protocol's top series (by units in weeks 2..44) with every covariate."""
    series = top_series(panel_frame, n_series, PROTOCOL_TRAIN_WEEKS)
    cov = [c for c in COVARIATES if c in panel_frame.columns]
    static = [c for c in STATIC if c in panel_frame.columns]
    return panel_from_weekly(panel_frame, covariates=cov, static=static, series=series)


def score_split(panel: Panel, origin_week: int, quantiles: np.ndarray) -> dict[str, float]:
    """Protocol metrics of [S, H, 3] forecasts from `origin_week` (MASE scale: weeks up to it)."""
    o = panel.week_index(origin_week)
    y = panel.units[:, o + 1 : o + 1 + HORIZON]
    return forecast_metrics(y, quantiles, panel.units[:, : o + 1])


def evaluate_protocol(
    panel_frame: pd.DataFrame,
    models: Sequence[str] = MODELS,
    cfg: ForecasterConfig | None = None,
    *,
    extra: dict[str, Forecast] | None = None,
    on_row: Callable[[str, str, dict[str, Any]], None] | None = None,
    blends: Sequence[tuple[str, str]] = (("lstm", "lightgbm"),),
) -> dict[str, Any]:
    """{"test": {model: metrics}, "inner_validation": {...}, "seconds": {...}, "selected": name,
    "blends": {name: weights}}.

    `panel_frame` is the long weekly frame (protocol_frame() or the feature table's rows).
    `blends` adds rows `a+b` combining two models' quantiles with weights fitted on inner
    validation (`fit_blend`), scored and selectable like the others; its inner-validation row
    is cross-fitted over series (`cross_fitted`), so selection does not favour it in-sample.
    """
    cfg = cfg or ForecasterConfig()
    panel = protocol_panel(panel_frame, cfg.n_series)
    forecasters = {**FORECASTERS, **(extra or {})}
    if cfg.lstm.train_series > cfg.n_series and "lstm" not in (extra or {}):
        # the global LSTM trains on the top train_series series (targets still <= the
        # origin); only the top n_series are forecast and scored, as for every other model
        train_panel = protocol_panel(panel_frame, cfg.lstm.train_series)
        forecasters["lstm"] = partial(_lstm, train_panel=train_panel)
    table: dict[str, Any] = {split: {} for split in SPLITS}
    table["seconds"] = {}
    kept: dict[tuple[str, str], np.ndarray] = {}
    for name in models:
        for split, origin in SPLITS.items():
            start = time.perf_counter()
            q = forecasters[name](panel, origin, cfg)
            kept[(name, split)] = q
            row = score_split(panel, origin, q)
            table[split][name] = row
            table["seconds"][f"{name}/{split}"] = round(time.perf_counter() - start, 1)
            if on_row:
                on_row(split, name, row)
    table["blends"] = {}
    for a, b in blends:
        if a in models and b in models:
            name = f"{a}+{b}"
            pair = {split: (kept[(a, split)], kept[(b, split)]) for split in SPLITS}
            blend, blended = blend_splits(panel, SPLITS, pair)
            table["blends"][name] = list(blend.weights)
            for split, q in blended.items():
                table[split][name] = score_split(panel, SPLITS[split], q)
                if on_row:
                    on_row(split, name, table[split][name])
    table["selected"] = select_model(table)
    table["n_series"] = panel.n_series
    return table


def blend_splits(
    panel: Panel, origins: dict[str, int], pair: dict[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[QuantileBlend, dict[str, np.ndarray]]:
    """(blend, {split: blended [S, H, 3]}) of two models' forecasts `pair[split]`.

    The weights are fitted on inner validation only (`fit_blend`) and applied to test. The
    inner-validation forecasts are cross-fitted (each series blended with weights fitted on
    the other half of the series), so that row is an out-of-sample score, comparable with its
    members' rows when selecting."""
    o = panel.week_index(origins["inner_validation"])
    y, history = panel.units[:, o + 1 : o + 1 + HORIZON], panel.units[:, : o + 1]
    inner = pair["inner_validation"]
    blend = fit_blend(*inner, y, history)
    blended = {split: blend.combine(*forecasts) for split, forecasts in pair.items()}
    blended["inner_validation"] = cross_fitted(*inner, y, history)
    return blend, blended


def select_model(
    table: dict[str, Any], metric: str = "MASE", candidates: Sequence[str] | None = None
) -> str:
    """The model with the lowest inner-validation `metric` (test is never looked at) among
    `candidates` (default: every row). A blend `a+b` runs both its members, so it competes only
    if it beats the better member by `BLEND_MIN_GAIN` (relative)."""
    rows = table["inner_validation"]
    names = [n for n in (candidates or rows) if n in rows]

    def eligible(name: str) -> bool:
        members = [rows[m][metric] for m in name.split("+") if m in rows]
        return "+" not in name or rows[name][metric] <= (1 - BLEND_MIN_GAIN) * min(members)

    return min((n for n in names if eligible(n)), key=lambda name: rows[name][metric])
