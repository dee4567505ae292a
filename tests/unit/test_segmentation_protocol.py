"""PROTOCOLS §3 scoring, the selection criterion and segment names: generated data only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.segmenter import TrialOutcome, pick_best
from training.segmenting.labels import segment_labels
from training.segmenting.protocol import (
    bootstrap_ari,
    choose,
    kmeans_baseline,
    kmeans_fit,
    protocol_space,
    rfm_frame,
    rfm_segmenter,
    score_assignments,
    select_on_inner_split,
)


def _items(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    """Line items from (customer, transaction, timestamp, sales_value)."""
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "transaction_id": [r[1] for r in rows],
            "transaction_timestamp": pd.to_datetime([r[2] for r in rows]),
            "sales_value": [r[3] for r in rows],
        }
    )


def _blobs(n_per: int = 60, seed: int = 0) -> pd.DataFrame:
    """Four RFM groups far apart in log space (multiplicative noise keeps values positive)."""
    rng = np.random.default_rng(seed)
    centres = [(2, 100, 5000), (300, 5, 100), (5, 4, 80), (150, 60, 2500)]
    rows = [np.array(c) * rng.lognormal(0, 0.1, size=(n_per, 3)) for c in centres]
    return pd.DataFrame(np.vstack(rows), columns=["recency_days", "frequency", "monetary"])


def test_rfm_frame_matches_hand_computed_values():
    items = _items(
        [
            (1, 10, "2024-03-01 09:00", 5.0),
            (1, 10, "2024-03-01 09:00", 2.5),  # same basket: F counts it once
            (1, 11, "2024-03-10 18:30", 10.0),  # the data's last day
            (2, 20, "2024-03-08 23:59", 4.0),  # one purchase: F = 1 is fine
            (3, 30, "2024-02-29 12:00", 1.0),
            (3, 31, "2024-03-05 00:00", np.nan),  # unknown spend counts as 0
            (4, None, "2024-03-05 00:00", 99.0),  # no basket id: dropped and counted
        ]
    )
    rfm = rfm_frame(items)
    # Reference = 2024-03-11 00:00; R = completed days since the last purchase.
    assert rfm.attrs["reference_date"] == "2024-03-11"
    assert list(rfm.index) == [1, 2, 3]
    assert rfm.loc[1].tolist() == [0.0, 2.0, 17.5]
    assert rfm.loc[2].tolist() == [2.0, 1.0, 4.0]
    assert rfm.loc[3].tolist() == [6.0, 2.0, 1.0]
    assert rfm.attrs["skipped_rows"] == 1 and rfm.attrs["nan_sales_rows"] == 1


def test_reference_date_comes_from_the_data_not_a_calendar():
    late = _items([(1, 1, "2031-07-01 10:00", 1.0), (2, 2, "2031-06-21 10:00", 1.0)])
    rfm = rfm_frame(late)
    assert rfm.attrs["reference_date"] == "2031-07-02"
    assert rfm["recency_days"].tolist() == [0.0, 10.0]


def test_protocol_space_is_log_standardised():
    rfm = _blobs()
    x = protocol_space(rfm)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-12)
    # log1p first: a 10x spender is one log step away, not 10x the distance.
    assert np.corrcoef(x[:, 2], np.log1p(rfm["monetary"]))[0, 1] == pytest.approx(1.0)


def test_perfect_separation_scores_high_and_merging_scores_lower():
    rfm = _blobs()
    truth = np.repeat(np.arange(4), 60)
    good = score_assignments(rfm, truth)
    assert good["silhouette"] > 0.8
    assert good["sizes"] == {0: 60, 1: 60, 2: 60, 3: 60}
    assert good["smallest_share"] == pytest.approx(0.25)
    merged = score_assignments(rfm, np.minimum(truth, 2))
    assert merged["silhouette"] < good["silhouette"]
    assert score_assignments(rfm, np.zeros(len(rfm), dtype=int))["silhouette"] == -1.0


def test_nan_rows_are_dropped_and_counted_not_crashed():
    rfm = _blobs()
    truth = np.repeat(np.arange(4), 60)
    bad = rfm.copy()
    bad.iloc[[0, 70], 2] = np.nan
    bad.iloc[5, 0] = np.inf
    score = score_assignments(bad, truth)
    assert score["skipped_households"] == 3 and score["n"] == len(rfm) - 3
    assert score["silhouette"] > 0.8
    with pytest.raises(ValueError, match="finite"):
        protocol_space(bad)


def test_baseline_finds_the_blobs_and_is_stable():
    rfm = _blobs()
    truth = np.repeat(np.arange(4), 60)
    labels = kmeans_baseline(rfm, 4)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    assert bootstrap_ari(kmeans_fit(4), protocol_space(rfm), n=5, seed=1) > 0.99


def test_ari_of_an_arbitrary_split_of_one_blob_is_low():
    """A k that cuts one round cloud changes with every resample: ARI well below 1."""
    x = np.random.default_rng(0).normal(size=(300, 3))
    assert bootstrap_ari(kmeans_fit(6, n_init=1), x, n=5, seed=0) < 0.9


def test_our_segmenter_matches_baseline_space_on_rfm():
    rfm = _blobs()
    model = rfm_segmenter(dict.fromkeys(("recency_days", "frequency", "monetary"), 1.0))(4)
    model.fit(rfm)
    assert score_assignments(rfm, model.predict(rfm))["silhouette"] > 0.8


def test_criterion_rejects_a_tiny_segment_and_low_k():
    candidates = [
        {"k": 3, "silhouette": 0.9, "smallest_share": 0.3, "ari": 1.0},  # k below min_k
        {"k": 4, "silhouette": 0.8, "smallest_share": 0.01, "ari": 1.0},  # a 1% segment
        {"k": 5, "silhouette": 0.7, "smallest_share": 0.10, "ari": 0.5},  # unstable
        {"k": 6, "silhouette": 0.6, "smallest_share": 0.08, "ari": 0.95},
    ]
    chosen, met = choose(candidates)
    assert chosen["k"] == 6 and met
    # Nothing passes: the ARI gate is relaxed first (k >= 4 and 5% segments still hold), and
    # the miss is reported.
    chosen, met = choose(candidates[:3])
    assert not met and chosen["k"] == 5
    chosen, met = choose(candidates[:2])  # then the size gate, never k
    assert not met and chosen["k"] == 4


def test_training_pick_best_applies_the_same_gates():
    trials = [
        TrialOutcome(k=4, n_components=3, silhouette=0.9, smallest_share=0.02, ari=0.99),
        TrialOutcome(k=5, n_components=3, silhouette=0.7, smallest_share=0.10, ari=0.95),
    ]
    assert pick_best(trials, min_k=4, min_segment_share=0.05, min_ari=0.9).k == 5
    assert pick_best(trials).k == 4  # no gates: the first slice's rule
    low_k = [TrialOutcome(k=3, n_components=3, silhouette=0.95), *trials]
    gates = {"min_k": 4, "min_segment_share": 0.05, "min_ari": 0.999}
    assert pick_best(low_k, **gates).k == 5  # ARI gate relaxed first; k and size kept


def test_inner_split_selection_picks_the_true_k():
    rfm = _blobs(n_per=40)
    factory = rfm_segmenter(dict.fromkeys(("recency_days", "frequency", "monetary"), 1.0))
    chosen, met, candidates = select_on_inner_split(
        rfm, {"ours": factory}, [4, 5, 6], n_boot=3, min_k=4
    )
    assert met and chosen["k"] == 4 and len(candidates) == 3


def test_labels_name_obvious_profiles():
    profiles = pd.DataFrame(
        {
            "recency_days": [3, 250, 7, 200, 10],
            "frequency": [150, 80, 5, 3, 70],
            "monetary": [8000, 4000, 150, 90, 4000],
            "size": [100, 100, 100, 100, 100],
        }
    )
    names = segment_labels(profiles)
    assert names[:4] == ["Champions", "At risk", "New or occasional", "Lapsed / low value"]
    assert names[4] == "Loyal regulars"


def test_labels_are_unique_and_deterministic():
    rng = np.random.default_rng(1)
    profiles = pd.DataFrame(
        {
            "recency_days": rng.uniform(1, 300, 8),
            "frequency": rng.uniform(1, 100, 8),
            "monetary": rng.uniform(10, 5000, 8),
            "size": rng.integers(10, 100, 8),
        }
    )
    names = segment_labels(profiles)
    assert len(set(names)) == 8
    assert names == segment_labels(profiles)
    assert segment_labels(profiles.iloc[:0]) == []


def test_training_skips_customers_with_nan_features_and_counts_them():
    from tests.factories import make_customers
    from training.segmenter import drop_incomplete

    df, _ = make_customers(n_per_group=10)
    bad = df.copy()
    bad.iloc[2, 0] = np.nan
    bad.iloc[7, 5] = np.inf
    kept, skipped = drop_incomplete(bad)
    assert skipped == 2 and len(kept) == len(df) - 2
    assert bad.index[2] not in kept.index and bad.index[7] not in kept.index
    assert drop_incomplete(df)[1] == 0
