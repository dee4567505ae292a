"""Sales-anomaly detector: panel rules, injection protocol, ensemble ranking, persistence."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from training.anomaly.data import DailyPanel, daily_panel, eligible_stores, windows_for
from training.anomaly.evaluate import (
    candidates,
    evaluate_development,
    evaluate_protocol,
    inject,
    quality,
)
from training.anomaly.tune import apply_params, pseudo_auc, pseudo_panel
from training.models.anomaly import AnomalyConfig, AnomalyEnsemble, load_config


def _items(rows: list[tuple]) -> pd.DataFrame:
    """Line items from (store, transaction, timestamp, sales_value, quantity) tuples."""
    df = pd.DataFrame(rows, columns=["store_id", "transaction_id", "ts", "sales_value", "quantity"])
    return pd.DataFrame(
        {
            "customer_id": 1,
            "transaction_id": df["transaction_id"].astype("int64"),
            "store_id": df["store_id"],
            "product_id": 7,
            "transaction_timestamp": pd.to_datetime(df["ts"]),
            "week": 1,
            "quantity": df["quantity"],
            "sales_value": df["sales_value"],
            "retail_disc": 0.0,
            "coupon_disc": 0.0,
            "coupon_match_disc": 0.0,
        }
    )


def _synthetic(stores: int = 8, days: int = 200, seed: int = 0) -> DailyPanel:
    """Stores with a weekly pattern and lognormal noise, every day open."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2023-01-02"), np.datetime64("2023-01-02") + days)
    weekly = np.array([1.0, 0.9, 0.9, 1.0, 1.2, 1.5, 1.3])
    base = rng.uniform(200, 800, size=(stores, 1))
    dow = (dates.astype(np.int64) + 3) % 7
    sales = base * weekly[dow][None, :] * rng.lognormal(0, 0.1, size=(stores, days))
    tx = np.round(sales / 20)
    return DailyPanel(
        store_ids=np.array([f"s{i}" for i in range(stores)]),
        dates=dates,
        sales=sales,
        transactions=tx,
        avg_basket=sales / tx,
        price_index=np.ones_like(sales),
    )


def _cfg(**kw) -> AnomalyConfig:
    return AnomalyConfig(trees=50, min_days=100, window_days=30, **kw)


def test_panel_business_date_missing_day_and_bad_rows() -> None:
    items = _items(
        [
            ("A", 1, "2024-03-02 04:59:00", 10.0, 1),  # before 05:00 -> trading day 03-01
            ("A", 1, "2024-03-02 04:59:00", 5.0, 5),
            ("A", 2, "2024-03-02 05:00:00", 7.0, 1),  # 05:00 -> trading day 03-02
            ("A", 3, "2024-03-04 12:00:00", 4.0, 2),  # 03-03 has no sale -> 0
            ("B", 4, "2024-03-03 12:00:00", 9.0, 3),
            ("B", 5, "2024-03-03 13:00:00", np.nan, 1),  # bad sales_value: skipped
            (None, 6, "2024-03-03 13:00:00", 1.0, 1),  # no store: skipped
        ]
    )
    p = daily_panel(items)
    assert list(p.store_ids) == ["A", "B"]
    assert p.dates[0] == np.datetime64("2024-03-01") and p.dates[-1] == np.datetime64("2024-03-04")
    np.testing.assert_allclose(p.sales[0], [15.0, 7.0, 0.0, 4.0])
    np.testing.assert_allclose(p.transactions[0], [1, 1, 0, 1])
    np.testing.assert_allclose(p.avg_basket[0], [15.0, 7.0, 0.0, 4.0])
    np.testing.assert_allclose(p.sales[1], [0.0, 0.0, 9.0, 0.0])
    assert p.skipped == {"missing_key": 1, "bad_sales_value": 1, "outside_range": 0}
    assert np.isnan(p.price_index[0, 2])  # no price observed on a day without lines
    # explicit range: rows outside are counted, not silently dropped
    q = daily_panel(items, start="2024-03-02", end="2024-03-03")
    assert q.skipped["outside_range"] == 3 and len(q.dates) == 2


def test_eligible_and_windows() -> None:
    p = _synthetic(stores=3, days=120)
    p.sales[2, 10:] = 0.0  # 10 sales days only
    assert eligible_stores(p, min_days=100).tolist() == [True, True, False]
    pre, win = windows_for(p, 60)
    assert (pre.stop, win.start, win.stop) == (60, 60, 120)
    with pytest.raises(ValueError):
        windows_for(p, 120)


def test_injection_count_reproducible_and_factors() -> None:
    p = _synthetic()
    p.sales[0, -10:] = 0.0  # closed days are never candidates
    _, win = windows_for(p, 30)
    n_cand = int(candidates(p, win).sum())
    a_sales, a_lab, a_kind = inject(p, win, 42)
    b_sales, b_lab, _ = inject(p, win, 42)
    _, c_lab, _ = inject(p, win, 43)
    assert a_lab.sum() == round(0.05 * n_cand)
    assert np.array_equal(a_lab, b_lab) and np.array_equal(a_sales, b_sales)
    assert not np.array_equal(a_lab, c_lab)
    assert not a_lab[0, -10:].any() and not a_lab[:, : win.start].any()
    ratio = a_sales[a_lab] / p.sales[a_lab]
    np.testing.assert_allclose(ratio, np.where(a_kind[a_lab] > 0, 3.0, 0.2))
    np.testing.assert_array_equal(a_sales[~a_lab], p.sales[~a_lab])


def test_obvious_spike_and_drop_rank_top() -> None:
    p = _synthetic()
    pre, win = windows_for(p, 30)
    model = AnomalyEnsemble(_cfg()).fit(p, pre)
    p.sales[3, 185] *= 4.0
    p.sales[5, 190] *= 0.1
    res = model.score(p, win)
    top2 = np.argsort(-res.score.ravel())[:2]
    got = {np.unravel_index(i, res.score.shape) for i in top2}
    assert got == {(3, 185 - win.start), (5, 190 - win.start)}
    assert res.direction[3, 185 - win.start] == 1 and res.direction[5, 190 - win.start] == -1
    assert res.votes[:, 3, 185 - win.start].sum() >= 2
    # expected value is near the un-injected level, not the anomaly
    assert 0.6 < res.expected[3, 185 - win.start] / (p.sales[3, 185] / 4.0) < 1.6


def test_save_load_roundtrip(tmp_path) -> None:
    p = _synthetic()
    pre, win = windows_for(p, 30)
    model = AnomalyEnsemble(_cfg()).fit(p, pre)
    model.save(tmp_path / "m")
    again = AnomalyEnsemble.load(tmp_path / "m")
    a, b = model.score(p, win), again.score(p, win)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.votes, b.votes)
    assert again.cfg == model.cfg


def test_short_history_store_skipped_and_abstains() -> None:
    p = _synthetic()
    p.sales[1, :150] = 0.0  # opened 50 days before the end: 20 pre-window sales days
    pre, win = windows_for(p, 30)
    model = AnomalyEnsemble(_cfg()).fit(p, pre)
    assert model.skipped_stores == 1 and "s1" not in model.store_ids
    res = model.score(p, win)
    assert np.isnan(res.score[1]).all() and not res.votes[:, 1].any()
    assert np.isfinite(res.score[[0, 2, 3]]).all()


def test_config_rejects_unknown_keys_and_detectors() -> None:
    cfg = load_config()
    assert cfg.trees == 200 and cfg.window_days == 60
    with pytest.raises(ValueError):
        AnomalyConfig(tres=3)
    with pytest.raises(ValueError):
        AnomalyConfig(weights={"lstm": 1.0})
    tuned = apply_params(cfg, {"w_iqr": 0.5, "level_days": 14, "threshold": 0.9})
    assert tuned.weights["iqr"] == 0.5 and tuned.level_days == 14
    assert set(tuned.thresholds.values()) == {0.9}


def test_evaluate_protocol_and_quality_on_generated_data() -> None:
    p = _synthetic(stores=6)
    cfg = _cfg()
    rows: list[dict] = []
    res = evaluate_protocol(p, cfg, on_row=rows.append, seeds=(42, 43))
    assert res["n_stores"] == 6 and len(rows) == 2 * len(res["mean"])
    # low-noise generated series: the ensemble must clearly beat chance and the raw baseline
    assert res["mean"]["ensemble"]["auc"] > 0.9
    assert res["mean"]["ensemble"]["auc"] >= res["mean"]["seasonal_raw"]["auc"]
    q = quality(p, cfg, data="generated")
    assert q["figure"] == "anomaly_quality" and q["value"] == q["ensemble"]["auc"]
    assert q["baseline"] in q["detectors"]


def test_evaluate_protocol_without_an_eligible_store_says_why() -> None:
    p = _synthetic(stores=3)
    cfg = AnomalyConfig(trees=50, min_days=len(p.dates) + 1, window_days=30)
    with pytest.raises(ValueError, match=r"no store has sales on at least min_days"):
        evaluate_protocol(p, cfg, seeds=(42,))


def test_pseudo_window_never_reads_the_protocol_window() -> None:
    p = _synthetic(days=200)
    cfg = _cfg()
    cut = pseudo_panel(p, cfg)
    assert len(cut.dates) == 170 and cut.dates[-1] == p.dates[169]
    auc, f1 = pseudo_auc(cut, cfg, seeds=(1000,))
    assert 0.5 < auc <= 1.0 and 0.0 <= f1 <= 1.0


def test_development_windows_precede_the_protocol_window_and_never_read_it() -> None:
    p = _synthetic(stores=6, days=200)
    cfg = _cfg()
    rows: list[dict] = []
    res = evaluate_development(p, cfg, windows=2, seeds=(1000,), on_row=rows.append)
    # the two 30-day windows just before the protocol's last 30 days
    assert res["windows"] == [
        [str(p.dates[110]), str(p.dates[139])],
        [str(p.dates[140]), str(p.dates[169])],
    ]
    assert set(res["per_window"]) == {str(p.dates[110]), str(p.dates[140])}
    assert len(rows) == 2 * len(res["mean"]) and res["mean"]["ensemble"]["auc"] > 0.9
    # whatever the protocol window holds, the development table is the same
    wild = p.sales.copy()
    wild[:, 170:] *= np.random.default_rng(5).uniform(0.01, 100, size=wild[:, 170:].shape)
    other = evaluate_development(replace(p, sales=wild), cfg, windows=2, seeds=(1000,))
    assert other["mean"] == res["mean"]
    with pytest.raises(ValueError, match="development window"):
        evaluate_development(p, cfg, windows=5, seeds=(1000,))


@pytest.mark.slow
def test_evaluate_protocol_on_cj_slice() -> None:
    from training.datasets import cj_line_items

    items, _ = cj_line_items(households=400)
    panel = daily_panel(items)
    res = evaluate_protocol(panel, AnomalyConfig(trees=50, min_days=150), seeds=(42,))
    assert res["n_stores"] > 0 and res["window"][1] == "2017-12-31"
    assert 0.5 < res["mean"]["ensemble"]["auc"] <= 1.0


def test_fast_isolation_forest_equals_sklearn_score_samples() -> None:
    """The serving path's numpy forest gives scikit-learn's scores, row for row."""
    from sklearn.ensemble import IsolationForest

    from training.models.fast_forest import FastIsolationForest

    rng = np.random.default_rng(3)
    train = rng.normal(size=(3000, 6))
    forest = IsolationForest(n_estimators=50, max_features=0.8, random_state=0).fit(train)
    rows = np.vstack([rng.normal(size=(200, 6)), rng.normal(scale=6, size=(20, 6))])
    np.testing.assert_allclose(
        FastIsolationForest(forest).scores(rows), -forest.score_samples(rows), rtol=1e-12
    )
