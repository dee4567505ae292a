"""The LSTM + LightGBM quantile blend: its weights, its honest inner-validation score, and its
bundle (saved, loaded, served), beside LSTM-only bundles saved before blends existed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.unit.test_forecaster_model import COV, STATIC, TRAIN_END, small_cfg, toy_frame
from training.forecasting.metrics import mase
from training.forecasting.panel import panel_from_weekly
from training.models.forecast_blend import QuantileBlend, cross_fitted, fit_blend

H = 8


def quantiles(rng: np.random.Generator, s: int = 40) -> np.ndarray:
    return np.sort(rng.gamma(2.0, 2.0, size=(s, H, 3)), axis=-1)


def test_combine_is_the_weighted_average_of_its_members() -> None:
    rng = np.random.default_rng(0)
    a, b = quantiles(rng), quantiles(rng)
    blend = QuantileBlend((0.3, 0.6, 0.3))
    got = blend.combine(a, b)
    expected = np.array([0.3, 0.6, 0.3]) * a + np.array([0.7, 0.4, 0.7]) * b
    # re-ordered where different weights per quantile would cross the quantiles
    np.testing.assert_allclose(got, np.sort(expected, axis=-1))
    np.testing.assert_allclose(QuantileBlend((1.0, 1.0, 1.0)).combine(a, b), a)
    np.testing.assert_allclose(QuantileBlend((0.0, 0.0, 0.0)).combine(a, b), b)
    assert (np.diff(got, axis=-1) >= 0).all()


def test_weights_must_be_one_per_quantile_in_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="one weight"):
        QuantileBlend((0.5, 1.2, 0.5))
    with pytest.raises(ValueError, match="one weight"):
        QuantileBlend((0.5, 0.5))  # type: ignore[arg-type]


def test_fit_prefers_the_member_that_forecasts_well() -> None:
    rng = np.random.default_rng(1)
    history = rng.poisson(4, size=(40, 30)).astype(float)
    y = rng.poisson(4, size=(40, H)).astype(float)
    good = np.stack([y - 1, y, y + 1], axis=-1).clip(0)
    bad = quantiles(rng) * 5
    assert fit_blend(good, bad, y, history).weights[1] == 1.0
    assert fit_blend(bad, good, y, history).weights[1] == 0.0
    # two equally noisy, independent forecasts: their average beats either alone
    noisy = [y[..., None] + rng.normal(0, 2, size=(40, H, 1)) for _ in range(2)]
    a, b = (np.repeat(n, 3, axis=-1) for n in noisy)
    w = fit_blend(a, b, y, history).weights[1]
    assert 0.2 <= w <= 0.8
    mixed = QuantileBlend((w, w, w)).combine(a, b)[..., 1]
    assert mase(y, mixed, history) < min(mase(y, a[..., 1], history), mase(y, b[..., 1], history))


def test_cross_fitted_rows_use_weights_fitted_on_the_other_series_only() -> None:
    rng = np.random.default_rng(2)
    history = rng.poisson(4, size=(40, 30)).astype(float)
    y = rng.poisson(4, size=(40, H)).astype(float)
    a, b = quantiles(rng), quantiles(rng)
    out = cross_fitted(a, b, y, history)
    even, odd = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    on_odd = fit_blend(a[odd], b[odd], y[odd], history[odd])
    np.testing.assert_allclose(out[even], on_odd.combine(a[even], b[even]))
    # changing the actuals of the even series leaves their own blended forecasts unchanged
    y2 = y.copy()
    y2[even] = 0.0
    np.testing.assert_allclose(cross_fitted(a, b, y2, history)[even], out[even])


# ------------------------------------------------------------------ bundles


@pytest.fixture(scope="module")
def members():
    from training.models.forecast_baselines import LightGBMForecaster
    from training.trainers.forecast_steps import fit

    panel = panel_from_weekly(toy_frame(), weeks=(2, 61), covariates=COV, static=STATIC)
    lstm = fit(panel, TRAIN_END, small_cfg(max_epochs=3, patience=3))
    o = panel.week_index(TRAIN_END)
    lgbm = LightGBMForecaster(horizon=H, n_rounds=20).fit(
        panel.units, o, panel.static["department"]
    )
    return panel, lstm, lgbm


def _inputs(panel):
    o = panel.week_index(TRAIN_END)
    idx = [panel.covariate_names.index(c) for c in COV]
    static = {n: [panel.static_vocab[n][c] for c in panel.static[n]] for n in STATIC}
    return (
        panel.units[:, o - 15 : o + 1],
        static,
        TRAIN_END,
        H,
        panel.covariates[:, o - 15 : o + 1][:, :, idx],
        panel.covariates[:, o + 1 : o + 1 + H][:, :, idx[:2]],
    )


def test_blend_bundle_serves_the_weighted_average_of_its_members(members, tmp_path) -> None:
    from training.forecaster import BLEND, BlendedForecaster, ForecastBundle

    panel, lstm, lgbm = members
    vocab = {n: list(panel.static_vocab[n]) for n in STATIC}
    weights = (0.4, 0.55, 0.4)
    bundle = ForecastBundle(
        BLEND, BlendedForecaster(lstm, lgbm, QuantileBlend(weights)), vocab, {53: "2017-12-25"}
    )
    loaded = ForecastBundle.load(bundle.save(tmp_path / "bundle"))
    assert loaded.kind == BLEND and loaded.model.blend.weights == weights
    assert loaded.covariates == list(lstm.cfg.covariates)
    assert loaded.future_covariates == list(lstm.cfg.future_covariates)
    args = _inputs(panel)
    got = loaded.predict(*args)
    alone = {
        kind: ForecastBundle(kind, model, vocab).predict(*args)
        for kind, model in (("lstm", lstm), ("lightgbm", lgbm))
    }
    expected = QuantileBlend(weights).combine(alone["lstm"], alone["lightgbm"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    p50 = weights[1] * alone["lstm"][..., 1] + (1 - weights[1]) * alone["lightgbm"][..., 1]
    np.testing.assert_allclose(np.median(got, axis=-1), p50, rtol=1e-5, atol=1e-5)


def test_an_lstm_bundle_saved_before_blends_still_loads(members, tmp_path) -> None:
    from training.forecaster import BUNDLE_FILE, ForecastBundle

    panel, lstm, _ = members
    d = tmp_path / "old"
    lstm.save(d / "lstm")
    vocab = {n: list(panel.static_vocab[n]) for n in STATIC}
    # bundle.json exactly as the LSTM-only champion wrote it (no "blend" entry)
    meta = {"kind": "lstm", "static_vocab": vocab, "week_start": {"53": "2017-12-25"},
            "window": {"last_week": 53}}  # fmt: skip
    (d / BUNDLE_FILE).write_text(json.dumps(meta))
    loaded = ForecastBundle.load(d)
    assert loaded.kind == "lstm" and loaded.window == {"last_week": 53}
    args = _inputs(panel)
    np.testing.assert_allclose(
        loaded.predict(*args), ForecastBundle("lstm", lstm, vocab).predict(*args), atol=1e-6
    )


def test_an_unknown_kind_is_refused_by_name(tmp_path) -> None:
    from training.forecaster import BUNDLE_FILE, ForecastBundle

    (tmp_path / BUNDLE_FILE).write_text(json.dumps({"kind": "prophet", "static_vocab": {}}))
    with pytest.raises(ValueError, match="prophet"):
        ForecastBundle.load(tmp_path)


def test_a_blend_is_selected_only_if_it_clearly_beats_its_better_member() -> None:
    from training.forecasting.evaluate import BLEND_MIN_GAIN, select_model

    def table(blend: float) -> dict:
        rows = {"lstm": 0.66, "lightgbm": 0.72, "lstm+lightgbm": blend, "tft": 0.60}
        return {"inner_validation": {k: {"MASE": v} for k, v in rows.items()}, "test": {}}

    servable = ("lstm", "lightgbm", "lstm+lightgbm")
    assert select_model(table(0.6599), candidates=servable) == "lstm"  # a wash: one model
    clear = 0.66 * (1 - BLEND_MIN_GAIN) - 1e-6
    assert select_model(table(clear), candidates=servable) == "lstm+lightgbm"
    assert select_model(table(clear)) == "tft"  # every row competes without candidates
