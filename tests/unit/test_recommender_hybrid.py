"""The hybrid recommender: blend features, the linear and boosted blends, pooled full-catalog
scoring, candidate sets and reasons, and loading scorers saved by older versions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tests.unit.test_recommender_model import SMALL, _recdata
from training.recommending.blend import (
    INCREASING,
    WINDOW_FEATURES,
    ALSFeature,
    Blend,
    LightGBMBlend,
    blend_sample,
    sample_features,
)
from training.recommending.candidates import candidates, reasons
from training.recommending.data import RecData
from training.recommending.hybrid import (
    FEATURES,
    HybridConfig,
    HybridScorer,
    fit_als,
    fit_blend,
)
from training.trainers.recommender import fit_ncf


def _staples(n_users: int = 30, n_items: int = 60) -> RecData:
    """Each user has a staple item bought in 8 baskets (held out again) and one-off items."""
    rng = np.random.default_rng(3)
    counts = np.zeros((n_users, n_items))
    days = rng.integers(20, 60, (n_users, n_items)).astype(float)
    targets = []
    for u in range(n_users):
        staple = u % n_items
        others = rng.choice(np.setdiff1d(np.arange(n_items), staple), 12, replace=False)
        counts[u, others] = 1
        counts[u, staple] = 8
        days[u, staple] = 7
        new = rng.choice(np.flatnonzero(counts[u] == 0), 1)
        targets.append(np.array([staple, new[0]]))
    return _recdata(counts, days, targets)


def test_hybrid_ranks_a_heavy_repeat_item_first(tmp_path) -> None:
    data = _staples()
    scorer = HybridScorer(None, data, n_neighbours=5)
    scorer.blend = fit_blend(scorer, HybridConfig(neg_bought=5, neg_random=5))
    top = scorer.score_all(np.arange(data.n_users)).argmax(axis=1)
    assert (top == np.arange(data.n_users) % data.n_items).mean() >= 0.9
    # a saved and reloaded scorer (what serving loads) scores identically
    scorer.save(tmp_path / "hybrid")
    loaded = HybridScorer.load(tmp_path / "hybrid")
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score_all(users), scorer.score_all(users), rtol=1e-5)
    # the candidate set puts it first too; an unknown customer is counted and gets popularity
    cs = candidates(scorer, np.array([100, 999_999]), n=5)
    assert cs.items[0, 0] == 0 and cs.skipped == {"unknown_customers": 1}
    assert cs.items.shape == (2, 5)


def test_pooled_full_catalog_scores_equal_exact_ones_on_the_pool(tmp_path) -> None:
    data = _staples(n_users=30, n_items=60)
    exact = HybridScorer(None, data, n_neighbours=5)
    exact.blend = fit_blend(exact, HybridConfig(neg_bought=5, neg_random=5))
    pooled = HybridScorer(None, data, exact.blend, n_neighbours=5, pool=3)
    users = np.arange(data.n_users)
    full, part = exact.score_all(users), pooled.score_all(users)
    mask = pooled.pool_mask(users)
    # each household's pool: every item it bought, plus the 3 most popular items at least
    assert mask[data.train.toarray() > 0].all()
    assert mask[:, np.argsort(-exact.pop, kind="stable")[:3]].all()
    assert 0 < mask.sum(axis=1).min() and mask.sum(axis=1).max() < data.n_items
    # pooled items score exactly as unpooled; the rest rank last
    np.testing.assert_allclose(part[mask], full[mask], rtol=1e-6)
    assert np.isneginf(part[~mask]).all()
    # a candidate set larger than the pool's popular part widens it: no unscored candidate
    assert pooled.pool_mask(users, min_pool=12)[:, np.argsort(-exact.pop, kind="stable")[:12]].all()
    cs = candidates(pooled, data.customer_ids, n=12)
    assert np.isfinite(cs.scores).all()
    # the pool size is saved with the scorer
    pooled.save(tmp_path / "pooled")
    assert HybridScorer.load(tmp_path / "pooled").pool == 3


def test_ncf_alone_scores_are_its_blend_of_the_features() -> None:
    """The NCF-alone scorer skips the other features; its scores are what the blend gives."""
    data = _staples()
    scorer = HybridScorer(fit_ncf(data, SMALL), data, Blend.ncf_only(), n_neighbours=5)
    assert scorer.blend.is_ncf_only
    items = np.tile(np.arange(data.n_items), (4, 1))
    via_features = scorer.blend(scorer.features(np.arange(4), items))
    np.testing.assert_allclose(scorer.score(np.arange(4), items), via_features, rtol=1e-5)
    np.testing.assert_allclose(scorer.score_all(np.arange(4)), via_features, rtol=1e-5)
    coef = Blend.ncf_only().coef.copy()
    coef[0] = 1.0
    assert not Blend(coef).is_ncf_only and not Blend(Blend.ncf_only().coef, 0.5).is_ncf_only


def test_reasons_name_the_repeat_interval_and_co_purchase() -> None:
    counts = np.zeros((6, 8))
    counts[:, 1] = counts[:, 2] = 1  # items 1 and 2 always bought together
    counts[0, 3] = 2  # user 0 bought item 3 twice over a 28-day history
    counts[0, 2] = 0
    days = np.full(counts.shape, 5.0)
    days[0, 1] = 28.0
    data = _recdata(counts, days, [np.array([4])] * 2, n_neg=2)
    scorer = HybridScorer(None, data, n_neighbours=3)
    text = reasons(scorer, 0, np.array([3, 2, 7]), names={1001: "milk"})
    assert text[0] == "you buy this every 2 weeks"
    assert text[1] == "often bought with milk"
    assert text[2].startswith("popular")


def test_unknown_content_code_carries_no_affinity() -> None:
    counts = np.zeros((4, 6))
    counts[:, 0] = 3  # every user buys only item 0, whose category is unknown (code 0)
    data = _recdata(counts, np.full(counts.shape, 5.0), [np.array([1])] * 2, n_neg=2)
    data.product_category = np.array([0, 0, 1, 1, 2, 2])
    scorer = HybridScorer(None, data, n_neighbours=2)
    f = scorer.features(np.array([0]), np.array([[1, 2]]))[0]
    cat = FEATURES.index("n_log_cat")
    # item 1 shares the unknown code with item 0 but gets the same (floor) affinity as item 2
    assert f[0, cat] == f[1, cat] == pytest.approx(np.log(1e-3))


def _lightgbm_cfg(**kw) -> HybridConfig:
    params = LightGBMBlend(n_rounds=60, num_leaves=7, min_data_in_leaf=5, **kw)
    return HybridConfig(neg_bought=5, neg_random=5, blend="lightgbm", lightgbm=params)


@pytest.mark.parametrize("objective", ["lambdarank", "binary"])
def test_lightgbm_blend_ranks_the_due_repeat_item_first_and_survives_save_load(
    tmp_path, objective
) -> None:
    data = _staples()
    data.recent_buyers = np.arange(data.n_items, dtype=np.float32) % 7  # saved with the model
    als = fit_als(data.train, ALSFeature(factors=4, iterations=3, num_threads=1))
    data.decayed = sp.csr_matrix(data.train.multiply(1.0 / 8.0))  # saved with the model
    scorer = HybridScorer(None, data, n_neighbours=5, als=als)  # factors saved with the model
    scorer.blend = fit_blend(scorer, _lightgbm_cfg(objective=objective))
    assert scorer.blend.kind == "lightgbm"
    # the staple (8 baskets, 7 days ago) beats the 12 one-off items and every new item; the
    # bought offset alone cannot do that (all 13 are bought)
    top = scorer.score_all(np.arange(data.n_users)).argmax(axis=1)
    assert (top == np.arange(data.n_users) % data.n_items).mean() >= 0.9
    scorer.save(tmp_path / "hybrid")
    loaded = HybridScorer.load(tmp_path / "hybrid")
    assert loaded.blend.kind == "lightgbm"
    assert loaded.blend.bought_offset == scorer.blend.bought_offset
    np.testing.assert_array_equal(loaded.als[1], scorer.als[1])
    np.testing.assert_array_equal(loaded.decayed.toarray(), scorer.decayed.toarray())
    users = np.arange(6)
    np.testing.assert_array_equal(loaded.score_all(users), scorer.score_all(users))


def test_lightgbm_blend_never_lowers_a_score_when_evidence_grows() -> None:
    data = _staples()
    scorer = HybridScorer(None, data, n_neighbours=5)
    blend = fit_blend(scorer, _lightgbm_cfg())
    f = scorer.features(np.arange(data.n_users), np.tile(np.arange(data.n_items), (30, 1)))
    base = blend(f)
    for name in INCREASING:
        j = FEATURES.index(name)
        more = f.copy()
        more[..., j] += np.abs(f[..., j]).max() * 0.5 + 0.5
        assert (blend(more) >= base - 1e-6).all(), name


def test_extra_features_follow_the_train_matrix() -> None:
    counts = np.zeros((3, 6))
    counts[0, [0, 1, 3]] = [3, 1, 1]  # departments (item % 3 + 1): items 0 and 3 -> 1, item 1 -> 2
    counts[1, 0] = 1
    counts[2, 2] = 2
    days = np.full(counts.shape, 9.0)
    days[0, 1] = 4.0  # user 0's latest basket: 4 days before the split
    data = _recdata(counts, days, [np.array([4])], n_neg=1)
    data.recent_buyers = np.array([3, 0, 0, 0, 0, 7], np.float32)
    rng = np.random.default_rng(0)
    als = (rng.normal(size=(3, 4)), rng.normal(size=(6, 4)))
    data.decayed = sp.csr_matrix(counts / 4.0)
    data.window_buyers = np.arange(30, dtype=np.float32).reshape(5, 6)  # [window, item]
    data.first_buyers = 100 + data.window_buyers
    scorer = HybridScorer(None, data, n_neighbours=2, als=als)
    f = scorer.features(np.array([0]), np.array([[0, 5]]))[0]
    col = {n: f[:, FEATURES.index(n)] for n in FEATURES}
    assert col["log_user_gap"][0] == pytest.approx(np.log1p(4.0))
    assert col["b_dept_share"][0] == pytest.approx(3 / 4) and col["b_dept_share"][1] == 0
    # item 0: bought by users 0 (3 baskets) and 1 (1 basket) -> half of its buyers repeat
    assert col["item_repeat_rate"][0] == pytest.approx(0.5)
    # recent buyers: item 0 is bought (3 recent buyers), item 5 new (7)
    assert col["b_log_recent"].tolist() == pytest.approx([np.log1p(3.0), 0.0])
    assert col["n_log_recent"].tolist() == pytest.approx([0.0, np.log1p(7.0)])
    # ALS: user 0's factor . item 5's factor for the new item; nothing for the bought one
    assert col["n_als"].tolist() == pytest.approx([0.0, float(als[0][0] @ als[1][5])], rel=1e-5)
    # decayed frequency: the bought item's (3 / 4); nothing for the new one
    assert col["b_decay"].tolist() == pytest.approx([0.75, 0.0])
    # popularity windows (14, 28, 56, 91, 182 days): the new item's counts, nothing for the bought
    assert col["n_log_buyers_14d"].tolist() == pytest.approx([0.0, np.log1p(5.0)])
    assert col["n_log_buyers_56d"].tolist() == pytest.approx([0.0, np.log1p(17.0)])
    assert col["n_log_buyers_182d"].tolist() == pytest.approx([0.0, np.log1p(29.0)])
    assert col["n_log_first_28d"].tolist() == pytest.approx([0.0, np.log1p(111.0)])
    assert col["n_log_first_91d"].tolist() == pytest.approx([0.0, np.log1p(123.0)])
    # without factors or windows those features are 0 (a scorer saved before they were kept)
    data.window_buyers = data.first_buyers = None
    plain = HybridScorer(None, data, n_neighbours=2).features(np.array([0]), np.array([[0, 5]]))
    assert (plain[0, :, FEATURES.index("n_als")] == 0).all()
    assert (plain[0, :, [FEATURES.index(n) for n in WINDOW_FEATURES]] == 0).all()


def test_popularity_windows_are_saved_with_the_scorer(tmp_path) -> None:
    import json

    data = _staples()
    rng = np.random.default_rng(5)
    data.window_buyers = rng.integers(0, 9, (5, data.n_items)).astype(np.float32)
    data.first_buyers = rng.integers(0, 9, (5, data.n_items)).astype(np.float32)
    data.recent_buyers = data.window_buyers[1].copy()  # the 28-day row, as protocol_split sets
    scorer = HybridScorer(None, data, n_neighbours=5)
    scorer.blend = fit_blend(scorer, HybridConfig(neg_bought=5, neg_random=5))
    scorer.save(tmp_path / "hybrid")
    with np.load(tmp_path / "hybrid" / "hybrid.npz") as z:  # kept once, as the window's row
        assert "recent_buyers" not in z.files and "window_buyers" in z.files
    loaded = HybridScorer.load(tmp_path / "hybrid")
    np.testing.assert_array_equal(loaded.recent_buyers, scorer.recent_buyers)
    users = np.arange(6)
    items = np.tile(np.arange(data.n_items), (6, 1))
    np.testing.assert_array_equal(loaded.features(users, items), scorer.features(users, items))
    # a bundle written with other windows would feed its booster the wrong columns: refused
    meta_path = tmp_path / "hybrid" / "hybrid.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "popularity_windows": [7, 28]}))
    with pytest.raises(ValueError, match="popularity windows"):
        HybridScorer.load(tmp_path / "hybrid")


def test_a_linear_blend_saved_before_features_were_added_still_loads_and_scores(tmp_path) -> None:
    """A champion saved by an older version (fewer features, linear blend) keeps serving after an
    upgrade: the features added since get zero weight. A booster needs exactly its features."""
    import json

    data = _staples()
    scorer = HybridScorer(None, data, n_neighbours=5)
    scorer.blend = fit_blend(scorer, HybridConfig(neg_bought=5, neg_random=5))
    old = list(FEATURES[: FEATURES.index("log_user_gap")])  # before the context features
    keep = [FEATURES.index(f) for f in old]
    scorer.blend.coef[np.setdiff1d(np.arange(len(FEATURES)), keep)] = 0.0  # what it could use
    scorer.save(tmp_path / "hybrid")
    meta_path = tmp_path / "hybrid" / "hybrid.json"
    meta = json.loads(meta_path.read_text())
    with np.load(tmp_path / "hybrid" / "hybrid.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["coef"] = arrays["coef"][keep]
    np.savez(tmp_path / "hybrid" / "hybrid.npz", **arrays)
    meta_path.write_text(json.dumps({**meta, "features": old}))
    loaded = HybridScorer.load(tmp_path / "hybrid")
    users = np.arange(6)
    np.testing.assert_allclose(loaded.score_all(users), scorer.score_all(users), rtol=1e-6)
    meta_path.write_text(json.dumps({**meta, "features": [*old, "no_such_feature"]}))
    with pytest.raises(ValueError, match="saved with features"):
        HybridScorer.load(tmp_path / "hybrid")


def test_a_booster_saved_before_features_were_appended_scores_on_its_own_columns(tmp_path):
    """A boosted champion saved with fewer (leading) features loads and scores on those
    columns only; a saved feature list that is not a prefix of FEATURES is refused."""
    import json

    import lightgbm as lgb

    data = _staples()
    data.recent_buyers = np.arange(data.n_items, dtype=np.float32)
    scorer = HybridScorer(None, data, n_neighbours=5)
    old = list(FEATURES[: FEATURES.index("b_log_recent")])
    users, items, labels = blend_sample(data, HybridConfig(neg_bought=5, neg_random=5))
    x = sample_features(scorer, users, items)[:, : len(old)]
    params = {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, labels), num_boost_round=10)
    scorer.blend = Blend(np.zeros(len(FEATURES), np.float32), 0.0, booster=booster)
    scorer.save(tmp_path / "hybrid")
    meta_path = tmp_path / "hybrid" / "hybrid.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "features": old}))
    with np.load(tmp_path / "hybrid" / "hybrid.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["coef"] = arrays["coef"][: len(old)]  # as the older version wrote it
    np.savez(tmp_path / "hybrid" / "hybrid.npz", **arrays)
    loaded = HybridScorer.load(tmp_path / "hybrid")
    f = scorer.features(np.arange(4), np.tile(np.arange(data.n_items), (4, 1)))
    expected = booster.predict(f.reshape(-1, len(FEATURES))[:, : len(old)], raw_score=True)
    np.testing.assert_allclose(
        loaded.score_all(np.arange(4)).ravel(), expected.astype(np.float32), rtol=1e-5
    )
    meta_path.write_text(json.dumps({**meta, "features": old[1:]}))
    with pytest.raises(ValueError, match="saved with features"):
        HybridScorer.load(tmp_path / "hybrid")
