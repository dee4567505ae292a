"""Association rules between product categories (or departments) bought in the same basket.

Pure numpy/scipy over the packed basket sets of `basket_sets` (analytics/rollups.py): every
basket's distinct category ids. Mining is apriori pruned at pairs: items below the minimum
support are dropped before pairs are counted (a sparse basket × item matrix, `Xᵀ X`), and a
pair is kept when it meets the minimum support itself. For a rule A → B over N baskets:
support = n(A∪B) / N, confidence = n(A∪B) / n(A), lift = confidence / (n(B) / N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class Rule:
    antecedent: int
    consequent: int
    baskets: int  # baskets holding both
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True)
class Mined:
    baskets: int
    frequent_items: int
    pairs_counted: int
    rules: list[Rule]
    item_baskets: dict[int, int]  # baskets holding each item of a rule


def unpack(n_baskets: int, sizes: bytes, items: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(basket index per item, item id) from basket_sets' big-endian int16 buffers."""
    counts = np.frombuffer(sizes, dtype=">i2").astype(np.int64)
    ids = np.frombuffer(items, dtype=">i2").astype(np.int64)
    if len(counts) != n_baskets or counts.sum() != len(ids):
        raise ValueError("basket sets are inconsistent: sizes do not match items")
    return np.repeat(np.arange(n_baskets, dtype=np.int64), counts), ids


def mine_pairs(
    basket: np.ndarray,
    item: np.ndarray,
    n_baskets: int,
    *,
    min_support: float,
    min_confidence: float = 0.0,
    max_rules: int = 50,
) -> Mined:
    """Rules A → B between single items, strongest lift first (ties: support, then ids).

    `basket`/`item`: one entry per (basket, item) occurrence; duplicates count once."""
    if n_baskets == 0 or len(item) == 0:
        return Mined(n_baskets, 0, 0, [], {})
    min_count = max(1, math.ceil(min_support * n_baskets - 1e-9))
    width = int(item.max()) + 1
    matrix = sparse.csr_matrix(
        (np.ones(len(item), dtype=np.int32), (basket, item)), shape=(n_baskets, width)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1  # an item bought twice in a basket counts once
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    frequent = np.flatnonzero(counts >= min_count)
    if len(frequent) < 2:
        return Mined(n_baskets, len(frequent), 0, [], {})
    sub = matrix[:, frequent]
    together = (sub.T @ sub).toarray()
    np.fill_diagonal(together, 0)
    i, j = np.nonzero(np.triu(together) >= min_count)
    pairs = len(i)
    both = together[i, j].astype(np.float64)
    n_i, n_j = counts[frequent[i]].astype(np.float64), counts[frequent[j]].astype(np.float64)
    # each pair gives two rules: i → j and j → i
    ante = np.concatenate([frequent[i], frequent[j]])
    cons = np.concatenate([frequent[j], frequent[i]])
    joint = np.concatenate([both, both])
    n_ante = np.concatenate([n_i, n_j])
    n_cons = np.concatenate([n_j, n_i])
    support = joint / n_baskets
    confidence = joint / n_ante
    lift = confidence / (n_cons / n_baskets)
    keep = np.flatnonzero(confidence >= min_confidence - 1e-12)
    order = keep[np.lexsort((cons[keep], ante[keep], -support[keep], -lift[keep]))][:max_rules]
    rules = [
        Rule(int(ante[k]), int(cons[k]), int(joint[k]), float(support[k]),
             float(confidence[k]), float(lift[k]))
        for k in order
    ]  # fmt: skip
    used = {r.antecedent for r in rules} | {r.consequent for r in rules}
    return Mined(n_baskets, len(frequent), pairs, rules, {u: int(counts[u]) for u in used})


def to_departments(item: np.ndarray, department_of: dict[int, int]) -> np.ndarray:
    """Category ids → department ids (a lookup table; unknown ids → their own id)."""
    top = max(int(item.max()) if len(item) else 0, max(department_of, default=0)) + 1
    table = np.arange(top, dtype=np.int64)
    for cat, dept in department_of.items():
        table[cat] = dept
    return table[item]
