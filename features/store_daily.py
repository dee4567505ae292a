"""Store x business-day sales rollup (`store_daily_sales`): the anomaly detector's series.

Rules (the same as `training.anomaly.data.daily_panel`, PROTOCOLS §4): business date =
transaction time (UTC) − 5 h; sales = net sales_value; transactions = distinct transactions;
median unit price = median of sales_value / quantity over the store-day's lines with
quantity > 0 (NULL when there is none). Days without sales have no row (read as 0).
`event_timestamp` is the end of the business day (next day 05:00 UTC), the time the row is
known. A recompute replaces the tenant's rows in one transaction.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg

BUSINESS_DAY_HOURS = 5

_INSERT = """
INSERT INTO store_daily_sales
  (tenant_id, store_id, business_date, event_timestamp, sales, transactions, median_unit_price)
SELECT t.tenant_id, t.store_id, d.business_date,
       ((d.business_date + 1) + make_interval(hours => %(hours)s)) AT TIME ZONE 'UTC',
       sum(i.sales_value)::float8,
       count(DISTINCT t.transaction_id),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (i.sales_value / i.quantity)::float8)
         FILTER (WHERE i.quantity > 0)
FROM transactions t
JOIN transaction_items i ON i.tenant_id = t.tenant_id AND i.transaction_id = t.transaction_id
CROSS JOIN LATERAL (
  SELECT ((t.transaction_timestamp AT TIME ZONE 'UTC') - make_interval(hours => %(hours)s))::date
    AS business_date
) d
WHERE t.tenant_id = %(tenant)s AND (%(since)s::timestamptz IS NULL
                                    OR t.transaction_timestamp >= %(since)s::timestamptz)
GROUP BY t.tenant_id, t.store_id, d.business_date
"""


def compute_store_daily(
    conn: psycopg.Connection, *, tenant: str, since: datetime | None = None
) -> int:
    """Recompute the tenant's `store_daily_sales` (with `since`, the start of a business day:
    only the business days from then on); returns rows written."""
    with conn.transaction():
        if since is None:
            conn.execute("DELETE FROM store_daily_sales WHERE tenant_id = %s", (tenant,))
        else:
            conn.execute(
                "DELETE FROM store_daily_sales WHERE tenant_id = %s AND event_timestamp > %s",
                (tenant, since),
            )
        conn.execute("SET LOCAL work_mem = '128MB'")
        params = {"tenant": tenant, "hours": BUSINESS_DAY_HOURS, "since": since}
        written = conn.execute(_INSERT, params).rowcount
        if since is None:
            conn.execute("ANALYZE store_daily_sales")
    return written


def load_store_daily(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date | None = None,
    end: date | None = None,
    store_ids: list[str] | None = None,
) -> pd.DataFrame:
    """Rows of `store_daily_sales` (store_id, business_date, sales, transactions,
    median_unit_price) between `start` and `end` inclusive, optionally for some stores."""
    clauses, params = ["tenant_id = %s"], [tenant]
    if start is not None:
        clauses.append("business_date >= %s")
        params.append(start)
    if end is not None:
        clauses.append("business_date <= %s")
        params.append(end)
    if store_ids is not None:
        clauses.append("store_id = ANY(%s)")
        params.append(list(store_ids))
    rows = conn.execute(
        "SELECT store_id, business_date, sales, transactions, median_unit_price"
        f" FROM store_daily_sales WHERE {' AND '.join(clauses)}"
        " ORDER BY store_id, business_date",
        params,
    ).fetchall()
    frame = pd.DataFrame(
        rows, columns=["store_id", "business_date", "sales", "transactions", "median_unit_price"]
    )
    frame["business_date"] = frame["business_date"].astype("datetime64[ns]")
    for col in ("sales", "transactions", "median_unit_price"):
        frame[col] = frame[col].astype(np.float64)
    return frame


def known_stores(conn: psycopg.Connection, *, tenant: str) -> list[str]:
    """Every store with at least one day of sales."""
    rows = conn.execute(
        "SELECT DISTINCT store_id FROM store_daily_sales WHERE tenant_id = %s", (tenant,)
    ).fetchall()
    return sorted(r[0] for r in rows)


def date_range(conn: psycopg.Connection, *, tenant: str) -> tuple[date, date] | None:
    """(first, last) business dates with sales, or None without any."""
    row = conn.execute(
        "SELECT min(business_date), max(business_date) FROM store_daily_sales WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])
