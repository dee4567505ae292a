"""Fresh RFM features of the customers a stream batch touched, written to the online store.

The batch job (features/rfm.py) snapshots every customer at month ends; the stream recomputes
only the customers whose baskets a batch inserted, at the stream's clock (the newest basket time
of the batch, + 1 s, under the same strict `transaction_timestamp < as_of` rule), and writes
them in Feast's Redis layout (features/online.py documents it) so serving reads them at once.
Like Feast's own writer, a row older than the one already online is not written.
The offline table `customer_rfm` is not touched: the next batch snapshot covers these baskets.

Reading every line item of a touched customer's history each batch made the stream slower the
longer it ran (at 100k baskets, 87k baskets and 810k lines for one batch's 1,600 customers:
most of the writer's time), and so did reading every basket row of those customers under the
tenant's lock (on a year of Complete Journey, their basket rows took 0.18 s per batch of 1,600
customers, their count and id sum 0.03 s). `StreamRfm` keeps, per customer, what the features
are made of over the customer's baskets (`_Part`: exact numeric sums of basket totals, line
sales and loyalty discounts, item and weekend counts, first and last basket time, the stores,
baskets with a coupon, the set of products) and adds only the batch's new baskets to it: their
basket-level part from what the insert returned, their lines' part read through the primary
key. Each batch checks a kept part against the warehouse by the customer's basket count and id
sum alone; a part that does not cover exactly the customer's baskets there is read again from
the warehouse (another writer added baskets), and a customer with baskets at or after the
stream clock gets the full query as before. A restarted consumer keeps nothing: it reads its
returning customers' history before it takes the tenant's lock, and checks it under the lock
like a kept part. The results are the full query's, to the last bit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import redis

from features.catalog import CUSTOMER_RFM
from features.online_write import OnlineViewWriter
from integrations.warehouse import BatchResult

# The same definitions as features/rfm.py's _INSERT, for a set of customers at one as-of time.
_RFM_FOR = """
WITH c AS (SELECT DISTINCT unnest(%(customers)s::bigint[]) AS customer_id),
t AS (
    SELECT t.customer_id, t.transaction_id, t.transaction_timestamp AS ts, t.total_sales,
           t.item_count, t.store_id
    FROM transactions t JOIN c USING (customer_id)
    WHERE t.tenant_id = %(tenant)s AND t.transaction_timestamp < %(as_of)s
),
li AS (
    SELECT t.customer_id, i.transaction_id, i.product_id, i.sales_value, i.retail_disc,
           i.coupon_disc
    FROM t JOIN transaction_items i
      ON i.tenant_id = %(tenant)s AND i.transaction_id = t.transaction_id
),
l AS (
    SELECT customer_id,
           sum(sales_value)::float8 AS line_sales,
           sum(retail_disc)::float8 AS retail_disc,
           count(DISTINCT transaction_id) FILTER (WHERE coupon_disc > 0) AS coupons,
           count(DISTINCT product_id) AS products
    FROM li GROUP BY 1
)
SELECT t.customer_id,
       extract(epoch FROM %(as_of)s - max(t.ts))::float8 / 86400.0,
       count(*)::float8,
       sum(t.total_sales)::float8,
       coalesce(sum(t.total_sales)::float8 / nullif(count(*), 0), 0),
       coalesce(sum(t.item_count)::float8 / nullif(count(*), 0), 0),
       coalesce(max(l.products), 0)::float8,
       coalesce(max(l.retail_disc) / nullif(max(l.line_sales) + max(l.retail_disc), 0), 0),
       coalesce(max(l.coupons)::float8 / nullif(count(*), 0), 0),
       extract(epoch FROM %(as_of)s - min(t.ts))::float8 / 86400.0,
       coalesce(count(*) FILTER (
           WHERE extract(isodow FROM t.ts AT TIME ZONE 'UTC') >= 6)::float8 / count(*), 0),
       count(DISTINCT t.store_id)::float8
FROM t LEFT JOIN l USING (customer_id)
GROUP BY t.customer_id
"""


def rfm_for_customers(
    conn: psycopg.Connection, *, tenant: str, customers: Sequence[int], as_of: datetime
) -> dict[int, list[float]]:
    """RFM features (SEGMENTER_FEATURES order) of `customers` at `as_of`, from the warehouse."""
    if not customers:
        return {}
    rows = conn.execute(
        _RFM_FOR, {"tenant": tenant, "customers": list(customers), "as_of": as_of}
    ).fetchall()
    return {int(r[0]): [float(v) for v in r[1:]] for r in rows}


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
class _Part:
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

    def absorb(self, other: _Part) -> None:
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

    def covers(self, count: tuple[int, int], plus: _Part | None = None) -> bool:
        """True if this part (with `plus`) has the warehouse's (basket count, id sum)."""
        o = plus or _NONE
        return (self.n + o.n, self.id_sum + o.id_sum) == count

    def before(self, as_of: datetime, plus: _Part | None = None) -> bool:
        """True if every basket (with `plus`'s) is before `as_of`."""
        last = _pick(max, self.last, (plus or _NONE).last)
        return last is not None and last < as_of

    def features(self, as_of: datetime, plus: _Part | None = None) -> list[float]:
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


_NONE = _Part()  # no baskets (never changed)


def _pick(f, a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else f(a, b)


def _parts_of(conn: psycopg.Connection, baskets: str, params: dict) -> dict[int, _Part]:
    rows = conn.execute(_PARTS_OF.format(baskets=baskets), params).fetchall()
    return {
        int(c): _Part(int(n), int(ids), sales, int(items), int(weekend), first, last,
                      set(stores), ls or Decimal(0), rd or Decimal(0), int(cp or 0),
                      set(pr or ()))
        for c, n, ids, sales, items, weekend, first, last, stores, ls, rd, cp, pr in rows
    }  # fmt: skip


@dataclass
class RfmRead:
    """What `StreamRfm.rows` read: the rows, and what to keep once committed: whole parts (read
    from the warehouse, or a new customer's), and the new baskets' parts to add to kept ones."""

    rows: dict[int, list[float]] = field(default_factory=dict)
    parts: dict[int, _Part] = field(default_factory=dict)
    added: dict[int, _Part] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)


class StreamRfm:
    """Fresh RFM rows of the customers a batch inserted baskets for, from a kept part per
    customer and the batch's own baskets (the module docstring says when it is used). Call
    `rows` inside the writer's transaction after the merge and its rollups (whose tenant lock
    keeps other writers' baskets out until it commits) and `keep` once it has committed: the
    kept part changes only with committed data. Not thread-safe: one `rows` or `keep` at a
    time, each `rows` after the previous transaction's `keep` (or its rollback). Keeps at most
    `max_customers` (the least recently touched are dropped)."""

    def __init__(self, max_customers: int = 500_000) -> None:
        self._kept: OrderedDict[int, _Part] = OrderedDict()
        self.max_customers = max_customers

    def rows(
        self,
        conn: psycopg.Connection,
        *,
        tenant: str,
        result: BatchResult,
        as_of: datetime,
        new: dict[int, _Part] | None = None,
        whole: dict[int, _Part] | None = None,
    ) -> RfmRead:
        """RFM features (SEGMENTER_FEATURES order) at `as_of` of the customers of the baskets
        `result` says this transaction inserted (`write_batch`'s result). `new`: `new_parts`
        of the same baskets, read earlier in the transaction (else read here); `whole`:
        `whole_parts`, read earlier too (each is checked here like a kept part)."""
        read = RfmRead()
        out, keep = read.rows, read.parts
        customers = result.customers
        if not customers:
            return read
        params = {"tenant": tenant, "customers": customers, "as_of": as_of}
        if new is None:
            new = self.new_parts(conn, tenant=tenant, result=result)
        counts = {int(c): (int(n), int(ids))
                  for c, n, ids in conn.execute(_COUNTS_FOR, params).fetchall()}  # fmt: skip
        reread, full = [], []
        for customer, count in counts.items():
            kept, fresh = self._kept.get(customer), new[customer]
            if kept is None:  # read before the lock, else perhaps a new customer (checked)
                kept, fresh = (whole or {}).get(customer, fresh), None
            if not kept.covers(count, fresh):
                reread.append(customer)
            elif not kept.before(as_of, fresh):
                full.append(customer)
            else:
                out[customer] = kept.features(as_of, fresh)
                if fresh is None:
                    keep[customer] = kept
                else:
                    read.added[customer] = fresh
        if reread:
            params["customers"] = reread
            for customer, part in _parts_of(conn, _ALL_BASKETS, params).items():
                # not covering the counts read just before cannot happen (see the lock)
                if not (part.covers(counts[customer]) and part.before(as_of)):
                    full.append(customer)
                else:
                    out[customer] = part.features(as_of)
                    keep[customer] = part
        if full:
            out.update(rfm_for_customers(conn, tenant=tenant, customers=full, as_of=as_of))
            read.dropped = full
        return read

    @staticmethod
    def new_parts(
        conn: psycopg.Connection, *, tenant: str, result: BatchResult
    ) -> dict[int, _Part]:
        """The part per customer of the baskets `result` says this transaction inserted
        (`write_batch`'s result): the basket-level part from what the insert returned, the
        lines' part read through their primary key. It reads only those baskets' own lines,
        which no other writer changes, and touches nothing kept: a writer may call it before it
        waits for the writer before it (the stream consumer does), then pass it to `rows`."""
        if not result.transaction_ids:
            return {}
        parts: dict[int, _Part] = {}
        for tid, customer, ts, store, total, items in zip(
            result.transaction_ids, result.buyers, result.times, result.stores, result.totals,
            result.items, strict=True,
        ):  # fmt: skip
            part = parts.get(customer)
            if part is None:
                part = parts[customer] = _Part(first=ts, last=ts)
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

    def whole_parts(
        self,
        conn: psycopg.Connection,
        *,
        tenant: str,
        result: BatchResult,
        new: dict[int, _Part],
        skip: Collection[int] = (),
    ) -> dict[int, _Part]:
        """The whole part, read from the warehouse, of each customer of `result` who has baskets
        besides its `new_parts` (`new`) and is not kept: a restarted consumer's returning
        customers, whose history `rows` would otherwise read while it holds the tenant's lock.
        `skip`: customers of a batch in flight before this one, kept once it commits (a part
        read now would miss its baskets). Safe to call while another writer's `rows` or `keep`
        runs (it only looks kept customers up); `rows` checks each part it is given as it
        checks a kept one, so one that another writer's commit has since made stale is read
        again there."""
        customers = [c for c in result.customers if c not in self._kept and c not in skip]
        if not customers:
            return {}
        params = {"tenant": tenant, "customers": customers}
        returning = [int(c) for c, n, ids in conn.execute(_COUNTS_FOR, params).fetchall()
                     if not new[int(c)].covers((int(n), int(ids)))]  # fmt: skip
        if not returning:
            return {}
        params["customers"] = returning
        return _parts_of(conn, _ALL_BASKETS, params)

    def keep(self, read: RfmRead) -> None:
        """The transaction `read` was read in has committed: keep its customers' parts."""
        kept = self._kept
        for customer in read.dropped:
            kept.pop(customer, None)
        for customer, part in read.parts.items():
            kept[customer] = part
            kept.move_to_end(customer)
        for customer, fresh in read.added.items():
            part = kept.get(customer)
            if part is not None:  # it was kept when read (keep is the only one to drop it)
                part.absorb(fresh)
                kept.move_to_end(customer)
        while len(kept) > self.max_customers:
            kept.popitem(last=False)


class OnlineRfmWriter:
    """Writes customer RFM rows into Feast's Redis layout for one Feast project, through the
    view writer of features/online_write.py; a row at the same stream clock as the one online
    replaces it (a later batch within the same second carries more baskets), an older one not."""

    def __init__(self, client: redis.Redis, project: str) -> None:
        self._writer = OnlineViewWriter(client, project, CUSTOMER_RFM, replace_same_time=True)

    def write(self, rows: dict[int, list[float]], as_of: datetime) -> int:
        """Write each customer's features (SEGMENTER_FEATURES order) at `as_of`; returns the
        number of customers written."""
        return self._writer.write([customer, as_of, *values] for customer, values in rows.items())
