"""What serving reads from a trained hybrid: per-household candidate sets and one-line reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.recommending.hybrid import HybridScorer


def reasons(
    scorer: HybridScorer, user: int, items: np.ndarray, names: dict[int, str] | None = None
) -> list[str]:
    """One line per recommended item: repeat interval, a co-purchase partner, or popularity.

    `names` maps product ids to display names (the product id is shown otherwise).
    """
    train = scorer.train
    seen = set(train.indices[train.indptr[user] : train.indptr[user + 1]].tolist())
    pids = scorer.data.product_ids
    out = []
    for item in np.asarray(items, np.int64):
        days = scorer.interval_days(user, int(item))
        partner = next((int(j) for j in scorer.co.neighbours[item] if j in seen), None)
        if days is not None:
            out.append(
                f"you buy this every {round(days / 7)} weeks"
                if days >= 10
                else f"you buy this every {max(round(days), 1)} days"
            )
        elif partner is not None:
            pid = int(pids[partner])
            out.append(f"often bought with {(names or {}).get(pid, f'product {pid}')}")
        else:
            out.append("popular with shoppers like you")
    return out


@dataclass
class CandidateSet:
    """Per-household top-N item indices and scores, precomputed for serving."""

    customer_ids: np.ndarray  # [E]
    items: np.ndarray  # [E, N] item indices, best first
    scores: np.ndarray  # [E, N]
    skipped: dict[str, int]


def candidates(scorer: HybridScorer, customer_ids: np.ndarray, n: int = 200) -> CandidateSet:
    """Top-n catalog items per customer by blended score; unknown customers get popularity."""
    customer_ids = np.asarray(customer_ids, np.int64)
    users = scorer.data.user_index(customer_ids)
    known = users >= 0
    n = min(n, scorer.train.shape[1])
    items = np.empty((len(users), n), np.int64)
    scores = np.empty((len(users), n), np.float32)
    if known.any():
        s = scorer.score_all(users[known], min_pool=n)
        top = np.argpartition(-s, n - 1, axis=1)[:, :n]
        val = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-val, axis=1, kind="stable")
        items[known] = np.take_along_axis(top, order, 1)
        scores[known] = np.take_along_axis(val, order, 1)
    popular = np.argsort(-scorer.pop, kind="stable")[:n]
    items[~known] = popular
    scores[~known] = scorer.pop[popular]
    return CandidateSet(customer_ids, items, scores, {"unknown_customers": int((~known).sum())})
