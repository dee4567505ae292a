"""PROTOCOLS §2 metrics: sampled HR@10 / NDCG@10 (1 positive + 99 negatives), full Recall@20."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from training.recommending.data import RecData

HR_K = 10
RECALL_K = 20


class Scorer(Protocol):
    """Anything that scores (user, item) pairs; higher = more likely to be bought."""

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[E] users x [E, K] items -> [E, K] scores."""
        ...

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B] users -> [B, I] scores of every catalog item."""
        ...


def positive_ranks(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """0-based rank of column 0 among each row; ties go to the lower tie-break key."""
    pos = scores[:, :1]
    key = tiebreak[:, :1]
    above = scores[:, 1:] > pos
    tied_before = (scores[:, 1:] == pos) & (tiebreak[:, 1:] < key)
    return (above | tied_before).sum(axis=1)


def hit_rate(ranks: np.ndarray, k: int = HR_K) -> float:
    """Share of positives ranked in the top k (NaN when there are none)."""
    return float(np.mean(ranks < k)) if len(ranks) else float("nan")


def ndcg(ranks: np.ndarray, k: int = HR_K) -> float:
    """Mean of 1/log2(rank + 2) for ranks < k, else 0 (one relevant item per user)."""
    if not len(ranks):
        return float("nan")
    return float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)))


def sampled_ranks(data: RecData, scorer: Scorer, batch_size: int = 1024) -> np.ndarray:
    """Rank of each evaluated user's positive among its positive + negatives."""
    cand = data.candidates()
    ranks = np.empty(len(cand), dtype=np.int64)
    for lo in range(0, len(cand), batch_size):
        hi = lo + batch_size
        s = np.asarray(scorer.score(data.eval_users[lo:hi], cand[lo:hi]), dtype=np.float64)
        ranks[lo:hi] = positive_ranks(s, data.tiebreak[lo:hi])
    return ranks


def recall_at_k(
    scorer: Scorer,
    users: np.ndarray,
    targets: list[np.ndarray],
    k: int = RECALL_K,
    batch_size: int = 256,
) -> np.ndarray:
    """Per user |top-k ∩ T| / |T| over the full catalog; bought items stay rankable (protocol)."""
    out = np.empty(len(users), dtype=np.float64)
    for lo in range(0, len(users), batch_size):
        s = np.asarray(scorer.score_all(users[lo : lo + batch_size]))
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        for j, row in enumerate(top):
            t = targets[lo + j]
            out[lo + j] = np.isin(t, row).sum() / len(t)
    return out


def evaluate_scorer(data: RecData, scorer: Scorer) -> dict[str, float | int]:
    """Every §2 metric of one scorer on one split: overall, new-item and repeat-item subsets."""
    ranks = sampled_ranks(data, scorer)
    new = data.is_new
    recall = recall_at_k(scorer, data.eval_users, data.targets)
    return {
        "HR@10": hit_rate(ranks),
        "NDCG@10": ndcg(ranks),
        "HR@10_new": hit_rate(ranks[new]),
        "NDCG@10_new": ndcg(ranks[new]),
        "HR@10_repeat": hit_rate(ranks[~new]),
        "NDCG@10_repeat": ndcg(ranks[~new]),
        "Recall@20": float(recall.mean()) if len(recall) else float("nan"),
        "n": int(len(ranks)),
        "n_new": int(new.sum()),
    }
