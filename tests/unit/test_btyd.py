"""BG/NBD likelihood, fit and window probabilities; the churn model's BG/NBD features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.churn import BTYD_DOCS, FEATURE_NAMES, btyd_inputs, churn_feature_set
from training.models.btyd import BGNBD, fit_bgnbd, log_likelihood, p_alive, simulate, window_stats
from training.models.churn import ChurnModel, ChurnParams

TRUE = BGNBD(r=0.8, alpha=4.0, a=0.6, b=3.0)


def test_p_alive_falls_with_recency_and_is_one_without_repeats() -> None:
    T = np.full(6, 30.0)
    t_x = np.array([29.0, 25.0, 20.0, 10.0, 5.0, 1.0])  # later rows: longer since last purchase
    for x in (1.0, 3.0, 10.0):
        alive = p_alive(TRUE, np.full(6, x), t_x, T)
        assert np.all(np.diff(alive) < 0) and ((alive > 0) & (alive < 1)).all()
    assert p_alive(TRUE, [0.0], [0.0], [30.0])[0] == 1.0


def test_window_probabilities_are_probabilities() -> None:
    rng = np.random.default_rng(1)
    T = rng.uniform(1, 50, 500)
    x, t_x = simulate(TRUE, T, rng)
    for params in (TRUE, BGNBD(r=3.5, alpha=6.0, a=0.005, b=0.8)):  # a << 1: p underflows
        s = window_stats(params, x, t_x, T, lead=4, length=9)
        assert all(np.isfinite(v).all() for v in s.values())
        assert ((s["p_silent"] >= 0) & (s["p_silent"] <= 1)).all()
        assert (s["p_silent"] >= 1 - s["p_alive"] - 1e-12).all()  # the dead are silent
        assert (s["expected"] >= 0).all()
    # a longer window is never more likely to be silent
    short = window_stats(TRUE, x, t_x, T, lead=4, length=4)["p_silent"]
    long = window_stats(TRUE, x, t_x, T, lead=4, length=20)["p_silent"]
    assert (long <= short + 1e-12).all() and (long < short).any()


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(0)
    T = rng.uniform(20, 40, 4000)
    x, t_x = simulate(TRUE, T, rng)
    fit = fit_bgnbd(x, t_x, T)
    for name, value in TRUE.to_dict().items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.25), name
    # the well-identified moments: mean purchase rate and mean dropout probability
    assert fit.r / fit.alpha == pytest.approx(TRUE.r / TRUE.alpha, rel=0.05)
    assert fit.a / (fit.a + fit.b) == pytest.approx(TRUE.a / (TRUE.a + TRUE.b), rel=0.1)
    # the optimum beats the truth on its own sample and a clearly wrong point by a margin
    ll = lambda p: log_likelihood(p, x, t_x, T).sum()  # noqa: E731
    assert ll(fit) >= ll(TRUE) - 1e-6
    assert ll(fit) > ll(BGNBD(r=2.0, alpha=1.0, a=2.0, b=1.0)) + 100


def test_window_stats_match_the_model_by_simulation() -> None:
    """P(silent in (T+4, T+13]) and the expected count against paths drawn from the model."""
    rng = np.random.default_rng(2)
    n, T, lead, length = 6000, 30.0, 4.0, 9.0
    lam = rng.gamma(TRUE.r, 1.0 / TRUE.alpha, n)
    p = rng.beta(TRUE.a, TRUE.b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    silent, count = np.ones(n, bool), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T + lead + length:
                break
            if t <= T:
                x[i], t_x[i] = x[i] + 1, t
            elif t > T + lead:
                silent[i], count[i] = False, count[i] + 1
            if rng.random() < p[i]:
                break
    s = window_stats(TRUE, x, t_x, np.full(n, T), lead=lead, length=length)
    assert s["p_silent"].mean() == pytest.approx(silent.mean(), abs=0.02)
    assert s["expected"].mean() == pytest.approx(count.mean(), rel=0.1)
    few = x <= 1
    assert s["p_silent"][few].mean() == pytest.approx(silent[few].mean(), abs=0.03)


def test_inputs_from_view_columns_count_distinct_purchase_days() -> None:
    start = pd.Timestamp("2020-01-06")
    days = {1: [0, 0, 7, 21, 22], 2: [50], 3: [3, 40, 41, 80]}  # customer 1: two baskets day 0
    rows = [
        {
            "customer_id": c, "transaction_id": 100 * c + k, "store_id": "S", "product_id": 1,
            "transaction_timestamp": start + pd.Timedelta(days=d, hours=10 + k), "week": d // 7 + 1,
            "quantity": 1, "sales_value": 1.0, "retail_disc": 0.0, "coupon_disc": 0.0,
            "coupon_match_disc": 0.0,
        }
        for c, ds in days.items() for k, d in enumerate(ds)
    ]  # fmt: skip
    f = churn_feature_set(pd.DataFrame(rows), feature_end_week=20).frame
    x, t_x, T = btyd_inputs(f["tenure_days"], f["recency_days"], f["gap_mean_days"])
    assert x.tolist() == [3.0, 0.0, 3.0]
    assert (t_x <= T).all() and t_x[1] == 0.0
    assert T[0] == pytest.approx(f.loc[1, "tenure_days"] / 7)
    nan = btyd_inputs(np.array([np.nan]), np.array([3.0]), np.array([5.0]))
    assert all(np.isnan(v).all() for v in nan)


def _histories(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """View-shaped rows whose churn label follows the BG/NBD story (silent after T)."""
    rng = np.random.default_rng(seed)
    X = np.abs(rng.normal(size=(n, len(FEATURE_NAMES))))
    col = {name: j for j, name in enumerate(FEATURE_NAMES)}
    tenure = rng.uniform(100, 280, n)
    recency = tenure * rng.beta(0.7, 2.5, n)
    n_days = rng.integers(1, 60, n)
    X[:, col["tenure_days"]], X[:, col["recency_days"]] = tenure, recency
    span = np.floor(tenure) - np.floor(recency)
    X[:, col["gap_mean_days"]] = np.where(n_days > 1, span / np.maximum(n_days - 1, 1), 280)
    y = recency / (span / np.maximum(n_days - 1, 1) + 1) + rng.normal(0, 1, n) > 3
    return X, y


def test_churn_model_with_btyd_features_roundtrip_and_drivers(tmp_path) -> None:
    X, y = _histories()
    params = ChurnParams(num_rounds=60, num_leaves=4, min_data_in_leaf=10, btyd_features=True)
    model = ChurnModel(params).fit(X, y, FEATURE_NAMES)
    assert model.feature_names == list(FEATURE_NAMES)
    assert model.model_names == [*FEATURE_NAMES, *BTYD_DOCS]
    p = model.predict_proba(X)
    assert ((p >= 0) & (p <= 1)).all() and p[y].mean() > p[~y].mean()
    model.save(tmp_path / "m")
    again = ChurnModel.load(tmp_path / "m")
    assert again.btyd is not None and again.btyd.params == model.btyd.params
    np.testing.assert_array_equal(again.predict_proba(X), p)
    drivers = again.drivers(X[:50])
    names = {d["feature"] for row in drivers for d in row}
    assert names <= set(again.model_names) and all(len(d) <= 3 for d in drivers)
    gap = X[:3].copy()
    gap[0, FEATURE_NAMES.index("gap_mean_days")] = np.nan  # a gap in the online row
    assert np.isfinite(again.predict_proba(gap)).all()
    plain = ChurnModel(params.model_copy(update={"btyd_features": False})).fit(X, y, FEATURE_NAMES)
    assert plain.btyd is None and plain.model_names == list(FEATURE_NAMES)
