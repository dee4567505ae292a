"""Churn features, windows, model and the churn_cj protocol on small data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.churn import (
    FEATURE_DOCS,
    FEATURE_NAMES,
    churn_feature_set,
    churn_features,
    churn_labels,
    windows_for,
)
from training.churn import ChurnConfig, load_churn_config
from training.churn.evaluate import (
    ChurnFrame,
    calibration_plot,
    churn_frame,
    evaluate_protocol,
    quality,
)
from training.models.churn import ChurnModel, ChurnParams, LogisticBaseline

START = pd.Timestamp("2020-01-06")  # a Monday: day d is in week d // 7 + 1


def _items(purchases: dict[int, list[int]]) -> pd.DataFrame:
    """One single-line transaction at noon of each listed day, per customer."""
    rows = []
    tid = 0
    for cust, days in purchases.items():
        for d in days:
            tid += 1
            rows.append(
                {
                    "customer_id": cust,
                    "transaction_id": tid,
                    "store_id": "S1",
                    "product_id": 100 + d % 3,
                    "transaction_timestamp": START + pd.Timedelta(days=d, hours=12),
                    "week": d // 7 + 1,
                    "quantity": 1,
                    "sales_value": 10.0,
                    "retail_disc": 1.0,
                    "coupon_disc": 0.0,
                    "coupon_match_disc": 0.0,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def tiny() -> pd.DataFrame:
    return _items(
        {
            1: list(range(0, 210, 7)),  # weekly, days 0..203 (weeks 1..30)
            2: [50],  # one purchase
            3: [0, 20, 40, 60, 80],  # every 20 days, gone quiet after day 80
            4: [220],  # only after the feature cut: not a row
        }
    )


def test_features_known_values(tiny: pd.DataFrame) -> None:
    fs = churn_feature_set(tiny, feature_end_week=30)
    f = fs.frame
    assert list(f.columns) == list(FEATURE_NAMES) and set(FEATURE_NAMES) == set(FEATURE_DOCS)
    assert list(f.index) == [1, 2, 3] and f.index.dtype == np.int64
    assert (f.dtypes == np.float64).all()
    # reference = end of day 203 (customer 1's last purchase at noon)
    assert f.loc[1, "recency_days"] == pytest.approx(0.5)
    assert f.loc[3, "recency_days"] == pytest.approx(123.5)
    assert f.loc[1, "baskets_all"] == 30 and f.loc[1, "baskets_4w"] == 4
    assert f.loc[3, "baskets_13w"] == 0 and f.loc[3, "baskets_all"] == 5
    assert f.loc[1, "gap_mean_days"] == pytest.approx(7.0)
    assert f.loc[3, "gap_mean_days"] == pytest.approx(20.0)
    assert f.loc[3, "recency_over_gap"] == pytest.approx(123.5 / 20.0)
    assert f.loc[1, "active_share_13w"] == 1.0
    assert f.loc[1, "spend_all"] == 300.0
    assert f.loc[1, "discount_share"] == pytest.approx(1.0 / 11.0)


def test_one_purchase_household_gets_documented_fill(tiny: pd.DataFrame) -> None:
    fs = churn_feature_set(tiny, feature_end_week=30)
    window = 204.0 - 0.5  # first transaction at noon of day 0 to the end of day 203
    assert fs.frame.loc[2, "gap_mean_days"] == pytest.approx(window)
    assert fs.frame.loc[2, "gap_max_days"] == pytest.approx(window)
    assert fs.frame.loc[2, "gap_sd_days"] == 0.0
    assert fs.frame.loc[2, "last_gap_over_mean"] == 1.0
    assert fs.filled == {
        k: 1 for k in ("gap_mean_days", "gap_sd_days", "gap_max_days", "last_gap_over_mean")
    }
    assert not fs.frame.isna().any().any()


def test_rows_missing_keys_are_skipped_and_counted(tiny: pd.DataFrame) -> None:
    bad = tiny.copy()
    bad["customer_id"] = bad["customer_id"].astype("float64")
    bad.loc[bad.index[:3], "customer_id"] = np.nan
    bad.loc[bad.index[3], "transaction_timestamp"] = pd.NaT
    f = churn_features(bad, feature_end_week=30)
    assert f.attrs["skipped_rows"] == 4
    assert f.loc[1, "baskets_all"] == 30 - 4


def test_labels(tiny: pd.DataFrame) -> None:
    y = churn_labels(tiny, pd.Index([1, 2, 3, 4]), label_weeks=(30, 32))
    assert y.tolist() == [False, True, True, False]


def test_windows_generalise_cj() -> None:
    assert windows_for(1, 53) == (40, 45, 53)
    assert windows_for(101, 152) == (139, 144, 152)  # any retailer's week numbering
    with pytest.raises(ValueError, match="too few"):
        windows_for(1, 30)


def _synthetic(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    y = (X[:, 0] + 0.5 * rng.normal(size=n)) > 1.0
    return X, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_model_roundtrip_calibrated_and_drivers(tmp_path, method: str) -> None:
    X, y = _synthetic()
    params = ChurnParams(num_rounds=50, num_leaves=4, min_data_in_leaf=10, calibration=method)
    model = ChurnModel(params).fit(X, y, FEATURE_NAMES)
    p = model.predict_proba(X)
    assert ((p >= 0) & (p <= 1)).all() and p[y].mean() > p[~y].mean() + 0.3
    model.save(tmp_path / "m")
    again = ChurnModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(X), p)
    drivers = again.drivers(X[:20])
    assert len(drivers) == 20 and all(len(d) <= 3 for d in drivers)
    # the churn signal is feature 0: it leads the drivers of the riskiest rows
    top = drivers[int(np.argmax(p[:20]))]
    assert top[0]["feature"] == FEATURE_NAMES[0] and top[0]["contribution"] > 0
    assert all(d["feature"] in FEATURE_NAMES for row in drivers for d in row)


def test_logistic_baseline_handles_negative_and_constant_features() -> None:
    X, y = _synthetic()
    X[:, 1] = 5.0
    p = LogisticBaseline().fit(X, y).predict_proba(X)
    assert np.isfinite(p).all() and p[y].mean() > p[~y].mean()


def test_config_file_loads_and_rejects_unknown_keys(tmp_path) -> None:
    cfg = load_churn_config()
    assert cfg.splits == 20 and cfg.model.calibration in ("isotonic", "platt")
    bad = tmp_path / "c.yaml"
    bad.write_text("model:\n  num_round: 3\n")
    with pytest.raises(ValueError, match="num_round"):
        load_churn_config(bad)


def test_calibration_plot_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=300)
    out = calibration_plot(rng.uniform(size=300) < p, p, tmp_path / "rel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_protocol_on_cj_slice() -> None:
    from training.datasets import cj_line_items

    items, products = cj_line_items(households=300)
    cfg = ChurnConfig(model=ChurnParams(num_rounds=100, num_leaves=4, min_data_in_leaf=20))
    frame = churn_frame(items)
    assert frame.windows == (40, 45, 53)
    rows: list[dict] = []
    res = evaluate_protocol(items, products, cfg, splits=2, on_row=rows.append, frame=frame)
    assert len(rows) == 2 * 2 * 6
    assert res["clean"]["households"] < res["main"]["households"] <= 300
    for pop in ("main", "clean"):
        models = res[pop]["models"]
        assert set(models) == {
            "lightgbm",
            "logistic",
            "recency",
            "lightgbm_raw",
            "btyd",
            "logistic_btyd",
        }
        assert all(0.5 < m["roc_auc_mean"] <= 1.0 for m in models.values())
    q = quality(items, products, cfg.model_copy(update={"splits": 2}))
    assert q["figure"] == "churn_quality" and q["baseline"] == "logistic"
    assert q["value"] == pytest.approx(q["ratio"] * q["baseline_value"])


def test_inner_cv_sees_only_the_training_part() -> None:
    from training.churn.tune import inner_cv_auc, split0_train

    X, y = _synthetic(n=400)
    idx = pd.Index(np.arange(400, dtype=np.int64), name="customer_id")
    frame = ChurnFrame(
        pd.DataFrame(X, index=idx, columns=list(FEATURE_NAMES)),
        pd.Series(y, index=idx),
        {"main": np.ones(400, dtype=bool)},
        windows_for(1, 53),
        0,
        {},
    )
    Xtr, ytr = split0_train(frame, ChurnConfig())
    assert len(Xtr) == 300 and ytr.mean() == pytest.approx(y.mean(), abs=0.01)
    params = ChurnParams(num_rounds=50, num_leaves=4, min_data_in_leaf=10)
    assert inner_cv_auc(Xtr, ytr, params, folds=3) > 0.8
