"""Association rules and cache keys of the analytics package (no services)."""

from __future__ import annotations

from datetime import date
from itertools import combinations

import numpy as np
import pytest

from analytics.baskets import mine_pairs, to_departments, unpack
from analytics.cache import answer_key, digest
from analytics.rollups import Window, window_of
from core.events import Landed


def _flatten(baskets: list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    basket = np.array([b for b, items in enumerate(baskets) for _ in items], dtype=np.int64)
    item = np.array([i for items in baskets for i in sorted(items)], dtype=np.int64)
    return basket, item


def _generated(seed: int = 3, n: int = 400) -> list[set[int]]:
    rng = np.random.default_rng(seed)
    baskets = []
    for _ in range(n):
        items = {int(i) for i in rng.choice(8, size=rng.integers(1, 5), replace=False)}
        if 1 in items and rng.random() < 0.7:  # 1 pulls 2 along: a rule with lift > 1
            items.add(2)
        baskets.append(items)
    return baskets


def test_rules_match_a_hand_count() -> None:
    baskets = _generated()
    n = len(baskets)
    basket, item = _flatten(baskets)
    mined = mine_pairs(basket, item, n, min_support=0.05, min_confidence=0.0, max_rules=500)

    count = {i: sum(i in b for b in baskets) for i in range(8)}
    expected = {}
    for a, b in combinations(range(8), 2):
        both = sum(a in x and b in x for x in baskets)
        if both / n < 0.05 or count[a] / n < 0.05 or count[b] / n < 0.05:
            continue
        for x, y in ((a, b), (b, a)):
            conf = both / count[x]
            expected[(x, y)] = (both, both / n, conf, conf / (count[y] / n))
    got = {(r.antecedent, r.consequent): r for r in mined.rules}
    assert set(got) == set(expected)
    for key, (both, support, confidence, lift) in expected.items():
        rule = got[key]
        assert rule.baskets == both
        assert rule.support == pytest.approx(support)
        assert rule.confidence == pytest.approx(confidence)
        assert rule.lift == pytest.approx(lift)
    # strongest lift first, and the planted association is on top
    lifts = [r.lift for r in mined.rules]
    assert lifts == sorted(lifts, reverse=True)
    assert {mined.rules[0].antecedent, mined.rules[0].consequent} == {1, 2}


def test_minimum_support_confidence_and_max_rules_prune() -> None:
    baskets = _generated()
    basket, item = _flatten(baskets)
    loose = mine_pairs(basket, item, len(baskets), min_support=0.01, max_rules=500)
    strict = mine_pairs(basket, item, len(baskets), min_support=0.2, max_rules=500)
    assert len(strict.rules) < len(loose.rules)
    assert all(r.support >= 0.2 for r in strict.rules)
    confident = mine_pairs(basket, item, len(baskets), min_support=0.01, min_confidence=0.5)
    assert confident.rules and all(r.confidence >= 0.5 for r in confident.rules)
    assert len(mine_pairs(basket, item, len(baskets), min_support=0.01, max_rules=3).rules) == 3


def test_an_item_twice_in_a_basket_counts_once_and_empty_input_has_no_rules() -> None:
    basket = np.array([0, 0, 0, 1, 1])
    item = np.array([5, 5, 6, 5, 6])
    mined = mine_pairs(basket, item, 2, min_support=0.5)
    assert {(r.antecedent, r.consequent) for r in mined.rules} == {(5, 6), (6, 5)}
    assert all(r.support == 1.0 and r.lift == 1.0 for r in mined.rules)
    assert mine_pairs(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 0,
                      min_support=0.1).rules == []  # fmt: skip


def test_unpack_reads_the_packed_basket_sets() -> None:
    sizes = np.array([2, 1], dtype=">i2").tobytes()
    items = np.array([3, 7, 300], dtype=">i2").tobytes()
    basket, item = unpack(2, sizes, items)
    assert basket.tolist() == [0, 0, 1] and item.tolist() == [3, 7, 300]
    with pytest.raises(ValueError):
        unpack(3, sizes, items)


def test_departments_merge_their_categories() -> None:
    item = np.array([1, 2, 3])
    assert to_departments(item, {1: 1, 2: 1, 3: 3}).tolist() == [1, 1, 3]


def test_cache_digest_depends_on_params_and_scope_only() -> None:
    a = digest({"start": date(2017, 1, 1), "limit": 5}, frozenset({"2", "1"}))
    assert a == digest({"limit": 5, "start": date(2017, 1, 1)}, frozenset({"1", "2"}))
    assert a != digest({"limit": 5, "start": date(2017, 1, 1)}, None)
    assert a != digest({"limit": 6, "start": date(2017, 1, 1)}, frozenset({"1", "2"}))
    assert answer_key("t", "4", "trends", a) == f"analytics:t:4:trends:{a}"


def test_a_landed_day_refreshes_that_business_day_and_the_one_before() -> None:
    landed = Landed(tenant="t", source="stream", first_day=date(2017, 6, 14),
                    last_day=date(2017, 6, 15), stores=frozenset({"1"}))  # fmt: skip
    window = window_of(landed)
    assert (window.first, window.last, window.stores) == (
        date(2017, 6, 13), date(2017, 6, 15), frozenset({"1"}))  # fmt: skip
    assert window.weeks == (date(2017, 6, 12), date(2017, 6, 12))
    assert window_of(Landed(tenant="t", source="completejourney")) == Window()
