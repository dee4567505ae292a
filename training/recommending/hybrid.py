"""The served recommender: NeuMF blended with the household's repeat-purchase signal, content
affinity and co-purchase neighbours (numpy, and lightgbm for a boosted blend, at scoring time).

Features of a (user, item) pair are split by whether the user bought the item in train
("bought" x feature and "new" x feature), so one blend learns two rankers: how due a repeat
purchase is (baskets with the item, recency, typical interval, its share of the department) and
which new item fits (NCF, co-purchase kNN, department/category/brand affinity, popularity), with
household context (days since its last basket, basket count) and the item's repeat rate. The
blend (`training.recommending.blend`: logistic regression or a LightGBM ranker) is fitted on the
inner-validation split only (`fit_blend`).

Rules for bad input (counted in `candidates.CandidateSet.skipped`):
- `unknown_customers`: customer ids with no train basket get the popularity ranking (cold start).
- content code 0 (unknown department/category/brand) carries no affinity: it is not a category.

The repurchase interval of an item is approximated from `RecData` alone as the user's history
span (the oldest last-purchase age among its items) / baskets with the item, so "every N weeks"
is the mean gap over the user's whole history.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from training.models.recommender import NCFWeights, ncf_scores
from training.recommending.blend import FEATURES, POPULARITY_WINDOWS, Blend, HybridConfig, fit_blend
from training.recommending.signals import (
    CoPurchase,
    affinity,
    co_purchase,
    code_counts,
    fit_als,
    row_min,
    window_matrix,
)

__all__ = [
    "FEATURES",
    "Blend",
    "CoPurchase",
    "HybridConfig",
    "HybridScorer",
    "fit_als",
    "fit_blend",
]


class HybridScorer:
    """score(users[E], items[E, K]) -> [E, K], score_all(users[E]) -> [E, I]; numpy, lightgbm."""

    def __init__(
        self,
        ncf_weights: NCFWeights | None,
        data,
        blend: Blend | None = None,
        *,
        co: CoPurchase | None = None,
        n_neighbours: int = 20,
        n_user_neighbours: int = 50,
        pool: int = 0,
        als: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.ncf, self.data = ncf_weights, data
        self.n_user_neighbours = n_user_neighbours
        self.pool = pool  # score_all ranks a pool per household (0: the whole catalog)
        # ALS (user [U, f], item [I, f]) factors of the same train matrix; None: n_als is 0
        self.als = None if als is None else tuple(np.asarray(a, np.float32) for a in als)
        self.blend = blend or Blend.ncf_only()
        self.train = data.train.tocsr().astype(np.float32)
        self.binary = (self.train > 0).astype(np.float32)
        # time-decayed frequency (None: a bundle saved before it was kept; the feature is 0)
        self.decayed = None if data.decayed is None else data.decayed.tocsr().astype(np.float32)
        self.last = (
            data.last_bought_days.tocsr()
            if data.last_bought_days is not None
            else self.binary  # no recency known: 1 day for every item
        )
        self.co = co or co_purchase(self.train, n_neighbours)
        # "popular with shoppers like you": the share of the household's most similar households
        # (cosine on the binary matrix, top-k) that bought the item.
        peers = co_purchase(self.train.T.tocsr(), n_user_neighbours).matrix
        self.peers = sp.csr_matrix(
            sp.diags(1.0 / np.asarray(peers.sum(axis=1)).ravel().clip(min=1e-9)) @ peers
        )
        self.n_baskets = np.maximum(np.asarray(data.n_baskets, np.float32), 1.0)
        self.span = np.asarray(self.last.max(axis=1).todense()).ravel().clip(min=1.0)
        buyers = np.asarray(self.binary.sum(axis=0, dtype=np.float64)).ravel()
        self.pop = np.log1p(buyers).astype(np.float32)
        recent = data.recent_buyers if data.recent_buyers is not None else np.zeros(len(self.pop))
        self.recent_buyers = np.asarray(recent, np.float32)  # saved as counts: exact on reload
        self.recent = np.log1p(self.recent_buyers)
        self.aff = [
            affinity(self.train, np.asarray(c, np.int64))
            for c in (data.product_category, data.department, data.brand)
        ]
        self.codes = [
            np.asarray(c, np.int64) for c in (data.product_category, data.department, data.brand)
        ]
        self.dept_counts = code_counts(self.train, self.codes[1])
        # days from the household's last train basket to the split (+1), and its log basket count
        self.user_gap = np.log1p(row_min(self.last, empty=1.0))
        self.log_baskets = np.log1p(self.n_baskets)
        self.windows = window_matrix(data)  # [len(WINDOW_FEATURES), I]
        repeaters = np.asarray((self.train >= 2).sum(axis=0)).ravel()
        self.repeat_rate = (repeaters / np.maximum(buyers, 1)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write NCF weights, blend and the household x item matrices to directory `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.ncf is not None:
            self.ncf.save(path / "ncf")
        booster = self.blend.model_string()
        if booster is not None:
            (path / "blend_lightgbm.txt").write_text(booster)
        d = self.data
        sp.save_npz(path / "train.npz", self.train)
        sp.save_npz(path / "last.npz", self.last.tocsr())
        if self.decayed is not None:
            sp.save_npz(path / "decayed.npz", self.decayed)
        np.savez(
            path / "hybrid.npz",
            coef=self.blend.coef,
            customer_ids=d.customer_ids,
            product_ids=d.product_ids,
            n_baskets=d.n_baskets,
            department=d.department,
            product_category=d.product_category,
            brand=d.brand,
            # the 28-day counts are window_buyers' row when the windows are saved
            **({"recent_buyers": self.recent_buyers} if d.window_buyers is None else {}),
            **({} if self.als is None else {"als_user": self.als[0], "als_item": self.als[1]}),
            **{k: getattr(d, k) for k in ("window_buyers", "first_buyers")
               if getattr(d, k) is not None},
        )  # fmt: skip
        meta = {
            "intercept": self.blend.intercept,
            "bought_offset": self.blend.bought_offset,
            "blend": self.blend.kind,
            "blend_threads": self.blend.num_threads,
            "features": list(FEATURES),
            "n_neighbours": self.co.neighbours.shape[1],
            "n_user_neighbours": self.n_user_neighbours,
            "pool": self.pool,
            "split_time": str(d.split_time),
            "popularity_windows": list(POPULARITY_WINDOWS),
        }
        (path / "hybrid.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path) -> HybridScorer:
        """Rebuild what `save` wrote (neighbour tables are recomputed: seconds, at load time)."""
        from training.recommending.data import RecData, recent_row

        path = Path(path)
        meta = json.loads((path / "hybrid.json").read_text())
        saved = list(meta["features"])
        kind = meta.get("blend", "linear")
        # A blend saved with fewer features (an older version) scores the same: a linear one
        # with zero weight on the features added since, a booster on its leading columns
        # (features are only ever appended).
        prefix = saved == list(FEATURES[: len(saved)])
        windows = meta.get("popularity_windows", list(POPULARITY_WINDOWS))
        if windows != list(POPULARITY_WINDOWS):
            raise ValueError(f"{path}: saved with popularity windows {windows}, have "
                             f"{list(POPULARITY_WINDOWS)}")  # fmt: skip
        if any(f not in FEATURES for f in saved) or (kind != "linear" and not prefix):
            raise ValueError(f"{path}: saved with features {saved}, have {FEATURES}")
        with np.load(path / "hybrid.npz") as z:
            a = {k: z[k] for k in z.files}
        coef = np.zeros(len(FEATURES), np.float32)
        coef[[FEATURES.index(f) for f in saved]] = a["coef"]
        empty = np.empty(0, np.int64)
        data = RecData(
            customer_ids=a["customer_ids"],
            product_ids=a["product_ids"],
            train=sp.load_npz(path / "train.npz").tocsr(),
            last_bought_days=sp.load_npz(path / "last.npz").tocsr(),
            n_baskets=a["n_baskets"],
            department=a["department"],
            product_category=a["product_category"],
            brand=a["brand"],
            eval_users=empty,
            positives=empty,
            negatives=np.empty((0, 0), np.int64),
            tiebreak=np.empty((0, 0)),
            targets=[],
            is_new=np.empty(0, bool),
            split_time=np.datetime64(meta["split_time"]),
            skipped={},
            recent_buyers=a.get("recent_buyers", recent_row(a.get("window_buyers"))),
            window_buyers=a.get("window_buyers"),
            first_buyers=a.get("first_buyers"),
            decayed=(
                sp.load_npz(path / "decayed.npz").tocsr()
                if (path / "decayed.npz").is_file()
                else None
            ),
        )
        ncf = NCFWeights.load(path / "ncf") if (path / "ncf").is_dir() else None
        booster = None
        if kind == "lightgbm":
            booster = Blend.load_booster((path / "blend_lightgbm.txt").read_text())
        blend = Blend(coef, meta["intercept"], meta["bought_offset"], booster,
                      meta.get("blend_threads", 1))  # fmt: skip
        return cls(
            ncf,
            data,
            blend,
            n_neighbours=meta["n_neighbours"],
            n_user_neighbours=meta["n_user_neighbours"],
            pool=meta.get("pool", 0),  # saved before pooling: the whole catalog, as it was
            als=(a["als_user"], a["als_item"]) if "als_user" in a else None,
        )

    def features(
        self, users: np.ndarray, items: np.ndarray, neighbours: tuple | None = None
    ) -> np.ndarray:
        """[E, K, F] FEATURES of users [E] x items [E, K]. `neighbours`: the distinct users'
        (`np.unique(users)`) `_co_scores` and `_peer_shares` rows when the caller has them."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        # Dense rows once per distinct user (a blend sample repeats each user ~50 times).
        uniq, inv = np.unique(users, return_inverse=True)
        r = inv.reshape(-1)[:, None]
        co, peers = neighbours or (self._co_scores(uniq), self._peer_shares(uniq))
        count = self.train[uniq].toarray()[r, items]
        days = self.last[uniq].toarray()[r, items]
        b = (count > 0).astype(np.float32)
        n = 1.0 - b
        interval = self.span[users][:, None] / np.maximum(count, 1.0)
        log_due = np.log(np.maximum(days, 1.0) / interval)
        knn = np.log1p(co)[r, items]
        uknn = np.log(peers[r, items] + 1e-3)
        ncf = ncf_scores(self.ncf, users, items) if self.ncf is not None else np.zeros_like(b)
        pop = self.pop[items]
        recent = self.recent[items]
        als = (
            np.einsum("ekf,ef->ek", self.als[1][items], self.als[0][users])
            if self.als is not None
            else np.zeros_like(b)
        )
        windows = self.windows[:, items]  # [W, E, K]
        decayed = (
            self.decayed[uniq].toarray()[r, items] if self.decayed is not None else np.zeros_like(b)
        )
        dept = self.dept_counts[uniq].toarray()[r, self.codes[1][items]]
        aff = [
            np.log(a[uniq].toarray()[r, c[items]] + 1e-3)
            for a, c in zip(self.aff, self.codes, strict=True)
        ]
        cols = [
            b,
            b * np.log1p(count),
            b * count / self.n_baskets[users][:, None],
            b * np.log1p(days),
            b * log_due,
            b * np.abs(log_due),
            b * ncf,
            b * knn,
            b * pop,
            b * uknn,
            n * ncf,
            n * knn,
            n * aff[0],
            n * aff[1],
            n * aff[2],
            n * pop,
            n * uknn,
            np.broadcast_to(self.user_gap[users][:, None], b.shape),
            np.broadcast_to(self.log_baskets[users][:, None], b.shape),
            b * count / np.maximum(dept, count.clip(min=1.0)),
            self.repeat_rate[items],
            b * recent,
            n * recent,
            n * als,
            b * decayed,
            *(n * w for w in windows),
        ]
        return np.stack(cols, axis=-1).astype(np.float32)

    def score(
        self,
        users: np.ndarray,
        items: np.ndarray,
        chunk: int = 256,
        neighbours: tuple | None = None,
    ) -> np.ndarray:
        """Blended scores of users [E] x items [E, K] (`neighbours`: see `features`; one user)."""
        out = np.empty(np.shape(items), np.float32)
        if self.blend.is_ncf_only and self.ncf is not None:  # NCF alone: skip the other features
            for s in range(0, len(users), chunk):
                out[s : s + chunk] = ncf_scores(
                    self.ncf, users[s : s + chunk], items[s : s + chunk]
                )
            return out
        for s in range(0, len(users), chunk):
            f = self.features(users[s : s + chunk], items[s : s + chunk], neighbours)
            out[s : s + chunk] = self.blend(f)
        return out

    def score_all(self, users: np.ndarray, chunk: int = 8, min_pool: int = 0) -> np.ndarray:
        """Blended scores of users [E] against the whole catalog, [E, I].

        With `self.pool` > 0 only each household's pool (`pool_mask`) is scored and every other
        item scores -inf: on Complete Journey (pool 400) the top 20 agreed with exact scoring on
        99.98% of items at 1/8 of the cost. `min_pool`: the popular part of the pool holds at
        least that many items, so a top-`min_pool` never reaches an unscored item.
        """
        users = np.asarray(users, np.int64)
        n_items = self.train.shape[1]
        out = np.empty((len(users), n_items), np.float32)
        pooled = 0 < self.pool and 4 * max(self.pool, min_pool) < n_items
        for s in range(0, len(users), chunk):
            u = users[s : s + chunk]
            if not pooled:
                out[s : s + chunk] = self.score(
                    u, np.broadcast_to(np.arange(n_items), (len(u), n_items))
                )
                continue
            co, peers = self._co_scores(u), self._peer_shares(u)  # for the pool and features
            mask = self.pool_mask(u, min_pool, (co, peers))
            out[s : s + chunk] = -np.inf
            for j, row in enumerate(mask):
                idx = np.flatnonzero(row)
                rows = (co[j : j + 1], peers[j : j + 1])
                out[s + j, idx] = self.score(u[j : j + 1], idx[None, :], neighbours=rows)[0]
        return out

    def pool_mask(
        self, users: np.ndarray, min_pool: int = 0, neighbours: tuple | None = None
    ) -> np.ndarray:
        """[E, I] bool: the items `score_all` scores for each user (see HybridConfig.pool).
        `neighbours`: the users' `_co_scores` and `_peer_shares` rows when the caller has them."""
        users = np.asarray(users, np.int64)
        n_items = self.train.shape[1]
        k = min(self.pool, n_items)
        mask = self.binary[users].toarray() > 0
        for score in neighbours or (self._co_scores(users), self._peer_shares(users)):
            top = np.argpartition(-score, k - 1, axis=1)[:, :k]
            np.put_along_axis(mask, top, True, axis=1)
        kp = min(max(k, min_pool), n_items)
        for prior in (self.pop, self.recent):
            mask[:, np.argsort(-prior, kind="stable")[:kp]] = True
        return mask

    def _co_scores(self, users: np.ndarray) -> np.ndarray:
        """[E, I] sum of co-purchase similarities of each item to the users' bought items."""
        knn = self.binary[users] @ self.co.matrix.T
        return np.asarray(knn.todense() if sp.issparse(knn) else knn)

    def _peer_shares(self, users: np.ndarray) -> np.ndarray:
        """[E, I] share of each user's similar households that bought the item."""
        return (self.peers[users] @ self.binary).toarray()

    def interval_days(self, user: int, item: int) -> float | None:
        """The user's typical days between purchases of `item` (None if bought < 2 times)."""
        count = float(self.train[user, item])
        return float(self.span[user] / count) if count >= 2 else None
