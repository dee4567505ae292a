"""PROTOCOLS §1 metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.forecasting.metrics import (
    coverage,
    forecast_metrics,
    mae,
    mase,
    naive_scale,
    rmse,
    smape,
    wape,
)

Y = np.array([[1.0, 0.0, 3.0]])
F = np.array([[2.0, 0.0, 1.0]])  # errors 1, 0, 2


def test_point_metrics_match_hand_computation():
    assert mae(Y, F) == pytest.approx(1.0)
    assert rmse(Y, F) == pytest.approx(math.sqrt(5 / 3))
    assert wape(Y, F) == pytest.approx(75.0)  # 3 / 4


def test_smape_counts_zero_over_zero_as_zero():
    # cells: 2*1/(1+2), 0/0 -> 0, 2*2/(3+1)
    assert smape(Y, F) == pytest.approx(100 * (2 / 3 + 0 + 1) / 3)
    assert smape(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0


def test_mase_scales_each_series_by_its_in_sample_naive_error():
    history = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 9.0]])  # naive-1 MAE 1.5 and 2.0
    assert naive_scale(history) == pytest.approx([1.5, 2.0])
    y = np.array([[1.0, 1.0], [4.0, 4.0]])
    f = np.array([[2.0, 2.0], [0.0, 0.0]])  # series MAE 1 and 4
    assert mase(y, f, history) == pytest.approx((1 / 1.5 + 4 / 2.0) / 2)


def test_mase_skips_series_with_a_flat_history():
    history = np.array([[2.0, 2.0, 2.0], [0.0, 1.0, 0.0]])
    y, f = np.array([[2.0], [1.0]]), np.array([[3.0], [0.0]])
    assert mase(y, f, history) == pytest.approx(1.0)


def test_coverage_is_the_share_of_cells_inside_the_interval():
    y = np.array([[1.0, 5.0, 3.0, 10.0]])
    assert coverage(y, y - 1, y + 1) == 100.0
    assert coverage(y, np.full_like(y, 2), np.full_like(y, 6)) == 50.0


def test_forecast_metrics_uses_p50_as_the_point_forecast():
    q = np.stack([F - 1, F, F + 1], axis=-1)
    out = forecast_metrics(Y, q, np.array([[0.0, 1.0, 0.0]]))
    assert out["MAE"] == pytest.approx(1.0) and out["WAPE"] == pytest.approx(75.0)
    assert out["coverage_p10_p90"] == pytest.approx(200 / 3)  # the error-2 cell falls outside
    assert set(out) == {"MAE", "RMSE", "sMAPE", "WAPE", "MASE", "coverage_p10_p90"}
