"""Per-item and per-household signals the hybrid recommender's features read, built from a
`RecData` split: co-purchase neighbours, implicit-ALS factors, content-code affinity, row
minima and the popularity-window matrix. Numpy and scipy only (ALS fitting imports `implicit`
on use), so serving loads them without torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.recommending.blend import POPULARITY_WINDOWS, WINDOW_COUNTS, ALSFeature


@dataclass
class CoPurchase:
    """Top co-purchase neighbours per item: cosine on the binary user x item matrix."""

    neighbours: np.ndarray  # [I, k] item indices, -1 = none
    sims: np.ndarray  # [I, k] float32, descending
    matrix: sp.csr_matrix  # [I, I] the same as a sparse matrix (row i: i's neighbours)


def co_purchase(train: sp.csr_matrix, k: int = 20, chunk: int = 1024) -> CoPurchase:
    """Item-item cosine top-k (self excluded), computed in item chunks to bound memory."""
    b = (train > 0).astype(np.float32).tocsr()
    n_items = b.shape[1]
    norms = np.sqrt(np.asarray(b.sum(axis=0)).ravel()).clip(min=1e-9)
    bt = b.T.tocsr()
    k = min(k, max(n_items - 1, 1))
    nbr = np.full((n_items, k), -1, np.int64)
    sims = np.zeros((n_items, k), np.float32)
    for s in range(0, n_items, chunk):
        co = (bt[s : s + chunk] @ b).toarray()
        co /= norms[s : s + chunk, None] * norms[None, :]
        co[np.arange(co.shape[0]), np.arange(s, s + co.shape[0])] = 0.0
        top = np.argpartition(-co, k - 1, axis=1)[:, :k] if n_items > k else np.argsort(-co)
        top = top[:, :k]
        val = np.take_along_axis(co, top, axis=1)
        order = np.argsort(-val, axis=1)
        top, val = np.take_along_axis(top, order, 1), np.take_along_axis(val, order, 1)
        nbr[s : s + len(co), : top.shape[1]] = np.where(val > 0, top, -1)
        sims[s : s + len(co), : top.shape[1]] = np.where(val > 0, val, 0.0)
    rows = np.repeat(np.arange(n_items), k)
    keep = nbr.ravel() >= 0
    mat = sp.csr_matrix(
        (sims.ravel()[keep], (rows[keep], nbr.ravel()[keep])), shape=(n_items, n_items)
    )
    return CoPurchase(nbr, sims, mat)


def fit_als(train: sp.csr_matrix, cfg: ALSFeature) -> tuple[np.ndarray, np.ndarray] | None:
    """(user [U, f], item [I, f]) implicit-ALS factors of `train` (None when disabled)."""
    if not cfg.enabled or train.nnz == 0:
        return None
    from training.recommending.baselines import ALS

    model = ALS(train, factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                iterations=cfg.iterations, num_threads=cfg.num_threads, seed=cfg.seed)  # fmt: skip
    return model.user_factors, model.item_factors


def code_counts(train: sp.csr_matrix, codes: np.ndarray) -> sp.csr_matrix:
    """[U, n_codes] the user's baskets-with-item summed per code (code 0 = unknown: 0)."""
    n = int(codes.max()) + 1 if len(codes) else 1
    known = codes > 0
    rows = np.flatnonzero(known)
    onehot = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, codes[known])), shape=(len(codes), n)
    )
    return sp.csr_matrix(train @ onehot)


def affinity(train: sp.csr_matrix, codes: np.ndarray) -> sp.csr_matrix:
    """[U, n_codes] share of the user's baskets-with-item in each code (code 0 = unknown: 0)."""
    total = np.asarray(train.sum(axis=1)).ravel().clip(min=1.0)
    return sp.csr_matrix(sp.diags(1.0 / total) @ code_counts(train, codes))


def window_matrix(data) -> np.ndarray:
    """[len(WINDOW_FEATURES), I] log1p counts behind WINDOW_FEATURES (row `days` of
    data.window_buyers or data.first_buyers per WINDOW_COUNTS; zeros where the data does not have
    them, e.g. a bundle saved before they were kept)."""
    out = np.zeros((len(WINDOW_COUNTS), len(data.product_ids)), np.float32)
    for row, (count, days) in enumerate(WINDOW_COUNTS):
        counts = data.window_buyers if count == "buyers" else data.first_buyers
        if counts is not None:
            out[row] = np.log1p(counts[POPULARITY_WINDOWS.index(days)])
    return out


def row_min(m: sp.csr_matrix, empty: float) -> np.ndarray:
    """Smallest stored value per row (`empty` for rows without one)."""
    out = np.full(m.shape[0], empty, np.float32)
    has = np.diff(m.indptr) > 0
    if has.any():
        out[has] = np.minimum.reduceat(m.data, m.indptr[:-1][has])
    return out
