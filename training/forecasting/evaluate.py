"""PROTOCOLS §1 table: every model and baseline fit and scored in one run, on two splits.

test: origin week 44 -> weeks 45..52; inner validation: origin 36 -> 37..44 (targets <= 36 only).
Selection reads inner validation only (`select_model`), never test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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

SPLITS = {"test": 44, "inner_validation": 36}
MODELS = ("naive", "mean4", "lightgbm", "lstm", "tft")
HORIZON = 8

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


def _lstm(panel: Panel, origin_week: int, cfg: ForecasterConfig) -> np.ndarray:
    from training.trainers.forecast_steps import fit

    return fit(panel, origin_week, cfg.lstm).predict(panel, origin_week, HORIZON)


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
    """{"test": {model: metrics}, "inner_validation": {...}, "seconds": {...}, "selected": name}.

    `panel_frame` is the long weekly frame (protocol_frame() or the feature table's rows).
    `blends` adds rows averaging two models' quantiles (scored and selectable like the others).
    """
    cfg = cfg or ForecasterConfig()
    panel = protocol_panel(panel_frame, cfg.n_series)
    forecasters = {**FORECASTERS, **(extra or {})}
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
    for a, b in blends:
        if a in models and b in models:  # equal-weight quantile average, a candidate like any other
            for split, origin in SPLITS.items():
                name = f"{a}+{b}"
                row = score_split(panel, origin, (kept[(a, split)] + kept[(b, split)]) / 2)
                table[split][name] = row
                if on_row:
                    on_row(split, name, row)
    table["selected"] = select_model(table)
    table["n_series"] = panel.n_series
    return table


def select_model(table: dict[str, Any], metric: str = "MASE") -> str:
    """The model with the lowest inner-validation `metric` (test is never looked at)."""
    rows = table["inner_validation"]
    return min(rows, key=lambda name: rows[name][metric])
