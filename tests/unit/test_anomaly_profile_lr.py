"""`profile_lr` detector (training/anomaly/profile_lr.py) and its place in the ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from training.anomaly.data import DailyPanel, windows_for
from training.anomaly.profile_lr import ProfileLR, ProfileLRConfig
from training.models.anomaly import DETECTORS, AnomalyConfig, AnomalyEnsemble

WEEKLY = np.array([1.0, 0.9, 0.9, 1.0, 1.2, 1.6, 1.3])


def _series(stores: int = 12, days: int = 200, noise: float = 0.3, seed: int = 0):
    """(sales [S, D], dow [D], base level [S]) with a weekly pattern and lognormal noise."""
    rng = np.random.default_rng(seed)
    dow = np.arange(days) % 7
    base = rng.uniform(100, 1000, size=stores)
    sales = base[:, None] * WEEKLY[dow][None, :] * rng.lognormal(0, noise, size=(stores, days))
    return sales, dow, base


def _fit(sales, dow, pre_stop=140, **kw) -> ProfileLR:
    return ProfileLR(ProfileLRConfig(**kw)).fit(sales[:, :pre_stop], dow[:pre_stop], 56)


def test_spike_and_drop_rank_top_with_their_sign_and_expected_level() -> None:
    sales, dow, base = _series()
    model = _fit(sales, dow)
    seen = sales.copy()
    seen[2, 170] *= 3.0
    seen[7, 185] *= 0.2
    lr, z, expected = model.score(seen, dow, np.arange(len(seen)))
    window = lr[:, 140:]
    top2 = {np.unravel_index(i, window.shape) for i in np.argsort(-window.ravel())[:2]}
    assert top2 == {(2, 30), (7, 45)}
    assert z[2, 170] > 2 and z[7, 185] < -2
    # the expectation is the store's un-injected level x weekday pattern, not the anomaly
    for s, t in ((2, 170), (7, 185)):
        assert 0.7 < np.exp(expected[s, t]) / (base[s] * WEEKLY[dow[t]]) < 1.4


def test_shared_holiday_move_is_absorbed_by_the_day_effect() -> None:
    sales, dow, _ = _series(stores=30)
    seen = sales.copy()
    seen[:, 175] *= 3.0  # every store triples: a holiday, not 30 anomalies
    rows = np.arange(len(seen))
    lr, _, _ = _fit(sales, dow).score(seen, dow, rows)
    ordinary = np.nanpercentile(lr[:, 140:], 90)
    assert np.median(lr[:, 175]) < ordinary
    # without the day effect the same day would look like 30 spikes
    raw, _, _ = _fit(sales, dow, day_effect_k=1e9).score(seen, dow, rows)
    assert np.median(raw[:, 175]) > np.nanpercentile(raw[:, 140:], 95)


def test_day_effect_is_zero_on_ordinary_days() -> None:
    sales, dow, _ = _series(stores=30)
    model = _fit(sales, dow)
    x = np.log(sales)
    day = model._day_effect(x - model._expected(x, dow, np.arange(30)))
    assert (day[56:] == 0).mean() > 0.9  # only noise: soft-thresholded away


def test_closed_days_abstain_and_shrink_pulls_profiles_together() -> None:
    sales, dow, _ = _series()
    seen = sales.copy()
    seen[4, 150] = 0.0
    lr, z, _ = _fit(sales, dow).score(seen, dow, np.arange(len(seen)))
    assert np.isnan(lr[4, 150]) and np.isnan(z[4, 150])
    assert np.isfinite(lr[:, 140:][seen[:, 140:] > 0]).all()
    pooled = _fit(sales, dow, profile_shrink=1.0).profile
    assert np.allclose(pooled, pooled[0])
    own = _fit(sales, dow, profile_shrink=0.0).profile
    assert not np.allclose(own, own[0])
    # every store's own profile follows the generated weekly pattern
    want = np.log(WEEKLY) - np.log(WEEKLY).mean()
    assert np.abs(own - want).max() < 0.25


def test_fit_needs_residuals() -> None:
    sales, dow, _ = _series(days=60)
    with pytest.raises(ValueError, match="profile_lr"):
        ProfileLR(ProfileLRConfig()).fit(sales, dow, 60)


def _panel(days: int = 200) -> DailyPanel:
    sales, _, _ = _series(stores=8, days=days, seed=1)
    dates = np.arange(np.datetime64("2023-01-02"), np.datetime64("2023-01-02") + days)
    tx = np.maximum(np.round(sales / 20), 1)
    return DailyPanel(
        store_ids=np.array([f"s{i}" for i in range(8)]),
        dates=dates,
        sales=sales,
        transactions=tx,
        avg_basket=sales / tx,
        price_index=np.ones_like(sales),
    )


def test_ensemble_scores_profile_lr_and_old_models_abstain() -> None:
    p = _panel()
    pre, win = windows_for(p, 30)
    cfg = AnomalyConfig(trees=20, min_days=100, window_days=30, weights={"profile_lr": 1.0})
    model = AnomalyEnsemble(cfg).fit(p, pre)
    k = DETECTORS.index("profile_lr")
    p.sales[3, 185] *= 3.0
    res = model.score(p, win)
    assert np.isfinite(res.detector_scores[k]).all()
    assert np.unravel_index(np.argmax(res.score), res.score.shape) == (3, 185 - win.start)
    assert res.votes[k, 3, 185 - win.start]
    # a model saved before the detector existed: it abstains, the others still score
    del model.__dict__["profile_model"]
    model.calibration = model.calibration[:k]
    old = model.score(p, win)
    assert np.isnan(old.detector_scores[k]).all() and np.isnan(old.score).all()
    assert np.isfinite(old.detector_scores[DETECTORS.index("shift_lr")]).all()


def test_scale_follows_store_size_and_weekday() -> None:
    """Noise shrinking with size: the fitted line slopes down, full shrink puts every store's
    scale on it, and a store's busiest weekday gets its smallest scale."""
    rng = np.random.default_rng(5)
    stores, days = 40, 200
    dow = np.arange(days) % 7
    level = np.linspace(np.log(50), np.log(5000), stores)
    noise = 0.8 * np.exp(-0.3 * (level - level[0]))[:, None]  # bigger store, calmer days
    sales = np.exp(
        level[:, None] + np.log(WEEKLY)[dow] + noise * rng.standard_normal((stores, days))
    )
    model = _fit(sales, dow, scale_shrink=1.0)
    assert -0.45 < model.size_slope < -0.15
    line = np.polyfit(model.static, np.log(model.scale), 1)
    np.testing.assert_allclose(np.log(model.scale), np.polyval(line, model.static), atol=1e-9)
    day_scale = model._day_scale(np.arange(stores), np.arange(7))
    assert (day_scale.argmin(axis=1) == np.argmax(WEEKLY)).all()
    flat = _fit(sales, dow, scale_shrink=1.0, weekday_scale=False)._day_scale(
        np.arange(stores), np.arange(7)
    )
    assert np.allclose(flat, flat[:, :1])


def test_pdf_is_linear_interpolation_of_the_table() -> None:
    from training.anomaly.profile_lr import FLOOR, GRID

    sales, dow, _ = _series()
    model = _fit(sales, dow)
    u = np.concatenate([np.random.default_rng(2).normal(0, 25, 5000), [-61.0, 61.0, np.inf]])
    want = np.interp(u, GRID, model.density, left=FLOOR, right=FLOOR)
    np.testing.assert_allclose(model._pdf(u), want, rtol=1e-9, atol=1e-15)
    assert np.isnan(model._pdf(np.array([np.nan])))[0]


def test_one_store_alone_is_scored_as_among_all() -> None:
    """A request may score one store: its anomaly must not become the 'day effect'."""
    sales, dow, _ = _series(stores=30)
    model = _fit(sales, dow)
    seen = sales.copy()
    seen[2, 170] *= 3.0
    every, _, _ = model.score(seen, dow, np.arange(30))
    alone, _, _ = model.score(seen[[2]], dow, np.array([2]))
    assert alone[0, 170] > np.nanpercentile(every[:, 140:], 99)
    np.testing.assert_allclose(alone[0, 170], every[2, 170], rtol=0.05)
