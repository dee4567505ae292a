"""What a customer's stream RFM features are made of (`Part`), and its reads from the warehouse:
the part of a batch's own baskets (`new_parts`), of a customer's whole history (`history_parts`),
and the basket count and id sum a kept part is checked against (`counts`). `StreamRfm`
(pipelines/stream_features.py) keeps parts per customer and turns them into feature rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from integrations.warehouse import BatchResult

# What a kept part is checked against: each customer's basket count and id sum.
_COUNTS_FOR = """
SELECT customer_id, count(*), sum(transaction_id)
FROM transactions
WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(customers)s::bigint[])
GROUP BY customer_id
"""

# The lines of a set of baskets `b` (customer_id, transaction_id), each basket's read through
# the primary key, and their part per customer: exact sums of line sales and loyalty discounts,
# baskets with a coupon, the distinct products.
_LINES = """
li AS (
    SELECT b.customer_id, i.transaction_id, i.product_id, i.sales_value, i.retail_disc,
           i.coupon_disc
    FROM b CROSS JOIN LATERAL (SELECT * FROM transaction_items i WHERE i.tenant_id = %(tenant)s
                               AND i.transaction_id = b.transaction_id OFFSET 0) i
)"""
_LINE_PARTS = """
    SELECT customer_id, sum(sales_value) AS line_sales, sum(retail_disc) AS retail_disc,
           count(DISTINCT transaction_id) FILTER (WHERE coupon_disc > 0) AS coupons,
           array_agg(DISTINCT product_id) AS products
    FROM li GROUP BY 1"""

# The part per customer of a set of baskets `b` (rows of `transactions`): their count and id
# sum, exact sums of basket totals, item counts, weekend baskets, first and last time, stores,
# and their lines' part.
_PARTS_OF = (
    "WITH b AS MATERIALIZED ({baskets}),"
    + _LINES
    + """
SELECT c.customer_id, c.n, c.id_sum, c.sales, c.items, c.weekend, c.first, c.last, c.stores,
       l.line_sales, l.retail_disc, l.coupons, l.products
FROM (
    SELECT customer_id, count(*) AS n, sum(transaction_id) AS id_sum, sum(total_sales) AS sales,
           sum(item_count) AS items,
           count(*) FILTER (WHERE extract(isodow FROM ts AT TIME ZONE 'UTC') >= 6) AS weekend,
           min(ts) AS first, max(ts) AS last, array_agg(DISTINCT store_id) AS stores
    FROM b GROUP BY 1
) c
LEFT JOIN ("""
    + _LINE_PARTS
    + """
) l USING (customer_id)
"""
)
_ALL_BASKETS = (
    "SELECT customer_id, transaction_id, transaction_timestamp AS ts, total_sales, item_count,"
    " store_id FROM transactions WHERE tenant_id = %(tenant)s"
    " AND customer_id = ANY(%(customers)s::bigint[])"
)
# The lines' part of the baskets a batch inserted (`ids`, bought by `buyers`): the rest of
# their part is what the insert returned.
_NEW_LINE_PARTS = (
    "WITH b AS (SELECT * FROM unnest(%(buyers)s::bigint[], %(ids)s::bigint[])"
    " AS b(customer_id, transaction_id))," + _LINES + _LINE_PARTS
)


@dataclass
class Part:
    """What one customer's features are made of, over a set of its baskets."""

    n: int = 0  # baskets
    id_sum: int = 0  # sum of their transaction ids
    sales: Decimal = Decimal(0)  # sum of the baskets' totals
    items: int = 0  # sum of their item counts
    weekend: int = 0  # baskets on a Saturday or Sunday (UTC)
    first: datetime | None = None  # the oldest basket's time
    last: datetime | None = None  # the newest basket's time
    stores: set[str] = field(default_factory=set)
    line_sales: Decimal = Decimal(0)
    retail_disc: Decimal = Decimal(0)
    coupons: int = 0  # baskets with a coupon discount
    products: set[int] = field(default_factory=set)

    def absorb(self, other: Part) -> None:
        """Add another (disjoint) set of baskets to this part, in place: the new baskets' few
        products and stores join the kept sets without copying them."""
        self.n += other.n
        self.id_sum += other.id_sum
        self.sales += other.sales
        self.items += other.items
        self.weekend += other.weekend
        self.first = _pick(min, self.first, other.first)
        self.last = _pick(max, self.last, other.last)
        self.stores |= other.stores
        self.line_sales += other.line_sales
        self.retail_disc += other.retail_disc
        self.coupons += other.coupons
        self.products |= other.products

    def covers(self, count: tuple[int, int], plus: Part | None = None) -> bool:
        """True if this part (with `plus`) has the warehouse's (basket count, id sum)."""
        o = plus or _NONE
        return (self.n + o.n, self.id_sum + o.id_sum) == count

    def before(self, as_of: datetime, plus: Part | None = None) -> bool:
        """True if every basket (with `plus`'s) is before `as_of`."""
        last = _pick(max, self.last, (plus or _NONE).last)
        return last is not None and last < as_of

    def features(self, as_of: datetime, plus: Part | None = None) -> list[float]:
        """SEGMENTER_FEATURES at `as_of` of this part's baskets and `plus`'s, with the full
        query's float8 arithmetic: a numeric sum cast to float8 is the correctly rounded double,
        as `float(Decimal)` is; an interval's epoch is its exact microseconds over 10^6,
        correctly rounded, as `total_seconds` is."""
        o = plus or _NONE
        n = float(self.n + o.n)
        monetary = float(self.sales + o.sales)
        sales, disc = float(self.line_sales + o.line_sales), float(self.retail_disc + o.retail_disc)
        share = disc / (sales + disc) if sales + disc != 0 else 0.0
        products = len(self.products) + len(o.products - self.products)
        stores = len(self.stores) + len(o.stores - self.stores)
        last, first = _pick(max, self.last, o.last), _pick(min, self.first, o.first)
        return [(as_of - last).total_seconds() / 86400.0, n, monetary, monetary / n,
                float(self.items + o.items) / n, float(products), share,
                (self.coupons + o.coupons) / n, (as_of - first).total_seconds() / 86400.0,
                float(self.weekend + o.weekend) / n, float(stores)]  # fmt: skip


_NONE = Part()  # no baskets (never changed)


def _pick(f, a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else f(a, b)


def _parts_of(conn: psycopg.Connection, baskets: str, params: dict) -> dict[int, Part]:
    rows = conn.execute(_PARTS_OF.format(baskets=baskets), params).fetchall()
    return {
        int(c): Part(int(n), int(ids), sales, int(items), int(weekend), first, last,
                     set(stores), ls or Decimal(0), rd or Decimal(0), int(cp or 0),
                     set(pr or ()))
        for c, n, ids, sales, items, weekend, first, last, stores, ls, rd, cp, pr in rows
    }  # fmt: skip


def counts(
    conn: psycopg.Connection, *, tenant: str, customers: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """(basket count, id sum) of each of `customers` with baskets in the warehouse."""
    rows = conn.execute(_COUNTS_FOR, {"tenant": tenant, "customers": list(customers)})
    return {int(c): (int(n), int(ids)) for c, n, ids in rows.fetchall()}


def history_parts(
    conn: psycopg.Connection, *, tenant: str, customers: Sequence[int]
) -> dict[int, Part]:
    """The part of each of `customers` over all of its baskets in the warehouse."""
    return _parts_of(conn, _ALL_BASKETS, {"tenant": tenant, "customers": list(customers)})


def new_parts(conn: psycopg.Connection, *, tenant: str, result: BatchResult) -> dict[int, Part]:
    """The part per customer of the baskets `result` says this transaction inserted
    (`write_batch`'s result): the basket-level part from what the insert returned, the lines'
    part read through their primary key. It reads only those baskets' own lines, which no other
    writer changes, and touches nothing kept: a writer may call it before it waits for the
    writer before it (the stream consumer does), then pass it to `StreamRfm.rows`."""
    if not result.transaction_ids:
        return {}
    parts: dict[int, Part] = {}
    for tid, customer, ts, store, total, items in zip(
        result.transaction_ids, result.buyers, result.times, result.stores, result.totals,
        result.items, strict=True,
    ):  # fmt: skip
        part = parts.get(customer)
        if part is None:
            part = parts[customer] = Part(first=ts, last=ts)
        part.n += 1
        part.id_sum += tid
        if total is not None:  # as sum() skips a NULL
            part.sales += total
        if items is not None:
            part.items += items
        part.weekend += ts.astimezone(UTC).isoweekday() >= 6
        part.first, part.last = min(part.first, ts), max(part.last, ts)
        part.stores.add(store)
    params = {"tenant": tenant, "ids": result.transaction_ids, "buyers": result.buyers}
    for c, line_sales, retail_disc, coupons, products in conn.execute(
        _NEW_LINE_PARTS, params
    ).fetchall():
        part = parts[int(c)]
        part.line_sales, part.retail_disc = line_sales, retail_disc
        part.coupons, part.products = int(coupons), set(products)
    return parts
