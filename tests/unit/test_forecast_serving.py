"""The forecast route's pure parts: history reconstruction from an online row, bundle files."""

from __future__ import annotations

import numpy as np
import pytest

from features.catalog import HISTORY_WEEKS, LAG_FEATURES
from serving.deployments.forecaster import history_of


def row_at(week: int, units_by_week: dict[int, float]) -> dict[str, float]:
    """An online row of `week` built the way features/forecast.py builds it."""
    row = {"week": week, "units": units_by_week.get(week, 0.0)}
    for k, name in enumerate(LAG_FEATURES, start=1):
        row[name] = units_by_week.get(week - k, 0.0)
    return row


@pytest.mark.parametrize("row_week,origin", [(40, 40), (37, 40), (41, 40), (30, 40), (20, 40)])
def test_history_is_the_true_series_whatever_the_rows_week(row_week: int, origin: int) -> None:
    rng = np.random.default_rng(row_week)
    sold = {w: float(rng.integers(0, 5)) for w in range(1, row_week + 1)}  # no sales after it
    truth = np.array([sold.get(w, 0.0) for w in range(origin - HISTORY_WEEKS + 1, origin + 1)])
    known = np.array([max(row_week - HISTORY_WEEKS + 1, 0) <= w <= row_week for w in
                      range(origin - HISTORY_WEEKS + 1, origin + 1)])  # fmt: skip
    got = history_of(row_at(row_week, sold), origin)
    # weeks after the row sold 0; weeks the row covers are exact; older weeks are unknown (0)
    np.testing.assert_array_equal(got[known], truth[known])
    after = np.arange(origin - HISTORY_WEEKS + 1, origin + 1) > row_week
    assert (got[after] == 0).all()


def test_no_row_is_an_empty_history() -> None:
    assert (history_of(None, 40) == 0).all()
    assert history_of(None, 40).shape == (HISTORY_WEEKS,)


def test_lightgbm_bundle_round_trip(tmp_path) -> None:
    from training.forecaster import ForecastBundle
    from training.models.forecast_baselines import LightGBMForecaster

    rng = np.random.default_rng(0)
    units = rng.poisson(3, size=(30, 30)).astype(np.float32)
    dept = np.array([1, 2] * 15)
    model = LightGBMForecaster(horizon=2, n_rounds=20).fit(units, 29, dept)
    bundle = ForecastBundle(
        kind="lightgbm",
        model=model,
        static_vocab={"department": ["<unk>", "DAIRY", "PRODUCE"]},
        week_start={29: "2017-07-17"},
        window={"last_week": 29},
    )
    loaded = ForecastBundle.load(bundle.save(tmp_path / "bundle"))
    history = units[:, -HISTORY_WEEKS:]
    static = {"department": ["DAIRY", "PRODUCE"] * 15}
    np.testing.assert_allclose(
        loaded.predict(history, static, 29, 2), bundle.predict(history, static, 29, 2)
    )
    assert loaded.week_starts([29, 31]) == ["2017-07-17", "2017-07-31"]
