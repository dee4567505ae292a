"""LSTM forecaster, panel building and baselines on tiny generated panels (no services)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from training.forecasting.config import LSTMConfig, load_forecaster_config
from training.forecasting.metrics import mase
from training.forecasting.panel import calendar_features, panel_from_weekly, top_series
from training.models.forecast_baselines import (
    LightGBMForecaster,
    mean4_forecast,
    naive_forecast,
)
from training.models.forecaster import LSTMForecaster
from training.trainers.forecast_steps import fit

FIRST, LAST = 2, 61  # 60 weeks
TRAIN_END = 53  # forecast weeks 54..61


def toy_frame(n_series: int = 24, seed: int = 0) -> pd.DataFrame:
    """Seasonal (period 4) series with a trend and a promotion lift; some rows missing (= 0)."""
    rng = np.random.default_rng(seed)
    rows = []
    weeks = np.arange(FIRST, LAST + 1)
    for s in range(n_series):
        base = rng.uniform(3, 30)
        season = np.array([1.0, 1.6, 0.7, 0.4])[(weeks + s) % 4]
        trend = 1 + 0.01 * (weeks - FIRST) * (1 if s % 2 else -0.5)
        display = (rng.random(len(weeks)) < 0.15).astype(float)
        units = np.maximum(
            0,
            np.round(base * season * trend * (1 + 0.8 * display) + rng.normal(0, 0.5, len(weeks))),
        )
        for w, u, d in zip(weeks, units, display, strict=True):
            if u == 0 and d == 0:
                continue  # a week without sales has no row
            rows.append(
                {
                    "store_id": f"{100 + s % 3}",
                    "product_id": 1000 + s,
                    "week": int(w),
                    "units": float(u),
                    "display": d,
                    "mailer": 0.0,
                    "discount_depth": 0.2 * d,
                    "department": "GROCERY" if s % 2 else "PRODUCE",
                    "product_category": f"cat{s % 4}",
                }
            )
    return pd.DataFrame(rows)


STATIC = ["department", "product_category", "store_id"]
COV = ["display", "mailer", "discount_depth"]


@pytest.fixture(scope="module")
def panel():
    frame = toy_frame()
    return panel_from_weekly(frame, weeks=(FIRST, LAST), covariates=COV, static=STATIC)


def small_cfg(**over) -> LSTMConfig:
    base = dict(
        lookback=8,
        hidden1=32,
        hidden2=16,
        dense=16,
        dropout=0.0,
        embedding_dim=2,
        max_epochs=60,
        patience=60,
        batch_size=32,
        lr=5e-3,
        val_weeks=4,
        refit=False,
        n_seeds=1,
    )
    return LSTMConfig(**{**base, **over})


@pytest.fixture(scope="module")
def fitted(panel):
    return fit(panel, TRAIN_END, small_cfg())


def test_panel_from_weekly_fills_missing_weeks_and_codes_statics():
    frame = pd.DataFrame(
        {
            "store_id": ["1", "1", "2"],
            "product_id": [7, 7, 8],
            "week": [2, 4, 3],
            "units": [5.0, 2.0, 1.0],
            "department": ["A", "A", "B"],
        }
    )
    p = panel_from_weekly(frame, weeks=(2, 4), static=["department"])
    assert p.units.tolist() == [[5, 0, 2], [0, 1, 0]]
    assert p.static_vocab["department"] == ["<unk>", "A", "B"]
    assert p.static["department"].tolist() == [1, 2]
    assert top_series(frame, 1, (2, 4)).values.tolist() == [["1", 7]]


def test_calendar_knows_thanksgiving_and_iso_weeks():
    cal = calendar_features([2, 48])  # 2017-01-02 (New Year observed), week of 2017-11-23
    assert cal["week_of_year"].tolist() == [1, 47]
    assert cal["holiday"].tolist() == [1, 1]


def test_lstm_beats_naive_on_a_seasonal_toy_panel(panel, fitted):
    o = panel.week_index(TRAIN_END)
    y = panel.units[:, o + 1 : o + 9]
    hist = panel.units[:, : o + 1]
    lstm = fitted.predict(panel, TRAIN_END)[..., 1]
    naive = naive_forecast(panel.units, o)[..., 1]
    assert mase(y, lstm, hist) < 0.8 * mase(y, naive, hist)


def test_quantiles_are_ordered_and_non_negative(panel, fitted):
    q = fitted.predict(panel, TRAIN_END)
    assert q.shape == (panel.n_series, 8, 3)
    assert (q >= 0).all()
    assert (np.diff(q, axis=-1) >= 0).all()


def test_predict_from_history_matches_predict(panel, fitted):
    """The serving path: flat arrays, most recent week last, 16 lags even if lookback is 8."""
    o = panel.week_index(TRAIN_END)
    idx = [panel.covariate_names.index(c) for c in COV]
    static = {name: panel.static[name] for name in STATIC}
    future = panel.covariates[:, o + 1 : o + 9][:, :, [idx[0], idx[1]]]
    out = fitted.predict_from_history(
        panel.units[:, o - 15 : o + 1],
        static,
        TRAIN_END,
        horizon=8,
        covariate_history=panel.covariates[:, o - 15 : o + 1][:, :, idx],
        future_covariates=future,
    )
    np.testing.assert_allclose(out, fitted.predict(panel, TRAIN_END), rtol=1e-5, atol=1e-5)
    one = fitted.predict_from_history(
        panel.units[:1, o - 7 : o + 1],
        np.column_stack([panel.static[n][:1] for n in STATIC]),
        TRAIN_END,
        horizon=3,
        covariate_history=panel.covariates[:1, o - 7 : o + 1][:, :, idx],
        future_covariates=future[:1],
    )
    np.testing.assert_allclose(one, out[:1, :3], rtol=1e-5, atol=1e-5)


def test_unknown_static_codes_fall_back_to_the_unknown_row(panel, fitted):
    o = panel.week_index(TRAIN_END)
    idx = [panel.covariate_names.index(c) for c in COV]
    out = fitted.predict_from_history(
        panel.units[:2, o - 7 : o + 1],
        np.array([[999, -1, 5], [0, 0, 0]]),
        TRAIN_END,
        covariate_history=panel.covariates[:2, o - 7 : o + 1][:, :, idx],
        future_covariates=np.zeros((2, 8, 2), np.float32),
    )
    assert np.isfinite(out).all() and out.shape == (2, 8, 3)


def test_save_load_round_trip_gives_identical_predictions(panel, fitted, tmp_path):
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["forecaster.json", "member_0.pt"]
    loaded = LSTMForecaster.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.predict(panel, TRAIN_END), fitted.predict(panel, TRAIN_END)
    )


def test_fit_never_sees_targets_after_train_end(panel):
    cfg = small_cfg(max_epochs=2, refit=True, calendar=False, covariates=[], future_covariates=[])
    torch.manual_seed(0)
    a = fit(panel, 40, cfg)
    changed = panel.subset(np.arange(panel.n_series))
    changed.units = changed.units.copy()
    changed.units[:, panel.week_index(41) :] = 1000.0
    b = fit(changed, 40, cfg)
    np.testing.assert_allclose(a.predict(panel, 40), b.predict(panel, 40), rtol=1e-5)


def test_baselines_on_a_toy_panel(panel):
    o = panel.week_index(TRAIN_END)
    naive = naive_forecast(panel.units, o)
    mean4 = mean4_forecast(panel.units, o)
    np.testing.assert_allclose(naive[..., 1], np.repeat(panel.units[:, o : o + 1], 8, axis=1))
    np.testing.assert_allclose(
        mean4[..., 1],
        np.repeat(panel.units[:, o - 3 : o + 1].mean(1, keepdims=True), 8, axis=1),
        rtol=1e-6,
    )
    gbm = LightGBMForecaster(n_rounds=30, horizon=8).fit(panel.units, o, panel.static["department"])
    q = gbm.predict(panel.units, o, panel.static["department"])
    assert q.shape == (panel.n_series, 8, 3) and (q >= 0).all() and (np.diff(q, axis=-1) >= 0).all()
    y, hist = panel.units[:, o + 1 : o + 9], panel.units[:, : o + 1]
    assert mase(y, q[..., 1], hist) < mase(y, naive[..., 1], hist)


def test_config_rejects_unknown_keys_and_loads_the_quick_profile():
    with pytest.raises(ValueError):
        LSTMConfig(hidden=3)
    with pytest.raises(ValueError):
        LSTMConfig(lookback=17)  # the online store holds 16 lags
    quick = load_forecaster_config(profile="quick")
    assert quick.lstm.max_epochs < load_forecaster_config().lstm.max_epochs


def test_static_attributes_are_encoded_from_the_saved_vocabulary(panel, fitted, tmp_path):
    loaded = LSTMForecaster.load(fitted.save(tmp_path / "m"))
    raw = {
        "department": ["GROCERY", "NOT-A-DEPT"],
        "product_category": ["cat1", "cat2"],
        "store_id": ["101", "100"],
    }
    codes = loaded.encode_static(raw)
    vocab = panel.static_vocab
    assert codes.tolist() == [
        [
            vocab["department"].index("GROCERY"),
            vocab["product_category"].index("cat1"),
            vocab["store_id"].index("101"),
        ],
        [0, vocab["product_category"].index("cat2"), vocab["store_id"].index("100")],
    ]
