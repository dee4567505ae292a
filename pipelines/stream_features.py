"""Fresh RFM features of the customers a stream batch touched, written to the online store.

The batch job (features/rfm.py) snapshots every customer at month ends; the stream recomputes
only the customers whose baskets a batch inserted, at the stream's clock (the newest basket time
of the batch, + 1 s, under the same strict `transaction_timestamp < as_of` rule), and writes
them in Feast's Redis layout (features/online.py documents it) so serving reads them at once.
Like Feast's own writer, a row older than the one already online is not written.
The offline table `customer_rfm` is not touched: the next batch snapshot covers these baskets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

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
