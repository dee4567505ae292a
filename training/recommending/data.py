"""PROTOCOLS §2 (`recsys_cj`) split: leave-last-basket-out, catalog, leave-one-out item, negatives.

Input is the canonical (items, products) pair of `training.datasets`, so the same code splits
Complete Journey for the protocol and a tenant's warehouse for the platform's training run.

Rules for bad input (each counted in `RecData.skipped`):
- `non_merchandise_rows`: line items dropped by the common filter (fuel, coupons, misc, products
  without a department or missing from `products`).
- `invalid_rows`: line items with a null customer, transaction, product or timestamp.
- `no_train_basket_households`: households without a train basket under this split (test: one
  basket; inner: one or two baskets). They are not users and are not evaluated.
- `dropped_last_basket_rows` (inner only): line items of each household's last basket, which the
  inner split never sees.
- `non_catalog_products` / `non_catalog_train_rows`: products with < 5 distinct train buyers
  (e.g. bought once) are not in the catalog; their train rows are left out of the matrix.
- `no_catalog_target_households`: users whose held-out basket has no catalog product.
- `too_few_negatives_households`: users who bought all but < n_negatives catalog products.
- `unknown_department` / `unknown_product_category` / `unknown_brand`: catalog items whose
  attribute is null or missing from `products`; they get code 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.errors import ValidationFailed
from training.datasets import merchandise
from training.recommending.blend import POPULARITY_WINDOWS

MIN_BUYERS = 5
RECENT_DAYS = 28  # "recent" popularity: distinct buyers in the last 28 days of train (a window)
DECAY = 0.9  # per-basket decay of a household's purchase frequency (newest train basket: 1)
CONTENT_COLUMNS = ("department", "product_category", "brand")
_KEYS = ("customer_id", "transaction_id", "product_id", "transaction_timestamp")
_DAY = np.timedelta64(1, "D")


@dataclass
class RecData:
    """One protocol split: train matrix, catalog, content codes and the evaluation sample."""

    customer_ids: np.ndarray  # [U] int64, sorted; row index = user index
    product_ids: np.ndarray  # [I] int64, sorted catalog; column index = item index
    train: sp.csr_matrix  # [U, I] float32: train baskets of the user containing the item
    last_bought_days: sp.csr_matrix | None  # [U, I] days from last purchase to split_time, +1
    n_baskets: np.ndarray  # [U] train baskets per user
    department: np.ndarray  # [I] int64 codes, 0 = unknown
    product_category: np.ndarray  # [I] int64 codes, 0 = unknown
    brand: np.ndarray  # [I] int64 codes, 0 = unknown
    eval_users: np.ndarray  # [E] user indices evaluated, ascending
    positives: np.ndarray  # [E] leave-one-out item per evaluated user
    negatives: np.ndarray  # [E, n_negatives] items the user never bought
    tiebreak: np.ndarray  # [E, 1 + n_negatives] keys for ties (positive first); lower wins
    targets: list[np.ndarray]  # [E] distinct catalog items of the held-out basket
    is_new: np.ndarray  # [E] bool: positive not among the user's train items
    split_time: np.datetime64  # latest train basket time (reference for recency)
    skipped: dict[str, int]
    # [I] distinct buyers in the RECENT_DAYS before split_time (None: not known, e.g. a bundle
    # saved before it was kept; scored as 0)
    recent_buyers: np.ndarray | None = None
    # [U, I] time-decayed purchase frequency: sum of DECAY**k over the user's train baskets with
    # the item (k = 0 for its newest train basket) / the same sum over all its train baskets
    decayed: sp.csr_matrix | None = None
    # [W, I] per POPULARITY_WINDOWS: households that bought the item in the window's last days
    # of train (`window_buyers`), and those whose first train purchase of it falls there
    # (`first_buyers`); None: not known (a bundle saved before they were kept; scored as 0)
    window_buyers: np.ndarray | None = None
    first_buyers: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        """Number of users (rows of `train`)."""
        return len(self.customer_ids)

    @property
    def n_items(self) -> int:
        """Number of catalog items (columns of `train`)."""
        return len(self.product_ids)

    def user_index(self, customer_ids: np.ndarray | int) -> np.ndarray:
        """User index of each customer id, -1 where the customer is not a user."""
        return _lookup(self.customer_ids, customer_ids)

    def item_index(self, product_ids: np.ndarray | int) -> np.ndarray:
        """Item index of each product id, -1 where the product is not in the catalog."""
        return _lookup(self.product_ids, product_ids)

    def candidates(self) -> np.ndarray:
        """[E, 1 + n_negatives] items to rank per evaluated user: the positive, then negatives."""
        return np.concatenate([self.positives[:, None], self.negatives], axis=1)


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray | int) -> np.ndarray:
    ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    found = (len(sorted_ids) > 0) & (sorted_ids[pos] == ids) if len(sorted_ids) else False
    return np.where(found, pos, -1).astype(np.int64)


def interactions_for_training(data: RecData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, weights) of the positive train pairs; weight = train baskets with the item."""
    coo = data.train.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float32)


def _clean_lines(items: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Merchandise line items with valid keys, one row per (customer, basket, product)."""
    merch = merchandise(items, products)
    skipped = {"non_merchandise_rows": len(items) - len(merch)}
    lines = merch[list(_KEYS)]
    valid = lines.notna().all(axis=1)
    skipped["invalid_rows"] = int((~valid).sum())
    lines = lines[valid]
    lines = pd.DataFrame(
        {
            "customer_id": lines["customer_id"].to_numpy(np.int64),
            "transaction_id": lines["transaction_id"].to_numpy(np.int64),
            "product_id": lines["product_id"].to_numpy(np.int64),
            "ts": pd.to_datetime(lines["transaction_timestamp"]).to_numpy("datetime64[ns]"),
        }
    )
    return lines, skipped


def _rank_baskets(lines: pd.DataFrame) -> pd.DataFrame:
    """Add `from_end`: 0 = household's last basket (max timestamp, ties -> max transaction id)."""
    # A basket's time is its latest line, so a basket straddling a clock tick is still one basket.
    baskets = lines.groupby(["customer_id", "transaction_id"], sort=False)["ts"].max().reset_index()
    baskets = baskets.sort_values(["customer_id", "ts", "transaction_id"], kind="mergesort")
    baskets["from_end"] = baskets.groupby("customer_id", sort=False).cumcount(ascending=False)
    baskets = baskets.rename(columns={"ts": "basket_ts"})
    return lines.merge(baskets, on=["customer_id", "transaction_id"], how="inner")


def _content_codes(products: pd.DataFrame, product_ids: np.ndarray, skipped: dict) -> dict:
    """Integer codes (1-based, sorted values; 0 = null or product missing) per content column."""
    table = products.drop_duplicates("product_id").set_index("product_id")
    out = {}
    for col in CONTENT_COLUMNS:
        values = table[col].reindex(product_ids) if col in table else pd.Series(index=product_ids)
        values = values.where(values.notna(), None)
        known = values.dropna().astype(str)
        levels = np.sort(known.unique())
        codes = np.zeros(len(product_ids), dtype=np.int64)
        mask = values.notna().to_numpy()
        codes[mask] = np.searchsorted(levels, known.to_numpy()) + 1
        out[col] = codes
        skipped[f"unknown_{col}"] = int((~mask).sum())
    return out


def recent_row(window_buyers: np.ndarray | None) -> np.ndarray | None:
    """The RECENT_DAYS row of popularity-window counts (None without them)."""
    return None if window_buyers is None else window_buyers[POPULARITY_WINDOWS.index(RECENT_DAYS)]


def protocol_split(
    items: pd.DataFrame,
    products: pd.DataFrame,
    *,
    inner: bool = False,
    n_negatives: int = 99,
    seed: int = 42,
    min_buyers: int = MIN_BUYERS,
    holdout: bool = True,
) -> RecData:
    """PROTOCOLS §2 split; `inner=True` holds out the penultimate basket and drops the last.
    `holdout=False`: every basket is train and nothing is evaluated (what the served model
    is fitted on).

    Randomness (one `default_rng(seed)` stream, in this order): for each user with a catalog
    target, in customer-id order, its leave-one-out item then its negatives; then the tie keys.
    """
    lines, skipped = _clean_lines(items, products)
    lines = _rank_baskets(lines)
    held = 1 if inner else 0
    n_hh = lines["customer_id"].nunique()
    if inner:
        skipped["dropped_last_basket_rows"] = int((lines["from_end"] == 0).sum())
    train_lines = lines[lines["from_end"] > held] if holdout else lines
    held_lines = lines[lines["from_end"] == held] if holdout else lines.iloc[:0]

    customer_ids = np.sort(train_lines["customer_id"].unique())
    skipped["no_train_basket_households"] = int(n_hh - len(customer_ids))
    if not len(customer_ids):  # every household has one basket (or none is merchandise)
        raise ValidationFailed(
            "no household has a basket to train on ("
            + (
                f"{n_hh} households, each with {'2 or fewer baskets' if inner else 'one basket'}"
                if n_hh
                else "no merchandise baskets"
            )  # fmt: skip
            + "): load more baskets",
            details={"skipped": skipped},
        )

    # Distinct (user, basket, product): a basket counts once however many lines it has.
    tb = train_lines.drop_duplicates(["customer_id", "transaction_id", "product_id"])
    buyers = tb.groupby("product_id")["customer_id"].nunique()
    product_ids = np.sort(buyers.index[buyers >= min_buyers].to_numpy(np.int64))
    skipped["non_catalog_products"] = int((buyers < min_buyers).sum())
    in_cat = tb["product_id"].isin(product_ids)
    skipped["non_catalog_train_rows"] = int((~in_cat).sum())
    tb = tb[in_cat]

    n_users, n_items = len(customer_ids), len(product_ids)
    newest = held + 1 if holdout else 0  # `from_end` of each household's newest train basket
    tb = tb.assign(w=DECAY ** (tb["from_end"].to_numpy(np.float64) - newest))
    pairs = tb.groupby(["customer_id", "product_id"], sort=False).agg(
        count=("transaction_id", "size"),
        first=("basket_ts", "min"),
        last=("basket_ts", "max"),
        w=("w", "sum"),
    )
    rows = np.searchsorted(customer_ids, pairs.index.get_level_values(0).to_numpy(np.int64))
    cols = np.searchsorted(product_ids, pairs.index.get_level_values(1).to_numpy(np.int64))
    shape = (n_users, n_items)
    train = sp.csr_matrix((pairs["count"].to_numpy(np.float32), (rows, cols)), shape=shape)
    split_time = np.datetime64(train_lines["basket_ts"].max(), "ns")
    window_buyers, first_buyers = _window_buyers(tb, pairs, cols, product_ids, split_time)
    recent_buyers = recent_row(window_buyers).copy()
    days = (split_time - pairs["last"].to_numpy("datetime64[ns]")) // _DAY + 1
    last_bought = sp.csr_matrix((days.astype(np.float32), (rows, cols)), shape=shape)

    n_baskets = np.zeros(n_users, dtype=np.int64)
    per_user = train_lines.groupby("customer_id")["transaction_id"].nunique()
    n_baskets[np.searchsorted(customer_ids, per_user.index.to_numpy(np.int64))] = per_user
    norm = (1.0 - DECAY ** n_baskets[rows]) / (1.0 - DECAY)  # sum of DECAY**k, k < n_baskets
    decayed = sp.csr_matrix(((pairs["w"].to_numpy() / norm).astype(np.float32), (rows, cols)),
                            shape=shape)  # fmt: skip

    sample = _eval_sample(held_lines, customer_ids, product_ids, train, n_negatives, seed, skipped)
    codes = _content_codes(products, product_ids, skipped)
    return RecData(
        customer_ids=customer_ids,
        product_ids=product_ids,
        train=train,
        last_bought_days=last_bought,
        n_baskets=n_baskets,
        department=codes["department"],
        product_category=codes["product_category"],
        brand=codes["brand"],
        split_time=split_time,
        skipped=skipped,
        recent_buyers=recent_buyers,
        decayed=decayed,
        window_buyers=window_buyers,
        first_buyers=first_buyers,
        **sample,
    )


def _window_buyers(
    tb: pd.DataFrame,
    pairs: pd.DataFrame,
    cols: np.ndarray,
    product_ids: np.ndarray,
    split_time: np.datetime64,
) -> tuple[np.ndarray, np.ndarray]:
    """[W, I] float32 per POPULARITY_WINDOWS: distinct households with a train basket holding
    the item in the window (basket time > split_time - days), and households whose first train
    basket with it falls in the window. `pairs` (user x product aggregates, `first` = first
    basket time) and `cols` (their item indices) come from `protocol_split`."""
    n_items = len(product_ids)
    basket_ts = tb["basket_ts"].to_numpy("datetime64[ns]")
    first = pairs["first"].to_numpy("datetime64[ns]")
    buyers = np.zeros((len(POPULARITY_WINDOWS), n_items), np.float32)
    firsts = np.zeros_like(buyers)
    for w, days in enumerate(POPULARITY_WINDOWS):
        start = split_time - days * _DAY
        inside = tb[basket_ts > start].drop_duplicates(["customer_id", "product_id"])
        items = np.searchsorted(product_ids, inside["product_id"].to_numpy(np.int64))
        buyers[w] = np.bincount(items, minlength=n_items)
        firsts[w] = np.bincount(cols[first > start], minlength=n_items)
    return buyers, firsts


def _eval_sample(
    held_lines: pd.DataFrame,
    customer_ids: np.ndarray,
    product_ids: np.ndarray,
    train: sp.csr_matrix,
    n_negatives: int,
    seed: int,
    skipped: dict,
) -> dict:
    """Targets, leave-one-out positives, never-bought negatives and tie keys of evaluated users."""
    held = held_lines[
        held_lines["customer_id"].isin(customer_ids) & held_lines["product_id"].isin(product_ids)
    ]
    users = np.searchsorted(customer_ids, held["customer_id"].to_numpy(np.int64))
    items = np.searchsorted(product_ids, held["product_id"].to_numpy(np.int64))
    # Unique (user, item) pairs sorted by user then item; split into one target array per user.
    pairs = np.unique(np.stack([users, items], axis=1), axis=0) if len(users) else np.empty((0, 2))
    pairs = pairs.astype(np.int64)
    cand_users, starts = np.unique(pairs[:, 0], return_index=True)
    targets_all = np.split(pairs[:, 1], starts[1:]) if len(cand_users) else []
    n_with_train_basket = held_lines.loc[
        held_lines["customer_id"].isin(customer_ids), "customer_id"
    ].nunique()
    skipped["no_catalog_target_households"] = int(n_with_train_basket - len(cand_users))

    n_items = len(product_ids)
    rng = np.random.default_rng(seed)
    keep, positives, negatives = [], [], []
    bought = np.zeros(n_items, dtype=bool)
    for k, (u, t) in enumerate(zip(cand_users, targets_all, strict=True)):
        # Per household: its positive, then its negatives, from one stream (the draw order of
        # the reference implementation; it reproduces the protocol's ~41% repeat positives).
        pos = t[rng.integers(len(t))]
        seen = train.indices[train.indptr[u] : train.indptr[u + 1]]
        bought[seen] = True
        bought[t] = True
        pool = np.flatnonzero(~bought)
        bought[seen] = False
        bought[t] = False
        if len(pool) < n_negatives:
            continue
        keep.append(k)
        positives.append(pos)
        negatives.append(rng.choice(pool, size=n_negatives, replace=False))
    skipped["too_few_negatives_households"] = int(len(cand_users) - len(keep))

    keep_idx = np.asarray(keep, dtype=np.int64)
    eval_users = cand_users[keep_idx].astype(np.int64)
    positives = np.asarray(positives, dtype=np.int64)
    neg = np.stack(negatives).astype(np.int64) if negatives else np.empty((0, n_negatives), int)
    tiebreak = rng.random((len(eval_users), n_negatives + 1))
    # A positive is new when the user has no train basket containing it.
    is_new = (
        np.asarray(train[eval_users, positives]).ravel() == 0
        if len(keep_idx)
        else np.empty(0, bool)
    )
    return {
        "eval_users": eval_users,
        "positives": positives,
        "negatives": neg,
        "tiebreak": tiebreak,
        "targets": [targets_all[k] for k in keep],
        "is_new": is_new,
    }
