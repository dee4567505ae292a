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
are made of over the customer's baskets (`Part`, pipelines/rfm_parts.py: exact numeric sums of
basket totals, line sales and loyalty discounts, item and weekend counts, first and last basket
time, the stores, baskets with a coupon, the set of products) and adds only the batch's new baskets to it: their
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
from datetime import datetime

import psycopg
import redis

from features.catalog import CUSTOMER_RFM
from features.online_write import OnlineViewWriter
from integrations.warehouse import BatchResult
from pipelines.rfm_parts import Part, counts, history_parts, new_parts

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


@dataclass
class RfmRead:
    """What `StreamRfm.rows` read: the rows, and what to keep once committed: whole parts (read
    from the warehouse, or a new customer's), and the new baskets' parts to add to kept ones."""

    rows: dict[int, list[float]] = field(default_factory=dict)
    parts: dict[int, Part] = field(default_factory=dict)
    added: dict[int, Part] = field(default_factory=dict)
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
        self._kept: OrderedDict[int, Part] = OrderedDict()
        self.max_customers = max_customers

    def rows(
        self,
        conn: psycopg.Connection,
        *,
        tenant: str,
        result: BatchResult,
        as_of: datetime,
        new: dict[int, Part] | None = None,
        whole: dict[int, Part] | None = None,
    ) -> RfmRead:
        """RFM features (SEGMENTER_FEATURES order) at `as_of` of the customers of the baskets
        `result` says this transaction inserted (`write_batch`'s result). `new`: `new_parts`
        (pipelines/rfm_parts.py) of the same baskets, read earlier in the transaction (else
        read here); `whole`: `whole_parts`, read earlier too (each is checked here like a kept
        part)."""
        read = RfmRead()
        out, keep = read.rows, read.parts
        customers = result.customers
        if not customers:
            return read
        if new is None:
            new = new_parts(conn, tenant=tenant, result=result)
        counted = counts(conn, tenant=tenant, customers=customers)
        reread, full = [], []
        for customer, count in counted.items():
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
            for customer, part in history_parts(conn, tenant=tenant, customers=reread).items():
                # not covering the counts read just before cannot happen (see the lock)
                if not (part.covers(counted[customer]) and part.before(as_of)):
                    full.append(customer)
                else:
                    out[customer] = part.features(as_of)
                    keep[customer] = part
        if full:
            out.update(rfm_for_customers(conn, tenant=tenant, customers=full, as_of=as_of))
            read.dropped = full
        return read

    def whole_parts(
        self,
        conn: psycopg.Connection,
        *,
        tenant: str,
        result: BatchResult,
        new: dict[int, Part],
        skip: Collection[int] = (),
    ) -> dict[int, Part]:
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
        returning = [c for c, count in counts(conn, tenant=tenant, customers=customers).items()
                     if not new[c].covers(count)]  # fmt: skip
        if not returning:
            return {}
        return history_parts(conn, tenant=tenant, customers=returning)

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
