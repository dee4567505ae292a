"""Fresh RFM features of the customers a stream batch touched, written to the online store.

The batch job (features/rfm.py) snapshots every customer at month ends; the stream recomputes
only the customers whose baskets a batch inserted, at the stream's clock (the newest basket time
of the batch, + 1 s, under the same strict `transaction_timestamp < as_of` rule), and writes
them in Feast's Redis layout (features/online.py documents it) so serving reads them at once.
Like Feast's own writer, a row older than the one already online is not written.
The offline table `customer_rfm` is not touched: the next batch snapshot covers these baskets.

Reading every line item of a touched customer's history each batch made the stream slower the
longer it ran (at 100k baskets, 87k baskets and 810k lines for one batch's 1,600 customers:
most of the writer's time). `StreamRfm` keeps, per customer, the line-item part of the features
(line sales and loyalty discounts as exact numeric sums, baskets with a coupon, the set of
products) and adds only the batch's new lines to it; the basket-level part is recomputed from
`transactions` alone (a tenth of the rows). A customer's kept part is used only when it covers
exactly the customer's baskets in the warehouse (their count and id sum agree) and all of them
are before the stream clock; otherwise it is read again from the warehouse (another writer
added baskets, a restart) or, for a customer with baskets at or after the clock, the features
come from the full query as before. The results are the full query's, to the last bit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import psycopg
import redis

from features.catalog import CUSTOMER_RFM
from features.online_write import OnlineViewWriter

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


# The basket-level features of `customers` over all their baskets (the full query's expressions
# without the line items), with what `StreamRfm` checks its kept part against: the baskets'
# count and id sum, and whether all of them are before the clock.
_BASKETS_FOR = """
SELECT t.customer_id, count(*), sum(t.transaction_id), max(t.transaction_timestamp) < %(as_of)s,
       extract(epoch FROM %(as_of)s - max(t.transaction_timestamp))::float8 / 86400.0,
       count(*)::float8,
       sum(t.total_sales)::float8,
       coalesce(sum(t.total_sales)::float8 / nullif(count(*), 0), 0),
       coalesce(sum(t.item_count)::float8 / nullif(count(*), 0), 0),
       extract(epoch FROM %(as_of)s - min(t.transaction_timestamp))::float8 / 86400.0,
       coalesce(count(*) FILTER (WHERE extract(isodow FROM t.transaction_timestamp
                                               AT TIME ZONE 'UTC') >= 6)::float8 / count(*), 0),
       count(DISTINCT t.store_id)::float8
FROM transactions t
WHERE t.tenant_id = %(tenant)s AND t.customer_id = ANY(%(customers)s::bigint[])
GROUP BY t.customer_id
"""

# The line-item part per customer of a set of baskets `b` (customer_id, transaction_id): their
# count and id sum, exact sums of line sales and loyalty discounts, baskets with a coupon, and
# the distinct products. Each basket's lines are read through the primary key.
_LINES_OF = """
WITH b AS MATERIALIZED ({baskets}),
li AS (
    SELECT b.customer_id, i.transaction_id, i.product_id, i.sales_value, i.retail_disc,
           i.coupon_disc
    FROM b CROSS JOIN LATERAL (SELECT * FROM transaction_items i WHERE i.tenant_id = %(tenant)s
                               AND i.transaction_id = b.transaction_id OFFSET 0) i
)
SELECT c.customer_id, c.n, c.id_sum, l.line_sales, l.retail_disc, l.coupons, l.products
FROM (SELECT customer_id, count(*) AS n, sum(transaction_id) AS id_sum FROM b GROUP BY 1) c
LEFT JOIN (
    SELECT customer_id, sum(sales_value) AS line_sales, sum(retail_disc) AS retail_disc,
           count(DISTINCT transaction_id) FILTER (WHERE coupon_disc > 0) AS coupons,
           array_agg(DISTINCT product_id) AS products
    FROM li GROUP BY 1
) l USING (customer_id)
"""
_NEW_BASKETS = ("SELECT * FROM unnest(%(buyers)s::bigint[], %(ids)s::bigint[])"
                " AS b(customer_id, transaction_id)")  # fmt: skip
_ALL_BASKETS = ("SELECT customer_id, transaction_id FROM transactions WHERE tenant_id = %(tenant)s"
                " AND customer_id = ANY(%(customers)s::bigint[])")  # fmt: skip


@dataclass
class _Lines:
    """The line-item part of one customer's features over a set of baskets."""

    n: int = 0  # baskets
    id_sum: int = 0  # sum of their transaction ids
    line_sales: Decimal = Decimal(0)
    retail_disc: Decimal = Decimal(0)
    coupons: int = 0  # baskets with a coupon discount
    products: set[int] = field(default_factory=set)

    def plus(self, other: _Lines) -> _Lines:
        """Both sets of baskets (disjoint) together."""
        return _Lines(self.n + other.n, self.id_sum + other.id_sum,
                      self.line_sales + other.line_sales, self.retail_disc + other.retail_disc,
                      self.coupons + other.coupons, self.products | other.products)  # fmt: skip


def _lines_of(conn: psycopg.Connection, baskets: str, params: dict) -> dict[int, _Lines]:
    rows = conn.execute(_LINES_OF.format(baskets=baskets), params).fetchall()
    return {
        int(c): _Lines(int(n), int(ids), ls or Decimal(0), rd or Decimal(0), int(cp or 0),
                       set(pr or ()))
        for c, n, ids, ls, rd, cp, pr in rows
    }  # fmt: skip


@dataclass
class RfmRead:
    """What `StreamRfm.rows` read: the rows, and the line-item parts to keep once committed."""

    rows: dict[int, list[float]] = field(default_factory=dict)
    lines: dict[int, _Lines] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)


class StreamRfm:
    """Fresh RFM rows of the customers a batch inserted baskets for, from their basket rows and
    a kept line-item part per customer (the module docstring says when it is used). Call
    `rows` inside the writer's transaction after the merge and its rollups (whose tenant lock
    keeps other writers' baskets out until it commits) and `keep` once it has committed: the
    kept part changes only with committed data. Not thread-safe: one `rows` or `keep` at a
    time, each `rows` after the previous transaction's `keep` (or its rollback). Keeps at most
    `max_customers` (the least recently touched are dropped)."""

    def __init__(self, max_customers: int = 500_000) -> None:
        self._kept: OrderedDict[int, _Lines] = OrderedDict()
        self.max_customers = max_customers

    def rows(
        self,
        conn: psycopg.Connection,
        *,
        tenant: str,
        transaction_ids: Sequence[int],
        buyers: Sequence[int],
        as_of: datetime,
        new: dict[int, _Lines] | None = None,
    ) -> RfmRead:
        """RFM features (SEGMENTER_FEATURES order) at `as_of` of the customers (`buyers`) of the
        baskets `transaction_ids` this transaction inserted. `new`: `new_lines` of the same
        baskets, read earlier in the transaction (else read here)."""
        read = RfmRead()
        out, keep = read.rows, read.lines
        customers = sorted(set(buyers))
        if not customers:
            return read
        params = {"tenant": tenant, "customers": customers, "as_of": as_of}
        if new is None:
            new = self.new_lines(conn, tenant=tenant, transaction_ids=transaction_ids,
                                 buyers=buyers)  # fmt: skip
        basket_rows = conn.execute(_BASKETS_FOR, params).fetchall()
        reread, full = [], []
        for customer, n, id_sum, before_clock, *features in basket_rows:
            customer, n, id_sum = int(customer), int(n), int(id_sum)
            if not before_clock:
                full.append(customer)
                continue
            kept = self._kept.get(customer)  # none: perhaps a new customer (checked)
            lines = kept.plus(new[customer]) if kept is not None else new[customer]
            if (lines.n, lines.id_sum) != (n, id_sum):
                reread.append(customer)
                continue
            out[customer] = _features(features, lines)
            keep[customer] = lines
        if reread:
            counts = {int(r[0]): (int(r[1]), int(r[2])) for r in basket_rows}
            params["customers"] = reread
            features = {int(r[0]): r[4:] for r in basket_rows}
            for customer, lines in _lines_of(conn, _ALL_BASKETS, params).items():
                if (lines.n, lines.id_sum) != counts[customer]:  # pragma: no cover - see lock
                    full.append(customer)
                    continue
                out[customer] = _features(features[customer], lines)
                keep[customer] = lines
        if full:
            out.update(rfm_for_customers(conn, tenant=tenant, customers=full, as_of=as_of))
            read.dropped = full
        return read

    @staticmethod
    def new_lines(
        conn: psycopg.Connection, *, tenant: str, transaction_ids: Sequence[int],
        buyers: Sequence[int],
    ) -> dict[int, _Lines]:  # fmt: skip
        """The line-item part per customer of the baskets `transaction_ids` (customers
        `buyers`, same order) this transaction inserted. It reads only those baskets' own lines,
        which no other writer changes, and touches nothing kept: a writer may call it before it
        waits for the writer before it (the stream consumer does), then pass it to `rows`."""
        if not transaction_ids:
            return {}
        params = {"tenant": tenant, "ids": list(transaction_ids), "buyers": list(buyers)}
        return _lines_of(conn, _NEW_BASKETS, params)

    def keep(self, read: RfmRead) -> None:
        """The transaction `read` was read in has committed: keep its line-item parts."""
        kept = self._kept
        for customer in read.dropped:
            kept.pop(customer, None)
        for customer, lines in read.lines.items():
            kept[customer] = lines
            kept.move_to_end(customer)
        while len(kept) > self.max_customers:
            kept.popitem(last=False)


def _features(basket_part: Sequence[float], lines: _Lines) -> list[float]:
    """SEGMENTER_FEATURES order from `_BASKETS_FOR`'s features and the line-item part, with the
    full query's float8 arithmetic (a numeric sum cast to float8 is the correctly rounded
    double, as `float(Decimal)` is)."""
    recency, frequency, monetary, avg_basket, avg_items, tenure, weekend, stores = basket_part
    sales, disc = float(lines.line_sales), float(lines.retail_disc)
    share = disc / (sales + disc) if sales + disc != 0 else 0.0
    return [recency, frequency, monetary, avg_basket, avg_items, float(len(lines.products)),
            share, lines.coupons / frequency, tenure, weekend, stores]  # fmt: skip


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
