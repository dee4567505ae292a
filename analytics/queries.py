"""Analytics reads from the rollup tables (analytics/rollups.py).

Keyword-only repository functions taking a psycopg connection; every query carries `tenant_id`
and, where the caller is limited to some stores, `stores` (None: all of the tenant's). Two
answers have no rollup at their grain when a store filter applies — a product's performance
and a department/category trend at some stores (a store × product grain does not aggregate
this data, DESIGN §6) — and are computed from the base tables (`analytics/raw.py`) instead.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from analytics import raw


def _store_clause(stores: list[str] | None, column: str = "store_id") -> str:
    return "" if stores is None else f" AND {column} = ANY(%(stores)s)"


def latest_day(conn: psycopg.Connection, *, tenant: str) -> date | None:
    """The tenant's latest business day with sales (None: no sales yet)."""
    row = conn.execute("SELECT max(day) FROM sales_daily WHERE tenant_id = %s", (tenant,))
    return row.fetchone()[0]


def day_bounds(conn: psycopg.Connection, *, tenant: str) -> tuple[date, date] | None:
    """The tenant's first and latest business days with sales."""
    row = conn.execute(
        "SELECT min(day), max(day) FROM sales_daily WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    return None if row[0] is None else (row[0], row[1])


def realtime(
    conn: psycopg.Connection,
    *,
    tenant: str,
    day: date,
    by: str,
    stores: list[str] | None,
    until_hour: int | None = None,
) -> dict[date, list[tuple]]:
    """Per (day, hour or store) revenue, units, baskets, discounts for `day` and a week earlier.

    `until_hour`: count hours 0..until_hour only (running totals up to that hour)."""
    key = "hour" if by == "hour" else "store_id"
    hours = "" if until_hour is None else " AND hour <= %(until)s"
    rows = conn.execute(
        f"SELECT day, {key}, sum(revenue), sum(units), sum(baskets), sum(discounts)"
        " FROM sales_hourly WHERE tenant_id = %(tenant)s AND day = ANY(%(days)s)"
        f"{_store_clause(stores)}{hours} GROUP BY day, {key} ORDER BY day, {key}",
        {"tenant": tenant, "days": [day, day - timedelta(days=7)], "stores": stores,
         "until": until_hour},
    ).fetchall()  # fmt: skip
    out: dict[date, list[tuple]] = {day: [], day - timedelta(days=7): []}
    for d, k, *values in rows:
        out[d].append((k, *values))
    return out


def product(conn: psycopg.Connection, *, tenant: str, product_id: int) -> dict[str, Any] | None:
    """The product's catalog attributes (None: not in the tenant's catalog)."""
    row = conn.execute(
        "SELECT department, product_category, product_type, brand, package_size FROM products"
        " WHERE tenant_id = %s AND product_id = %s",
        (tenant, product_id),
    ).fetchone()
    if row is None:
        return None
    keys = ("department", "category", "productType", "brand", "packageSize")
    return dict(zip(keys, row, strict=True))


def product_weeks(
    conn: psycopg.Connection,
    *,
    tenant: str,
    product_id: int,
    first_week: date,
    last_week: date,
    stores: list[str] | None,
) -> list[tuple]:
    """(week, revenue, units, lines, discounts) of one product, weeks with sales only."""
    if stores is not None:
        return raw.product_weeks(
            conn, tenant=tenant, product_id=product_id, first_week=first_week,
            last_week=last_week, stores=stores,
        )  # fmt: skip
    return conn.execute(
        "SELECT week, revenue, units, lines, discounts FROM product_weekly"
        " WHERE tenant_id = %s AND product_id = %s AND week BETWEEN %s AND %s ORDER BY week",
        (tenant, product_id, first_week, last_week),
    ).fetchall()


def on_hand(
    conn: psycopg.Connection, *, tenant: str, product_id: int, stores: list[str] | None
) -> tuple[int, int] | None:
    """(units on hand, stores reporting) from the `inventory` table (None: no rows)."""
    row = conn.execute(
        "SELECT sum(on_hand), count(*) FROM inventory WHERE tenant_id = %(tenant)s"
        f" AND product_id = %(product)s{_store_clause(stores)}",
        {"tenant": tenant, "product": product_id, "stores": stores},
    ).fetchone()
    return None if not row[1] else (int(row[0]), int(row[1]))


COMPARISON_SORTS = {
    "revenue": "revenue",
    "baskets": "baskets",
    "units": "units",
    "basketSize": "basket_size",
    "growth": "growth",
    "storeId": "store_id",
}


def store_comparison(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date,
    end: date,
    stores: list[str] | None,
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[tuple]]:
    """Stores with sales in [start, end]: (total, page of (store_id, revenue, units, baskets,
    discounts, basket_size, previous_revenue, growth)); the previous period has the same
    length and ends the day before `start`. `sort` is a key of COMPARISON_SORTS."""
    span = (end - start).days + 1
    order = COMPARISON_SORTS[sort]
    direction = "DESC" if descending else "ASC"
    rows = conn.execute(
        f"""
        WITH cur AS (
            SELECT store_id, sum(revenue) AS revenue, sum(units) AS units,
                   sum(baskets) AS baskets, sum(discounts) AS discounts
            FROM sales_daily
            WHERE tenant_id = %(tenant)s AND day BETWEEN %(start)s AND %(end)s
                  {_store_clause(stores)}
            GROUP BY store_id
        ), prev AS (
            SELECT store_id, sum(revenue) AS revenue FROM sales_daily
            WHERE tenant_id = %(tenant)s AND day BETWEEN %(pstart)s AND %(pend)s
                  {_store_clause(stores)}
            GROUP BY store_id
        ), joined AS (
            SELECT c.store_id, c.revenue, c.units, c.baskets, c.discounts,
                   round(c.revenue / nullif(c.baskets, 0), 2) AS basket_size,
                   p.revenue AS prev_revenue,
                   (c.revenue - p.revenue) / nullif(p.revenue, 0) AS growth
            FROM cur c LEFT JOIN prev p USING (store_id)
        )
        SELECT count(*) OVER (), store_id, revenue, units, baskets, discounts, basket_size,
               prev_revenue, growth
        FROM joined
        ORDER BY {order} {direction} NULLS LAST, store_id
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {
            "tenant": tenant, "start": start, "end": end, "stores": stores,
            "pstart": start - timedelta(days=span), "pend": start - timedelta(days=1),
            "limit": limit, "offset": offset,
        },
    ).fetchall()  # fmt: skip
    if not rows and offset:
        total = conn.execute(
            "SELECT count(DISTINCT store_id) FROM sales_daily WHERE tenant_id = %(tenant)s"
            f" AND day BETWEEN %(start)s AND %(end)s{_store_clause(stores)}",
            {"tenant": tenant, "start": start, "end": end, "stores": stores},
        ).fetchone()[0]
        return int(total), []
    return (int(rows[0][0]) if rows else 0), [r[1:] for r in rows]


def daily_totals(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date,
    end: date,
    stores: list[str] | None,
    department: str | None = None,
    category: str | None = None,
) -> list[tuple]:
    """(day, revenue, units, baskets or None) per business day with sales in [start, end].

    Baskets are only known without a department/category filter (a basket spans several)."""
    params = {"tenant": tenant, "start": start, "end": end, "stores": stores,
              "department": department, "category": category}  # fmt: skip
    if department is None and category is None:
        return conn.execute(
            "SELECT day, sum(revenue), sum(units), sum(baskets) FROM sales_daily"
            " WHERE tenant_id = %(tenant)s AND day BETWEEN %(start)s AND %(end)s"
            f"{_store_clause(stores)} GROUP BY day ORDER BY day",
            params,
        ).fetchall()
    if stores is not None:
        return raw.category_days(conn, **params)
    filters = "".join(
        f" AND {col} = %({name})s"
        for col, name, value in (
            ("department", "department", department),
            ("product_category", "category", category),
        )
        if value is not None
    )
    return conn.execute(
        "SELECT day, sum(revenue), sum(units), NULL FROM category_daily"
        f" WHERE tenant_id = %(tenant)s AND day BETWEEN %(start)s AND %(end)s{filters}"
        " GROUP BY day ORDER BY day",
        params,
    ).fetchall()


def category_known(
    conn: psycopg.Connection, *, tenant: str, department: str | None, category: str | None
) -> bool:
    """True when the tenant's catalog has the department / category (as the rollups name them)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM analytics_categories WHERE tenant_id = %(tenant)s"
        " AND (%(department)s::text IS NULL OR department = %(department)s)"
        " AND (%(category)s::text IS NULL OR product_category = %(category)s))",
        {"tenant": tenant, "department": department, "category": category},
    ).fetchone()
    return bool(row[0])


def basket_sets(
    conn: psycopg.Connection, *, tenant: str, start: date, end: date, stores: list[str] | None
) -> tuple[int, bytes, bytes]:
    """(baskets, sizes, category ids) of the baskets in [start, end] (see rollups.basket_sets)."""
    rows = conn.execute(
        "SELECT baskets, sizes, items FROM basket_sets WHERE tenant_id = %(tenant)s"
        f" AND day BETWEEN %(start)s AND %(end)s{_store_clause(stores)}",
        {"tenant": tenant, "start": start, "end": end, "stores": stores},
        binary=True,
    ).fetchall()
    n = sum(r[0] for r in rows)
    return n, b"".join(r[1] for r in rows), b"".join(r[2] for r in rows)


def categories(conn: psycopg.Connection, *, tenant: str) -> dict[int, tuple[str, str]]:
    """category id → (department, category) of basket_sets."""
    rows = conn.execute(
        "SELECT category_id, department, product_category FROM analytics_categories"
        " WHERE tenant_id = %s",
        (tenant,),
    ).fetchall()
    return {int(i): (d, c) for i, d, c in rows}
