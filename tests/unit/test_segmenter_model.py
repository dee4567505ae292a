"""CustomerSegmenter and its config: no services, generated customers in well-separated groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import adjusted_rand_score

from features.catalog import SEGMENTER_FEATURES
from tests.factories import make_customers
from training.config import SegmenterTuneConfig, load_segmenter_config
from training.models.segmenter import CustomerSegmenter, label_segment, segment_silhouette


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    return make_customers()


@pytest.fixture(scope="module")
def fitted(customers) -> CustomerSegmenter:
    df, _ = customers
    return CustomerSegmenter(k=4, n_components=3, n_init=5, random_state=7).fit(df)


def test_recovers_well_separated_groups(customers, fitted):
    df, truth = customers
    assert adjusted_rand_score(truth, fitted.predict(df)) > 0.95
    assert fitted.feature_names == SEGMENTER_FEATURES


def test_predict_is_deterministic_and_refit_reproducible(customers, fitted):
    df, _ = customers
    first = fitted.predict(df)
    np.testing.assert_array_equal(first, fitted.predict(df))
    again = CustomerSegmenter(k=4, n_components=3, n_init=5, random_state=7).fit(df)
    np.testing.assert_array_equal(first, again.predict(df))
    assert first.dtype == np.int64 and set(first) == {0, 1, 2, 3}


def test_predict_ignores_column_order(customers, fitted):
    df, _ = customers
    shuffled = df[list(reversed(SEGMENTER_FEATURES))]
    np.testing.assert_array_equal(fitted.predict(df), fitted.predict(shuffled))


def test_profiles_cover_every_customer_with_labels(customers, fitted):
    df, truth = customers
    profiles = fitted.profiles(df)
    assert [p["id"] for p in profiles] == [0, 1, 2, 3]
    assert sum(p["size"] for p in profiles) == len(df)
    assert sum(p["share"] for p in profiles) == pytest.approx(1.0)
    assert all(set(p["means"]) == set(SEGMENTER_FEATURES) for p in profiles)
    # Each generated archetype gets the RFM name the documented rule gives it (the deal
    # seekers buy less than average and recently, so they are the second occasional group).
    labels = fitted.predict(df)
    by_id = {p["id"]: p["label"] for p in profiles}
    expected = {
        0: "Champions",
        1: "Lapsed / low value",
        2: "New or occasional 2",
        3: "New or occasional",
    }
    for gid, label in expected.items():
        majority = np.bincount(labels[truth == gid]).argmax()
        assert by_id[majority] == label


def test_duplicate_labels_are_disambiguated(customers):
    df, _ = customers
    profiles = CustomerSegmenter(k=8, n_components=5, n_init=3).fit(df).profiles(df)
    names = [p["label"] for p in profiles]
    assert len(set(names)) == len(names)


def test_label_rule_order():
    pop = dict.fromkeys(SEGMENTER_FEATURES, 1.0)
    assert label_segment({**pop, "recency_days": 2.0, "monetary": 3.0}, pop) == "At risk"
    assert label_segment({**pop, "monetary": 2.0, "frequency": 1.5}, pop) == "High-value loyal"
    assert label_segment({**pop, "discount_share": 2.0, "avg_basket_value": 2.0}, pop) == (
        "Deal seekers"
    )
    assert label_segment({**pop, "frequency": 0.6, "avg_basket_value": 1.8}, pop) == "Big-basket"
    assert label_segment({**pop, "frequency": 1.1}, pop) == "Regular"
    assert label_segment({**pop, "frequency": 0.5}, pop) == "Occasional"


@pytest.mark.parametrize("column", ["monetary", "stores_visited"])
def test_missing_column_is_named(customers, fitted, column):
    df, _ = customers
    with pytest.raises(ValueError, match=column):
        fitted.predict(df.drop(columns=[column]))
    with pytest.raises(ValueError, match=column):
        CustomerSegmenter(k=3, n_components=2).fit(df.drop(columns=[column]))


def test_nan_is_named(customers, fitted):
    df, _ = customers
    bad = df.copy()
    bad.iloc[3, SEGMENTER_FEATURES.index("coupon_share")] = np.nan
    with pytest.raises(ValueError, match="'coupon_share' has 1 NaN"):
        fitted.predict(bad)
    with pytest.raises(ValueError, match="coupon_share"):
        CustomerSegmenter(k=3, n_components=2).fit(bad)


def test_extra_column_negative_value_and_unfitted_are_rejected(customers, fitted):
    df, _ = customers
    with pytest.raises(ValueError, match="customer_id"):
        fitted.predict(df.reset_index())
    bad = df.copy()
    bad.iloc[0, SEGMENTER_FEATURES.index("monetary")] = -5.0
    with pytest.raises(ValueError, match="'monetary' has negative"):
        fitted.predict(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        CustomerSegmenter().predict(df)
    with pytest.raises(ValueError, match="n_components"):
        CustomerSegmenter(k=3, n_components=12)


def test_silhouette_prefers_the_true_k(customers):
    df, truth = customers
    right = segment_silhouette(df, truth, seed=0)
    merged = segment_silhouette(df, np.minimum(truth, 1), seed=0)
    assert right > merged
    assert segment_silhouette(df, np.zeros(len(df), dtype=int)) == -1.0


def test_from_pipeline_round_trip(customers, fitted):
    df, _ = customers
    wrapped = CustomerSegmenter.from_pipeline(fitted.pipeline)
    assert (wrapped.k, wrapped.n_components) == (4, 3)
    np.testing.assert_array_equal(wrapped.predict(df), fitted.predict(df))
    weighted = CustomerSegmenter(k=4, n_components=3, n_init=2, weights=RFM_ONLY).fit(df)
    assert CustomerSegmenter.from_pipeline(weighted.pipeline).weights == RFM_ONLY


def test_zero_weight_features_do_not_move_segments(customers):
    """An RFM-only model ignores the behaviour columns it still takes as input."""
    df, _ = customers
    model = CustomerSegmenter(k=4, n_components=3, n_init=3, weights=RFM_ONLY).fit(df)
    noisy = df.assign(coupon_share=1.0 - df["coupon_share"], stores_visited=99.0)
    np.testing.assert_array_equal(model.predict(noisy), model.predict(df))
    with pytest.raises(ValueError, match="weights"):
        CustomerSegmenter(weights=[0.0] * len(SEGMENTER_FEATURES))


def test_config_file_loads_and_overrides():
    cfg = load_segmenter_config(max_trials=3, k_values=[4, 2, 4], pca_components=[2, 3])
    assert cfg.k_values == [2, 4]
    assert len(cfg.grid()) == 3
    again = load_segmenter_config(max_trials=3, k_values=[2, 4], pca_components=[2, 3])
    assert cfg.grid() == again.grid()
    full = load_segmenter_config()  # the shipped file: the whole grid, no budget
    # PCA sizes are clipped to each set's feature count, so a 3-feature set has fewer of them.
    expected = sum(
        len(full.k_values) * len({min(c, len(w)) for c in full.pca_components})
        for w in full.feature_sets.values()
    )
    assert len(full.grid()) == expected
    assert {g["features"] for g in full.grid()} == set(full.feature_sets)


def test_config_rejects_unknown_and_invalid_keys(tmp_path):
    path = tmp_path / "seg.yaml"
    path.write_text("k_values: [3, 4]\nnum_clusters: 5\n")
    with pytest.raises(ValidationError, match="num_clusters"):
        load_segmenter_config(path)
    with pytest.raises(ValidationError, match="k_values"):
        SegmenterTuneConfig(k_values=[1, 3])
    with pytest.raises(ValidationError, match="pca_components"):
        SegmenterTuneConfig(pca_components=[12])
    with pytest.raises(ValidationError, match="holdout_fraction"):
        load_segmenter_config(holdout_fraction=1.5)


RFM_ONLY = [
    1.0 if f in ("recency_days", "frequency", "monetary") else 0.0 for f in SEGMENTER_FEATURES
]
MONETARY_LOW = [0.7 if f == "monetary" else 1.0 for f in SEGMENTER_FEATURES]


@pytest.mark.parametrize(
    "k,n_components,weights",
    [(2, 1, None), (4, 3, None), (6, 11, None), (4, 3, RFM_ONLY), (5, 6, MONETARY_LOW)],
)
def test_numpy_path_agrees_with_the_pipeline_on_every_customer(
    k: int, n_components: int, weights: list[float] | None
) -> None:
    from training.models.segmenter import FastSegmenter

    x, _ = make_customers(n_per_group=50, seed=3)
    model = CustomerSegmenter(k=k, n_components=n_components, n_init=2, weights=weights).fit(x)
    fast = FastSegmenter(model)
    np.testing.assert_array_equal(fast.predict(x.to_numpy()), model.predict(x))
    # one row at a time, from the online store's mapping (any key order)
    for _, row in x.sample(20, random_state=0).iterrows():
        shuffled = dict(reversed(list(row.to_dict().items())))
        assert fast.predict_one(shuffled) == int(model.predict(row.to_frame().T)[0])
