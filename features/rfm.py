"""Customer RFM snapshots: one row per customer per as-of timestamp, computed inside PostgreSQL.

Point-in-time rule: a snapshot at `as_of` uses only transactions with
`transaction_timestamp < as_of`, so a feature row stamped `as_of` never sees its own future.
Day-of-week (weekend_share) and calendar months are taken in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

from features.names import SEGMENTER_FEATURES

# Month ends covered by the data (the first instant of each following month, as long as it is not
# after the last transaction), plus one snapshot just after the last transaction (truncated to the
# second, + 1 s) so that the latest snapshot covers every transaction under the strict `<` rule.
_DEFAULT_AS_OF = """
WITH span AS (
    SELECT min(transaction_timestamp) AS lo, max(transaction_timestamp) AS hi
    FROM transactions WHERE tenant_id = %(tenant)s
)
SELECT m AS as_of
FROM span, generate_series(
    date_trunc('month', span.lo, 'UTC') + interval '1 month', span.hi, interval '1 month'
) AS m
WHERE span.lo IS NOT NULL
UNION
SELECT date_trunc('second', span.hi) + interval '1 second' FROM span WHERE span.hi IS NOT NULL
ORDER BY 1
"""

_DELETE = """
DELETE FROM customer_rfm
WHERE tenant_id = %(tenant)s AND event_timestamp = ANY(%(as_of)s::timestamptz[])
"""

# Basket-level facts first (one row per transaction), then one aggregate per (as_of, customer).
# Products and stores are reduced to "first seen" timestamps so that their distinct counts per
# cut-off are plain counts instead of DISTINCT over every basket line.
_INSERT = f"""
WITH cut AS (
    SELECT DISTINCT unnest(%(as_of)s::timestamptz[]) AS as_of
),
lines AS (
    SELECT transaction_id,
           sum(sales_value)::float8 AS line_sales,
           sum(retail_disc)::float8 AS retail_disc,
           bool_or(coupon_disc > 0) AS used_coupon
    FROM transaction_items
    WHERE tenant_id = %(tenant)s
    GROUP BY transaction_id
),
basket AS (
    SELECT t.customer_id,
           t.transaction_timestamp AS ts,
           t.item_count::float8 AS item_count,
           t.total_sales::float8 AS sales,
           coalesce(l.line_sales, 0) AS line_sales,
           coalesce(l.retail_disc, 0) AS retail_disc,
           coalesce(l.used_coupon, false) AS used_coupon,
           extract(isodow FROM t.transaction_timestamp AT TIME ZONE 'UTC') >= 6 AS weekend
    FROM transactions t
    LEFT JOIN lines l USING (transaction_id)
    WHERE t.tenant_id = %(tenant)s
),
agg AS (
    SELECT c.as_of, b.customer_id,
           count(*)::float8 AS frequency,
           sum(b.sales) AS monetary,
           min(b.ts) AS first_ts,
           max(b.ts) AS last_ts,
           avg(b.item_count) AS avg_items,
           sum(b.line_sales) AS line_sales,
           sum(b.retail_disc) AS retail_disc,
           avg(b.used_coupon::int)::float8 AS coupon_share,
           avg(b.weekend::int)::float8 AS weekend_share
    FROM cut c
    JOIN basket b ON b.ts < c.as_of
    GROUP BY c.as_of, b.customer_id
),
first_product AS (
    SELECT t.customer_id, i.product_id, min(t.transaction_timestamp) AS first_ts
    FROM transactions t
    JOIN transaction_items i
      ON i.tenant_id = t.tenant_id AND i.transaction_id = t.transaction_id
    WHERE t.tenant_id = %(tenant)s
    GROUP BY t.customer_id, i.product_id
),
products AS (
    SELECT c.as_of, p.customer_id, count(*)::float8 AS n
    FROM cut c JOIN first_product p ON p.first_ts < c.as_of
    GROUP BY c.as_of, p.customer_id
),
first_store AS (
    SELECT customer_id, store_id, min(transaction_timestamp) AS first_ts
    FROM transactions
    WHERE tenant_id = %(tenant)s
    GROUP BY customer_id, store_id
),
stores AS (
    SELECT c.as_of, s.customer_id, count(*)::float8 AS n
    FROM cut c JOIN first_store s ON s.first_ts < c.as_of
    GROUP BY c.as_of, s.customer_id
)
INSERT INTO customer_rfm (tenant_id, customer_id, event_timestamp, {", ".join(SEGMENTER_FEATURES)})
SELECT %(tenant)s, a.customer_id, a.as_of,
       extract(epoch FROM a.as_of - a.last_ts)::float8 / 86400.0,
       a.frequency,
       a.monetary,
       coalesce(a.monetary / nullif(a.frequency, 0), 0),
       coalesce(a.avg_items, 0),
       coalesce(p.n, 0),
       coalesce(a.retail_disc / nullif(a.line_sales + a.retail_disc, 0), 0),
       a.coupon_share,
       extract(epoch FROM a.as_of - a.first_ts)::float8 / 86400.0,
       a.weekend_share,
       coalesce(s.n, 0)
FROM agg a
LEFT JOIN products p ON p.as_of = a.as_of AND p.customer_id = a.customer_id
LEFT JOIN stores s ON s.as_of = a.as_of AND s.customer_id = a.customer_id
"""


def default_as_of(conn: psycopg.Connection, *, tenant: str) -> list[datetime]:
    """Month ends covered by the tenant's transactions plus a snapshot after the last one."""
    rows = conn.execute(_DEFAULT_AS_OF, {"tenant": tenant}).fetchall()
    return [row[0] for row in rows]


def compute_customer_rfm(
    conn: psycopg.Connection, *, tenant: str, as_of: Sequence[datetime] | None = None
) -> int:
    """Write `customer_rfm` rows for `tenant` at each as-of timestamp; returns rows written.

    Rows already stored for those (tenant, as_of) pairs are replaced in the same transaction, so
    re-running is idempotent. Timestamps must be timezone-aware (naive ones are read in the
    session's time zone by PostgreSQL).
    """
    with conn.transaction():
        cutoffs = list(as_of) if as_of is not None else default_as_of(conn, tenant=tenant)
        if not cutoffs:
            return 0
        params = {"tenant": tenant, "as_of": cutoffs}
        conn.execute(_DELETE, params)
        cur = conn.execute(_INSERT, params)
        return cur.rowcount
