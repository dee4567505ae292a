"""Sales summary and store comparison: queries on `transactions` / `transaction_items`.

Revenue is what customers paid (`sales_value`); discounts are retail + coupon + coupon-match
discounts; units are line quantities; a basket is a transaction. Periods are UTC days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from reports.document import Chart, Column, Kpi, Section, Table
from reports.params import Period, SalesSummaryParams, StoreComparisonParams

Step = Callable[[str], None]
DEFINITIONS = (
    "Revenue is what customers paid; discounts are retail, coupon and coupon-match discounts; "
    "a basket is one transaction; units are line quantities. Days are UTC calendar days."
)
_FILTER = """
    t.tenant_id = %(tenant)s AND t.transaction_timestamp >= %(lower)s
    AND t.transaction_timestamp < %(upper)s
    AND (%(stores)s::text[] IS NULL OR t.store_id = ANY(%(stores)s::text[]))
"""
_ITEMS = """
    FROM transaction_items i
    JOIN transactions t ON t.tenant_id = i.tenant_id AND t.transaction_id = i.transaction_id
    WHERE i.tenant_id = %(tenant)s AND """


def data_span(conn: psycopg.Connection, *, tenant: str) -> tuple[date, date] | None:
    """First and last UTC day with a transaction for the tenant (None: no transactions)."""
    row = conn.execute(
        "SELECT (min(transaction_timestamp) AT TIME ZONE 'UTC')::date,"
        " (max(transaction_timestamp) AT TIME ZONE 'UTC')::date"
        " FROM transactions WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def _args(tenant: str, period: Period, stores: list[str] | None, **extra: Any) -> dict[str, Any]:
    return {"tenant": tenant, "lower": period.lower, "upper": period.upper, "stores": stores,
            **extra}  # fmt: skip


def _floats(row: tuple) -> list[Any]:
    """Numeric (Decimal) columns as floats: the document holds plain JSON-able values."""
    return [float(v) if isinstance(v, Decimal) else v for v in row]


def sales_totals(conn: psycopg.Connection, *, tenant: str, period: Period,
                 stores: list[str] | None) -> dict[str, float]:  # fmt: skip
    """Revenue, discounts, units, baskets and customers of the period."""
    row = conn.execute(
        "SELECT coalesce(sum(i.sales_value), 0), coalesce(sum(i.retail_disc + i.coupon_disc"
        " + i.coupon_match_disc), 0), coalesce(sum(i.quantity), 0),"
        " count(DISTINCT t.transaction_id), count(DISTINCT t.customer_id)" + _ITEMS + _FILTER,
        _args(tenant, period, stores),
    ).fetchone()
    keys = ("revenue", "discounts", "units", "baskets", "customers")
    return dict(zip(keys, map(float, row), strict=True))


def weekly_sales(conn: psycopg.Connection, *, tenant: str, period: Period,
                 stores: list[str] | None) -> list[list[Any]]:  # fmt: skip
    """Per week (Monday start): week start, revenue, units, baskets, customers, discounts."""
    rows = conn.execute(
        "SELECT date_trunc('week', t.transaction_timestamp AT TIME ZONE 'UTC')::date AS wk,"
        " sum(i.sales_value), sum(i.quantity), count(DISTINCT t.transaction_id),"
        " count(DISTINCT t.customer_id),"
        " sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc)"
        + _ITEMS
        + _FILTER
        + " GROUP BY wk ORDER BY wk",
        _args(tenant, period, stores),
    ).fetchall()
    return [_floats(r) for r in rows]


def department_sales(conn: psycopg.Connection, *, tenant: str, period: Period,
                     stores: list[str] | None) -> list[list[Any]]:  # fmt: skip
    """Per department: revenue, units, baskets, discounts (largest revenue first)."""
    rows = conn.execute(
        "SELECT coalesce(nullif(p.department, ''), '(unknown)') AS dept, sum(i.sales_value),"
        " sum(i.quantity), count(DISTINCT t.transaction_id),"
        " sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc)"
        " FROM transaction_items i"
        " JOIN transactions t ON t.tenant_id = i.tenant_id AND t.transaction_id = i.transaction_id"
        " LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.product_id = i.product_id"
        " WHERE i.tenant_id = %(tenant)s AND " + _FILTER + " GROUP BY dept ORDER BY 2 DESC, 1",
        _args(tenant, period, stores),
    ).fetchall()
    return [_floats(r) for r in rows]


def top_products(conn: psycopg.Connection, *, tenant: str, period: Period,
                 stores: list[str] | None, limit: int) -> list[list[Any]]:  # fmt: skip
    """The best-selling products by revenue with their catalog attributes."""
    rows = conn.execute(
        "WITH s AS (SELECT i.product_id, sum(i.sales_value) AS revenue, sum(i.quantity) AS units,"
        " count(DISTINCT t.transaction_id) AS baskets"
        + _ITEMS
        + _FILTER
        + " GROUP BY i.product_id ORDER BY revenue DESC, i.product_id"
        " LIMIT %(limit)s)"
        " SELECT s.product_id, p.department, p.product_category, p.brand, s.revenue, s.units,"
        " s.baskets FROM s LEFT JOIN products p"
        " ON p.tenant_id = %(tenant)s AND p.product_id = s.product_id"
        " ORDER BY s.revenue DESC, s.product_id",
        _args(tenant, period, stores, limit=limit),
    ).fetchall()
    return [_floats(r) for r in rows]


def sales_summary(conn: psycopg.Connection, *, tenant: str, params: SalesSummaryParams,
                  period: Period, step: Step) -> list[Section]:  # fmt: skip
    """Sections of the sales summary: KPIs, by week, by department, top products."""
    stores = params.stores
    step("totals")
    totals = sales_totals(conn, tenant=tenant, period=period, stores=stores)
    if not totals["baskets"]:
        return [Section(heading="Overview", notes=[f"No sales from {period}.", DEFINITIONS])]
    gross = totals["revenue"] + totals["discounts"]
    overview = Section(
        heading="Overview",
        notes=[DEFINITIONS],
        kpis=[
            Kpi(label="Revenue", value=round(totals["revenue"], 2), kind="money"),
            Kpi(label="Units", value=int(totals["units"]), kind="int"),
            Kpi(label="Baskets", value=int(totals["baskets"]), kind="int"),
            Kpi(label="Customers", value=int(totals["customers"]), kind="int"),
            Kpi(
                label="Average basket",
                value=round(totals["revenue"] / totals["baskets"], 2),
                kind="money",
            ),  # fmt: skip
            Kpi(label="Discounts", value=round(totals["discounts"], 2), kind="money"),
            Kpi(
                label="Discount rate",
                value=totals["discounts"] / gross if gross else None,
                kind="pct",
            ),  # fmt: skip
        ],
    )
    step("weekly sales")
    weeks = weekly_sales(conn, tenant=tenant, period=period, stores=stores)
    weekly = Table(
        name="weekly_sales",
        title="Sales by week",
        main=True,
        columns=[
            Column(key="week_start", label="Week starting", kind="date"),
            Column(key="revenue", label="Revenue", kind="money"),
            Column(key="units", label="Units", kind="int"),
            Column(key="baskets", label="Baskets", kind="int"),
            Column(key="customers", label="Customers", kind="int"),
            Column(key="discounts", label="Discounts", kind="money"),
        ],
        rows=weeks,
    )
    trend = Chart(
        title="Revenue and discounts by week",
        kind="line",
        x=[w[0].isoformat() for w in weeks],
        series={"Revenue": [w[1] for w in weeks], "Discounts": [w[5] for w in weeks]},
        x_label="week starting",
        y_label="amount",
    )
    step("departments")
    depts = department_sales(conn, tenant=tenant, period=period, stores=stores)
    by_dept = Table(
        name="departments",
        title="Sales by department",
        columns=[
            Column(key="department", label="Department"),
            Column(key="revenue", label="Revenue", kind="money"),
            Column(key="revenue_share", label="Share of revenue", kind="pct"),
            Column(key="units", label="Units", kind="int"),
            Column(key="baskets", label="Baskets", kind="int"),
            Column(key="discounts", label="Discounts", kind="money"),
        ],
        rows=[
            [d[0], d[1], d[1] / totals["revenue"] if totals["revenue"] else None, *d[2:]]
            for d in depts
        ],  # fmt: skip
    )
    dept_chart = Chart(
        title="Revenue by department (top 12)",
        kind="barh",
        x=[d[0] for d in depts[:12]],
        series={"Revenue": [d[1] for d in depts[:12]]},
        y_label="revenue",
    )
    step("top products")
    top = top_products(conn, tenant=tenant, period=period, stores=stores, limit=params.top_n)
    products = Table(
        name="top_products",
        title=f"Top {params.top_n} products by revenue",
        columns=[
            Column(key="product_id", label="Product"),
            Column(key="department", label="Department"),
            Column(key="category", label="Category"),
            Column(key="brand", label="Brand"),
            Column(key="revenue", label="Revenue", kind="money"),
            Column(key="units", label="Units", kind="int"),
            Column(key="baskets", label="Baskets", kind="int"),
        ],
        rows=top,
    )
    return [
        overview,
        Section(
            heading="By week",
            notes=["Weeks start on Monday; the first and the last week may be partial."],
            charts=[trend],
            tables=[weekly],
        ),
        Section(heading="By department", charts=[dept_chart], tables=[by_dept]),
        Section(heading="Top products", tables=[products]),
    ]


RANK_LABELS = {
    "revenue": "revenue",
    "baskets": "baskets",
    "customers": "customers",
    "avg_basket": "average basket",
    "units": "units",
}


def store_kpis(conn: psycopg.Connection, *, tenant: str, period: Period,
               stores: list[str] | None) -> list[list[Any]]:  # fmt: skip
    """Per store: name, revenue, units, baskets, customers, average basket, discount rate,
    active days."""
    rows = conn.execute(
        "WITH s AS (SELECT t.store_id, sum(i.sales_value) AS revenue, sum(i.quantity) AS units,"
        " count(DISTINCT t.transaction_id) AS baskets, count(DISTINCT t.customer_id) AS customers,"
        " sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc) AS discounts,"
        " count(DISTINCT (t.transaction_timestamp AT TIME ZONE 'UTC')::date) AS days"
        + _ITEMS
        + _FILTER
        + " GROUP BY t.store_id)"
        " SELECT s.store_id, coalesce(st.name, 'Store ' || s.store_id), s.revenue, s.units,"
        " s.baskets, s.customers, s.revenue / nullif(s.baskets, 0),"
        " s.discounts / nullif(s.revenue + s.discounts, 0), s.days"
        " FROM s LEFT JOIN stores st ON st.tenant_id = %(tenant)s AND st.store_id = s.store_id",
        _args(tenant, period, stores),
    ).fetchall()
    return [_floats(r) for r in rows]


def store_comparison(conn: psycopg.Connection, *, tenant: str, params: StoreComparisonParams,
                     period: Period, step: Step) -> list[Section]:  # fmt: skip
    """Sections of the store comparison: KPIs per store, ranked, with a chart."""
    step("store KPIs")
    rows = store_kpis(conn, tenant=tenant, period=period, stores=params.stores)
    if not rows:
        return [Section(heading="Stores", notes=[f"No sales from {period}.", DEFINITIONS])]
    index = {"revenue": 2, "units": 3, "baskets": 4, "customers": 5, "avg_basket": 6}
    key = index[params.rank_by]
    rows.sort(key=lambda r: (-(r[key] or 0), r[0]))
    ranked = [[rank, *r] for rank, r in enumerate(rows, start=1)]
    total = sum(r[2] for r in rows)
    revenues = sorted(r[2] for r in rows)
    median = revenues[len(revenues) // 2] if len(revenues) % 2 else (
        (revenues[len(revenues) // 2 - 1] + revenues[len(revenues) // 2]) / 2)  # fmt: skip
    label = RANK_LABELS[params.rank_by]
    table = Table(
        name="stores",
        title=f"Stores ranked by {label}",
        main=True,
        columns=[
            Column(key="rank", label="Rank", kind="int"),
            Column(key="store_id", label="Store"),
            Column(key="name", label="Name"),
            Column(key="revenue", label="Revenue", kind="money"),
            Column(key="units", label="Units", kind="int"),
            Column(key="baskets", label="Baskets", kind="int"),
            Column(key="customers", label="Customers", kind="int"),
            Column(key="avg_basket", label="Average basket", kind="money"),
            Column(key="discount_rate", label="Discount rate", kind="pct"),
            Column(key="active_days", label="Days with sales", kind="int"),
        ],
        rows=ranked,
    )
    top = ranked[:15]
    chart = Chart(
        title=f"Top {len(top)} stores by {label}",
        kind="barh",
        x=[r[2] for r in top],
        series={label.capitalize(): [r[key + 1] for r in top]},
        y_label=label,
    )
    return [
        Section(
            heading="Stores",
            notes=[DEFINITIONS, f"{len(rows)} stores with sales from {period}."],
            kpis=[
                Kpi(label="Stores", value=len(rows), kind="int"),
                Kpi(label="Revenue, all stores", value=round(total, 2), kind="money"),
                Kpi(label="Median store revenue", value=round(median, 2), kind="money"),
                Kpi(
                    label=f"Top store ({ranked[0][1]}) share of revenue",
                    value=ranked[0][3] / total if total else None,
                    kind="pct",
                ),  # fmt: skip
            ],
            charts=[chart],
            tables=[table],
        )
    ]
