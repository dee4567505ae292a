"""PROTOCOLS §2 (`recsys_cj`): split, metrics and baselines on data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.errors import ValidationFailed
from training.recommending.baselines import ItemKNN, Popularity, RepeatPurchase
from training.recommending.blend import POPULARITY_WINDOWS
from training.recommending.data import (
    DECAY,
    RecData,
    interactions_for_training,
    protocol_split,
)
from training.recommending.metrics import (
    evaluate_scorer,
    hit_rate,
    ndcg,
    positive_ranks,
    recall_at_k,
)

T0 = pd.Timestamp("2031-03-02 10:00")  # not CJ's calendar: windows must come from the data


def _items(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    """(customer, transaction, product, hours after T0) -> canonical line items."""
    c, t, p, h = zip(*rows, strict=True)
    n = len(rows)
    return pd.DataFrame(
        {
            "customer_id": np.array(c, dtype=np.int64),
            "transaction_id": np.array(t, dtype=np.int64),
            "store_id": ["1"] * n,
            "product_id": np.array(p, dtype=np.int64),
            "transaction_timestamp": T0 + pd.to_timedelta(np.array(h, dtype=float), unit="h"),
            "week": np.ones(n, dtype=np.int64),
            "quantity": np.ones(n, dtype=np.int64),
            "sales_value": np.ones(n),
            "retail_disc": np.zeros(n),
            "coupon_disc": np.zeros(n),
            "coupon_match_disc": np.zeros(n),
        }
    )


def _products(ids, department="GROCERY") -> pd.DataFrame:
    ids = list(ids)
    return pd.DataFrame(
        {
            "product_id": ids,
            "department": [department] * len(ids),
            "product_category": ["CAT"] * len(ids),
            "product_type": ["TYPE"] * len(ids),
            "brand": ["National"] * len(ids),
        }
    )


def _random_items(n_customers=40, n_products=60, seed=0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random baskets; products skewed so some are popular and some rare."""
    rng = np.random.default_rng(seed)
    rows, tx = [], 1
    weights = 1.0 / np.arange(1, n_products + 1)
    weights /= weights.sum()
    for c in range(1, n_customers + 1):
        for b in range(rng.integers(1, 7)):
            for p in rng.choice(n_products, size=rng.integers(1, 8), replace=False, p=weights):
                rows.append((c, tx, int(p) + 1, 24.0 * b + c / 100))
            tx += 1
    return _items(rows), _products(range(1, n_products + 1))


# --- split ---------------------------------------------------------------------------------


def _tie_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Household 1: basket 10 (day 0), then baskets 12 and 11 at the same instant (day 1):
    # the tie goes to the larger id, so 12 is the last basket and 11 the penultimate.
    rows = [(1, 10, 100, 0), (1, 10, 103, 0), (1, 12, 101, 24), (1, 12, 102, 24)]
    rows += [(1, 11, 103, 24), (1, 11, 103, 24), (1, 12, 101, 24)]  # duplicate lines count once
    rows += [(2, 20, 100, 0), (2, 21, 101, 5)]  # households 2 and 4 have two baskets
    rows += [(3, 30, 100, 0)]  # one basket: no train basket
    rows += [(4, 40, 101, 0), (4, 40, 102, 0), (4, 41, 100, 30)]
    return _items(rows), _products([100, 101, 102, 103])


def test_last_basket_is_held_out_whole_and_timestamp_ties_go_to_the_larger_id():
    items, products = _tie_data()
    data = protocol_split(items, products, n_negatives=0, min_buyers=1)
    assert list(data.customer_ids) == [1, 2, 4]  # household 3 has no train basket
    assert data.skipped["no_train_basket_households"] == 1
    u1 = data.user_index(1)[0]
    k = list(data.eval_users).index(u1)
    assert set(data.product_ids[data.targets[k]]) == {101, 102}  # basket 12, not 11
    row = data.train[u1].toarray().ravel()
    # Train = baskets 10 and 11 only, each basket counted once per product.
    assert {int(p): row[i] for i, p in enumerate(data.product_ids) if row[i]} == {100: 1, 103: 2}
    assert list(data.n_baskets) == [2, 1, 1]


def test_inner_split_holds_out_the_penultimate_basket_and_never_sees_the_last():
    items, products = _tie_data()
    data = protocol_split(items, products, inner=True, n_negatives=0, min_buyers=1)
    assert list(data.customer_ids) == [1]  # households 2, 3, 4 have no inner train basket
    assert data.skipped["no_train_basket_households"] == 3
    assert set(data.product_ids[data.targets[0]]) == {103}  # basket 11
    assert set(data.product_ids[data.train[0].indices]) == {100, 103}  # basket 10 only
    assert data.train.sum() == 2
    assert data.skipped["dropped_last_basket_rows"] == 6  # lines of 12, 21, 30 and 41


def test_catalog_needs_five_distinct_train_buyers():
    rows = []
    for c in range(1, 6):  # five buyers of product 1 in train; product 2: four buyers
        rows += [(c, 10 * c, 1, 0), (c, 10 * c + 1, 9, 48)]
        if c < 5:
            rows.append((c, 10 * c, 2, 0))
    rows += [(1, 100 + b, 3, 1 + b) for b in range(20)]  # one household buys product 3 often
    rows += [(c, 10 * c + 1, 4, 48) for c in range(1, 6)]  # bought by 5, but only held out
    items, products = _items(rows), _products([1, 2, 3, 4, 9])
    data = protocol_split(items, products, n_negatives=0)
    assert list(data.product_ids) == [1]
    assert data.skipped["non_catalog_products"] == 2  # products 2 and 3 (4 never in train)
    assert data.skipped["non_catalog_train_rows"] == 4 + 20
    # Held-out baskets hold products 9 and 4, neither in the catalog: nobody is evaluated.
    assert len(data.eval_users) == 0
    assert data.skipped["no_catalog_target_households"] == 5


def test_negatives_were_never_bought_and_positive_comes_from_the_held_out_basket():
    items, products = _random_items()
    data = protocol_split(items, products, n_negatives=5)
    assert len(data.eval_users) > 10
    assert data.negatives.shape == (len(data.eval_users), 5)
    assert data.tiebreak.shape == (len(data.eval_users), 6)
    for k, u in enumerate(data.eval_users):
        bought = set(data.train[u].indices) | set(data.targets[k])
        assert not bought & set(data.negatives[k])
        assert len(set(data.negatives[k])) == 5
        assert data.positives[k] in data.targets[k]
        assert data.is_new[k] == (data.train[u, data.positives[k]] == 0)
    assert data.is_new.any() and not data.is_new.all()


def test_split_is_reproducible_and_seeded():
    items, products = _random_items()
    a = protocol_split(items, products, n_negatives=5)
    b = protocol_split(items, products, n_negatives=5)
    c = protocol_split(items, products, n_negatives=5, seed=7)
    assert np.array_equal(a.negatives, b.negatives) and np.array_equal(a.positives, b.positives)
    assert not np.array_equal(a.negatives, c.negatives)


def test_bad_rows_are_dropped_and_counted():
    items, products = _random_items()
    items = items.astype({"customer_id": "float64"})
    items.loc[0, "customer_id"] = np.nan
    fuel = _items([(1, 999, 500, 0.5), (2, 998, 501, 0.5)])  # fuel, and a product not listed
    items = pd.concat([items, fuel], ignore_index=True)
    products = pd.concat([products, _products([500], "FUEL")], ignore_index=True)
    products.loc[products["product_id"] == 1, "brand"] = None
    data = protocol_split(items, products, n_negatives=5)
    assert data.skipped["non_merchandise_rows"] == 2
    assert data.skipped["invalid_rows"] == 1
    assert 500 not in data.product_ids and 501 not in data.product_ids
    assert data.brand[data.item_index(1)[0]] == 0 and data.skipped["unknown_brand"] == 1
    assert (data.department > 0).all()


def test_households_with_one_basket_each_are_a_clear_error_not_a_crash():
    """A warehouse where every household has one basket (a new tenant's first day) leaves no
    train basket: a TypeError from the empty split time before, now the reason and the counts."""
    one_each = _items([(1, 10, 1, 0.0), (1, 10, 2, 0.0), (2, 20, 1, 1.0), (3, 30, 2, 2.0)])
    with pytest.raises(ValidationFailed, match="3 households, each with one basket") as err:
        protocol_split(one_each, _products([1, 2]))
    assert err.value.details["skipped"]["no_train_basket_households"] == 3
    two_each = _items([(1, 10, 1, 0.0), (1, 11, 2, 5.0), (2, 20, 1, 1.0), (2, 21, 2, 6.0)])
    assert len(protocol_split(two_each, _products([1, 2])).customer_ids) == 2
    with pytest.raises(ValidationFailed, match="each with 2 or fewer baskets"):
        protocol_split(two_each, _products([1, 2]), inner=True)


def test_users_without_enough_never_bought_items_are_not_evaluated():
    items, products = _random_items()
    data = protocol_split(items, products, n_negatives=10_000)
    assert len(data.eval_users) == 0
    assert data.skipped["too_few_negatives_households"] > 0


def test_recency_and_training_pairs_follow_the_train_matrix():
    items, products = _tie_data()
    data = protocol_split(items, products, n_negatives=0, min_buyers=1)
    # split_time = latest train basket (11, day 1); product 100 last bought on day 0 -> 1 day, +1.
    u1, i100, i103 = data.user_index(1)[0], data.item_index(100)[0], data.item_index(103)[0]
    assert data.last_bought_days[u1, i100] == 2 and data.last_bought_days[u1, i103] == 1
    users, its, w = interactions_for_training(data)
    assert len(users) == data.train.nnz and w.sum() == data.train.sum()
    assert data.item_index(np.array([102, 7]))[1] == -1


# --- metrics -------------------------------------------------------------------------------


class _Oracle:
    """Scores the held-out positive +1 (or -1 with `worst`), everything else 0."""

    def __init__(self, data: RecData, sign: float = 1.0) -> None:
        self.pos = dict(zip(data.eval_users.tolist(), data.positives.tolist(), strict=True))
        self.n_items, self.sign = data.n_items, sign

    def score(self, users, items):
        pos = np.array([self.pos[u] for u in users])
        return self.sign * (items == pos[:, None]).astype(float)

    def score_all(self, users):
        s = np.zeros((len(users), self.n_items))
        s[np.arange(len(users)), [self.pos[u] for u in users]] = self.sign
        return s


def test_perfect_scorer_hits_everything_and_reversed_scorer_nothing():
    items, products = _random_items()
    data = protocol_split(items, products, n_negatives=20)
    best = evaluate_scorer(data, _Oracle(data))
    assert best["HR@10"] == 1.0 and best["NDCG@10"] == pytest.approx(1.0)
    assert best["n"] == len(data.eval_users)
    worst = evaluate_scorer(data, _Oracle(data, sign=-1.0))
    assert worst["HR@10"] == 0.0 and worst["NDCG@10"] == 0.0 and worst["HR@10_new"] == 0.0


def test_ranks_break_ties_with_the_seeded_keys_and_ndcg_matches_hand_values():
    scores = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 2.0, 1.0, 1.0]])
    keys = np.array([[0.5, 0.1, 0.9, 0.0], [0.1, 0.9, 0.5, 0.0]])
    assert list(positive_ranks(scores, keys)) == [1, 2]  # one tied key below; 2 above + 1 tie
    ranks = np.array([0, 1, 10])
    assert hit_rate(ranks) == pytest.approx(2 / 3)
    assert ndcg(ranks) == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_recall_at_20_over_the_full_catalog():
    class Fixed:
        def score_all(self, users):
            return np.tile(30.0 - np.arange(30), (len(users), 1))  # top 20 = items 0..19

    targets = [np.array([0, 25]), np.array([21, 22, 23]), np.array([3, 4, 19, 20])]
    got = recall_at_k(Fixed(), np.arange(3), targets, batch_size=2)
    assert got == pytest.approx([0.5, 0.0, 0.75])


# --- baselines -----------------------------------------------------------------------------


def _matrix() -> sp.csr_matrix:
    # item 0: 3 buyers once; item 1: one buyer, 10 baskets; item 2: 2 buyers; 3 and 4 co-bought.
    dense = np.array(
        [[1, 10, 1, 1, 1], [1, 0, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32
    )
    return sp.csr_matrix(dense)


def test_popularity_counts_buyers_not_baskets_and_repeat_prefers_own_items():
    train = _matrix()
    pop = Popularity(train).score_all(np.array([2]))[0]
    assert list(np.argsort(-pop, kind="stable")[:2]) == [0, 3] and pop[1] < pop[0]
    rep = RepeatPurchase(train)
    row = rep.score_all(np.array([0]))[0]
    assert np.argmax(row) == 1  # 10 baskets beats popularity
    assert row[0] > row[2] > 0  # equal counts: the more popular item first
    cand = rep.score(np.array([2]), np.array([[1, 0]]))
    assert cand[0, 1] > cand[0, 0]  # the user's own item beats a never-bought one


def test_item_knn_exact_scores_equal_the_unpruned_similarity_sum():
    train = _matrix()
    exact = ItemKNN(train).score_all(np.arange(4))
    full = ItemKNN(train, k=4).score_all(np.arange(4))  # k = every other item: no pruning
    assert exact == pytest.approx(full, abs=1e-5)
    b = (train.toarray() > 0).astype(float)
    cos = (b.T @ b) / np.sqrt(np.outer(b.sum(0), b.sum(0)))
    assert exact == pytest.approx(b @ cos, abs=1e-5)
    # User 3 bought only item 3; item 4 (always co-bought with 3) outranks item 0.
    assert exact[3, 4] > exact[3, 0]


# --- end to end on Complete Journey --------------------------------------------------------


@pytest.mark.slow
def test_protocol_runs_end_to_end_on_a_complete_journey_slice():
    from training.datasets import cj_line_items
    from training.recommending.evaluate import quality

    items, products = cj_line_items(households=300)
    rows = []
    q = quality(items, products, on_row=lambda split, name, row: rows.append((split, name)))
    assert set(q["test"]) == {"popularity", "repeat", "item_knn", "als"}
    assert len(rows) == 8 and q["n"] == q["test"]["popularity"]["n"] > 200
    for split in ("test", "inner_validation"):
        table = q[split]
        # A repeat positive always beats never-bought negatives under the repeat baseline.
        assert table["repeat"]["HR@10_repeat"] == 1.0
        assert table["repeat"]["HR@10"] > table["popularity"]["HR@10"]
        assert all(0 <= m["Recall@20"] <= 1 for m in table.values())
    assert q["baseline"] in q["test"] and q["ratio"] == pytest.approx(1.0)


def test_recent_buyers_count_distinct_households_in_the_last_28_days_of_train():
    day = 24.0
    rows = [(1, 10, 100, 0), (1, 11, 101, 40 * day), (1, 12, 100, 60 * day)]  # 12 held out
    rows += [(2, 20, 101, 10 * day), (2, 21, 101, 45 * day), (2, 22, 101, 50 * day)]
    rows += [(2, 23, 102, 61 * day)]
    rows += [(3, 30, 102, 59 * day), (3, 31, 100, 62 * day)]  # split time: day 59
    rows += [(4, 40, 100, 31 * day), (4, 41, 102, 63 * day)]  # exactly 28 days before: out
    items, products = _items(rows), _products([100, 101, 102])
    data = protocol_split(items, products, n_negatives=0, min_buyers=1)
    recent = dict(zip(data.product_ids.tolist(), data.recent_buyers.tolist(), strict=True))
    # 101: households 1 and 2 (2's two baskets count once); 102: household 3; 100: none
    assert recent == {100: 0, 101: 2, 102: 1}


def test_decayed_frequency_weighs_a_household_s_newest_train_baskets_most():
    day = 24.0
    # household 1: baskets 10 < 11 < 12 < 13 (13 held out); 100 in 10 and 12, 101 in 11
    rows = [(1, 10, 100, 0), (1, 11, 101, 5 * day), (1, 12, 100, 9 * day), (1, 13, 101, 12 * day)]
    rows += [(2, 20, 100, 1 * day), (2, 21, 101, 2 * day)]  # 21 held out; one train basket
    items, products = _items(rows), _products([100, 101])
    norm = 1 + DECAY + DECAY**2  # three train baskets, newest weighs 1
    for inner, expect in ((False, {100: (1 + DECAY**2) / norm, 101: DECAY / norm}),
                          (True, {100: DECAY / (1 + DECAY), 101: 1 / (1 + DECAY)})):  # fmt: skip
        data = protocol_split(items, products, n_negatives=0, min_buyers=1, inner=inner)
        row = data.decayed.toarray()[data.user_index(1)[0]]
        got = dict(zip(data.product_ids.tolist(), row.tolist(), strict=True))
        assert got == pytest.approx(expect), inner
    # household 2's single train basket weighs 1; nothing it did not buy
    data = protocol_split(items, products, n_negatives=0, min_buyers=1)
    assert data.decayed.toarray()[data.user_index(2)[0]].tolist() == pytest.approx([1.0, 0.0])
    # every basket is train when nothing is held out: 13 is the newest
    data = protocol_split(items, products, n_negatives=0, min_buyers=1, holdout=False)
    norm4 = norm + DECAY**3
    row = data.decayed.toarray()[data.user_index(1)[0]]
    assert row.tolist() == pytest.approx([(DECAY + DECAY**3) / norm4, (1 + DECAY**2) / norm4])


def test_window_buyers_and_first_buyers_count_households_per_popularity_window():
    day = 24.0
    # split time: household 3's basket at day 200 (the latest train basket)
    rows = [(1, 10, 100, 0), (1, 11, 100, 190 * day), (1, 12, 101, 199 * day)]  # 13 held out
    rows += [(1, 13, 100, 201 * day)]
    rows += [(2, 20, 101, 100 * day), (2, 21, 100, 150 * day), (2, 22, 101, 202 * day)]
    rows += [(3, 30, 100, 195 * day), (3, 31, 101, 200 * day), (3, 32, 100, 203 * day)]
    items, products = _items(rows), _products([100, 101])
    data = protocol_split(items, products, n_negatives=0, min_buyers=1)
    assert data.split_time == np.datetime64(T0 + pd.Timedelta(days=200), "ns")
    assert POPULARITY_WINDOWS == (14, 28, 56, 91, 182)
    got = {
        int(pid): (data.window_buyers[:, j].tolist(), data.first_buyers[:, j].tolist())
        for j, pid in enumerate(data.product_ids)
    }
    # 100: bought in the last 14 days by 1 (day 190, first bought day 0) and 3 (day 195, its
    # first); 2 bought it at day 150 (50 days before: windows 56 and up, its first purchase)
    assert got[100] == ([2, 2, 3, 3, 3], [1, 1, 2, 2, 2])
    # 101: 1 at day 199 and 3 at day 200 (both first), 2 at day 100 (first: in 182 only)
    assert got[101] == ([2, 2, 2, 2, 3], [2, 2, 2, 2, 3])
