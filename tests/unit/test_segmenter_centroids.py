"""Bagged K-Means and soft refinement of the segmenter's centroids: generated data only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from tests.factories import make_customers
from training.config import load_segmenter_config
from training.models.segmenter import CustomerSegmenter, FastSegmenter
from training.segmenter import train_ari
from training.segmenting.centroids import align, fit_kmeans, soft_refine
from training.segmenting.protocol import RFM_COLUMNS, bootstrap_ari

GRID = np.array([[0, 0], [4, 0], [8, 0], [0, 4], [4, 4], [8, 4], [2, 8], [6, 8]], dtype=float)


def _blobs(spread: float, seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Eight round groups on a grid; at spread 0.9 they touch, so restarts find other optima."""
    rng = np.random.default_rng(seed)
    x = np.vstack([c + rng.normal(scale=spread, size=(n, 2)) for c in GRID])
    return x, np.repeat(np.arange(len(GRID)), n)


def _fit_fn(k: int, **options):
    return lambda rows: fit_kmeans(rows, k, seed=0, **options).predict


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)


def test_align_undoes_a_permutation_of_noisy_centroids():
    noisy = GRID + np.random.default_rng(1).normal(scale=0.3, size=GRID.shape)
    order = np.random.default_rng(2).permutation(len(GRID))
    np.testing.assert_array_equal(align(GRID, noisy[order]), noisy)


def test_bagged_kmeans_recovers_the_true_groups_as_a_plain_kmeans():
    x, truth = _blobs(spread=0.5)
    km = fit_kmeans(x, 8, n_init=1, seed=0, bags=10, bag_n_init=2)
    assert adjusted_rand_score(truth, km.predict(x)) == pytest.approx(1.0)
    # What serving loads: a fitted sklearn KMeans assigning rows to their nearest centre.
    assert type(km) is KMeans
    np.testing.assert_array_equal(km.predict(x), _nearest(x, km.cluster_centers_))


@pytest.mark.parametrize("seed", [0, 1])
def test_bagging_is_more_stable_than_kmeans_with_the_same_restarts(seed):
    """Touching groups: one k-means++ start sometimes merges two and splits another, so plain
    refits on resamples disagree; the aligned average of bags lands on the common optimum."""
    x, _ = _blobs(spread=0.9, seed=seed)
    plain = bootstrap_ari(_fit_fn(8, n_init=1), x, n=8, seed=0)
    bagged = bootstrap_ari(_fit_fn(8, n_init=1, bags=10, bag_n_init=2), x, n=8, seed=0)
    assert plain < 0.96
    assert bagged >= plain + 0.02


def test_soft_refinement_keeps_clear_groups_and_a_cold_one_is_kmeans():
    x, truth = _blobs(spread=0.5)
    start = KMeans(n_clusters=8, n_init=5, random_state=0).fit(x).cluster_centers_
    # A vanishing temperature is hard assignment: the K-Means fixed point does not move.
    np.testing.assert_allclose(soft_refine(x, start, 1e-6), start, atol=1e-8)
    km = fit_kmeans(x, 8, n_init=5, seed=0, temperature=0.45)
    assert adjusted_rand_score(truth, km.predict(x)) == pytest.approx(1.0)
    assert type(km) is KMeans
    assert km.inertia_ == pytest.approx(((x - km.cluster_centers_[km.labels_]) ** 2).sum())


def test_too_hot_a_refinement_never_empties_a_segment():
    x, _ = _blobs(spread=0.9)
    merged = soft_refine(x, KMeans(8, n_init=3, random_state=0).fit(x).cluster_centers_, 50.0)
    assert len(np.unique(_nearest(x, merged))) < 8  # the centroids did collapse
    km = fit_kmeans(x, 8, n_init=3, seed=0, temperature=50.0)
    assert len(np.unique(km.predict(x))) == 8  # so the start was kept


@pytest.mark.parametrize("options", [{"bags": 4}, {"temperature": 0.45}])
def test_a_bagged_or_soft_segmenter_still_serves_by_nearest_centroid(options):
    df, truth = make_customers(n_per_group=40)
    model = CustomerSegmenter(k=4, n_components=3, n_init=3, random_state=7, **options).fit(df)
    labels = model.predict(df)
    assert adjusted_rand_score(truth, labels) > 0.95
    np.testing.assert_array_equal(FastSegmenter(model).predict(df.to_numpy()), labels)
    loaded = CustomerSegmenter.from_pipeline(model.pipeline)
    np.testing.assert_array_equal(loaded.predict(df), labels)


def test_training_ari_refits_the_whole_procedure():
    """The criterion's ARI on train rows repeats bagging/refinement in every refit."""
    rng = np.random.default_rng(0)
    cov = [[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]]
    rows = np.exp(rng.multivariate_normal([3.0, 2.0, 5.0], cov, size=300))  # one skewed cloud
    train = pd.DataFrame(rows, columns=list(RFM_COLUMNS))

    def model(**options) -> CustomerSegmenter:
        return CustomerSegmenter(
            k=5, n_components=3, n_init=3, feature_names=RFM_COLUMNS, random_state=0, **options
        )

    def refit(data: np.ndarray):
        fitted = model(temperature=0.45).fit(pd.DataFrame(data, columns=list(RFM_COLUMNS)))
        return lambda z: fitted.predict(pd.DataFrame(z, columns=list(RFM_COLUMNS)))

    soft = train_ari(model(temperature=0.45).fit(train), train, n=5, seed=3)
    assert soft == pytest.approx(bootstrap_ari(refit, rows, n=5, seed=3))
    assert soft != pytest.approx(train_ari(model().fit(train), train, n=5, seed=3))


def test_config_carries_the_centroid_options(tmp_path):
    options = load_segmenter_config().centroid_options()
    assert set(options) == {"bags", "bag_n_init", "temperature"}
    CustomerSegmenter(**options)  # every option is a model argument
    path = tmp_path / "seg.yaml"
    path.write_text("ensemble: {bags: 5, n_init: 2}\nsoft_temperature: 0\n")
    assert load_segmenter_config(path).centroid_options() == {
        "bags": 5,
        "bag_n_init": 2,
        "temperature": 0.0,
    }
    path.write_text("ensemble: {bags: 5, restarts: 2}\n")
    with pytest.raises(ValidationError, match="restarts"):
        load_segmenter_config(path)
    with pytest.raises(ValidationError, match="soft_temperature"):
        load_segmenter_config(soft_temperature=-1)
    with pytest.raises(ValueError, match="bags"):
        CustomerSegmenter(bags=-1)
