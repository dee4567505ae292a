"""The same answers computed from the base tables (transactions, transaction_items, products).

Used where no rollup has the grain (a product or a category at some stores) and by
bench/analytics_routes.py as the scan each rollup replaces. Business days as in analytics/rollups.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from features.store_daily import BUSINESS_DAY_HOURS

LOCAL = f"((t.transaction_timestamp AT TIME ZONE 'UTC') - interval '{BUSINESS_DAY_HOURS} hours')"
# baskets whose business day lies in [start, end]
WINDOW = (
    f" t.transaction_timestamp >= (%(start)s::date + interval '{BUSINESS_DAY_HOURS} hours')"
    " AT TIME ZONE 'UTC'"
    f" AND t.transaction_timestamp < (%(end)s::date + interval '1 day {BUSINESS_DAY_HOURS} hours')"
    " AT TIME ZONE 'UTC'"
)


def _stores(stores: list[str] | None) -> str:
    return "" if stores is None else " AND t.store_id = ANY(%(stores)s)"


def product_weeks(
    conn: psycopg.Connection,
    *,
    tenant: str,
    product_id: int,
    first_week: date,
    last_week: date,
    stores: list[str] | None,
) -> list[tuple]:
    """(week, revenue, units, lines, discounts) of one product at `stores`, from line items."""
    return conn.execute(
        f"""
        SELECT ({LOCAL})::date - (extract(isodow FROM {LOCAL})::int - 1) AS week,
               sum(i.sales_value), sum(i.quantity), count(*),
               sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc)
        FROM transactions t
        JOIN transaction_items i ON i.tenant_id = t.tenant_id
             AND i.transaction_id = t.transaction_id
        WHERE t.tenant_id = %(tenant)s AND i.tenant_id = %(tenant)s
              AND i.product_id = %(product)s AND {WINDOW}{_stores(stores)}
        GROUP BY 1 ORDER BY 1
        """,
        {"tenant": tenant, "product": product_id, "start": first_week,
         "end": last_week + timedelta(days=6), "stores": stores},
    ).fetchall()  # fmt: skip


def category_days(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date,
    end: date,
    stores: list[str] | None,
    department: str | None,
    category: str | None,
) -> list[tuple]:
    """(day, revenue, units, None) of a department / category at `stores`, from line items."""
    filters = ""
    if department is not None:
        filters += " AND coalesce(p.department, '(unknown)') = %(department)s"
    if category is not None:
        filters += " AND coalesce(p.product_category, '(unknown)') = %(category)s"
    return conn.execute(
        f"""
        SELECT ({LOCAL})::date AS day, sum(i.sales_value), sum(i.quantity), NULL
        FROM transactions t
        JOIN transaction_items i ON i.tenant_id = t.tenant_id
             AND i.transaction_id = t.transaction_id
        LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.product_id = i.product_id
        WHERE t.tenant_id = %(tenant)s AND {WINDOW}{_stores(stores)}{filters}
        GROUP BY 1 ORDER BY 1
        """,
        {"tenant": tenant, "start": start, "end": end, "stores": stores,
         "department": department, "category": category},
    ).fetchall()  # fmt: skip


# ------------------------------------------------------------------ bench baselines (raw scans)


def realtime(
    conn: psycopg.Connection, *, tenant: str, day: date, stores: list[str] | None
) -> list[tuple]:
    """Per (day, hour): revenue, units, baskets, discounts for `day` and a week earlier."""
    return conn.execute(
        f"""
        SELECT ({LOCAL})::date, extract(hour FROM {LOCAL})::int, sum(t.total_sales),
               sum((SELECT sum(quantity) FROM transaction_items i
                    WHERE i.tenant_id = t.tenant_id AND i.transaction_id = t.transaction_id)),
               count(*), sum(t.total_discount)
        FROM transactions t
        WHERE t.tenant_id = %(tenant)s
          AND (({LOCAL})::date = %(day)s OR ({LOCAL})::date = %(prev)s){_stores(stores)}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        {"tenant": tenant, "day": day, "prev": day - timedelta(days=7), "stores": stores},
    ).fetchall()


def store_totals(
    conn: psycopg.Connection, *, tenant: str, start: date, end: date, stores: list[str] | None
) -> list[tuple]:
    """Per store: revenue, units, baskets in [start, end] (line items joined)."""
    return conn.execute(
        f"""
        SELECT t.store_id, sum(i.sales_value), sum(i.quantity), count(DISTINCT t.transaction_id)
        FROM transactions t
        JOIN transaction_items i ON i.tenant_id = t.tenant_id
             AND i.transaction_id = t.transaction_id
        WHERE t.tenant_id = %(tenant)s AND {WINDOW}{_stores(stores)}
        GROUP BY 1 ORDER BY 2 DESC
        """,
        {"tenant": tenant, "start": start, "end": end, "stores": stores},
    ).fetchall()


def daily_totals(
    conn: psycopg.Connection, *, tenant: str, start: date, end: date, stores: list[str] | None
) -> list[tuple]:
    """Per business day: revenue, units, baskets (line items joined)."""
    return conn.execute(
        f"""
        SELECT ({LOCAL})::date, sum(i.sales_value), sum(i.quantity),
               count(DISTINCT t.transaction_id)
        FROM transactions t
        JOIN transaction_items i ON i.tenant_id = t.tenant_id
             AND i.transaction_id = t.transaction_id
        WHERE t.tenant_id = %(tenant)s AND {WINDOW}{_stores(stores)}
        GROUP BY 1 ORDER BY 1
        """,
        {"tenant": tenant, "start": start, "end": end, "stores": stores},
    ).fetchall()


def category_pairs(
    conn: psycopg.Connection, *, tenant: str, start: date, end: date, min_count: int
) -> list[tuple]:
    """Pairs of categories bought together in at least `min_count` baskets (SQL self-join)."""
    return conn.execute(
        f"""
        WITH bc AS MATERIALIZED (
            SELECT DISTINCT t.transaction_id, coalesce(p.product_category, '(unknown)') AS c
            FROM transactions t
            JOIN transaction_items i ON i.tenant_id = t.tenant_id
                 AND i.transaction_id = t.transaction_id
            LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.product_id = i.product_id
            WHERE t.tenant_id = %(tenant)s AND {WINDOW}
        ), frequent AS (
            SELECT c FROM bc GROUP BY c HAVING count(*) >= %(min)s
        ), f AS (
            SELECT bc.* FROM bc JOIN frequent USING (c)
        )
        SELECT a.c, b.c, count(*) FROM f a JOIN f b
          ON a.transaction_id = b.transaction_id AND a.c < b.c
        GROUP BY 1, 2 HAVING count(*) >= %(min)s
        """,
        {"tenant": tenant, "start": start, "end": end, "min": min_count},
    ).fetchall()
