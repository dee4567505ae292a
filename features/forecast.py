"""Demand-forecast features: store x product x week, computed inside PostgreSQL.

Tables (docs/forecast-features.md):
- `calendar_weeks`: one row per retailer week (the `week` column of `transactions`) with its
  bounds, ISO week and US federal holidays; built here in Python from the data.
- `store_product_weekly`: one row per (store, product, week) **with sales**; a missing week means
  0 units (readers zero-fill). `event_timestamp` is the end of the week, so a row becomes visible
  to point-in-time joins only once its week is over; `units_lag_k` is the same pair's units k
  weeks earlier (0 without a row), so a row carries 16 weeks of history.
- `product_attributes`: static descriptors of the forecast's products, stamped with the tenant's
  first transaction so every training row finds them.
- `store_attributes`: one row per store and week from the store's first week on, summarising
  only the weeks up to and including that one (no future leaks into a training row).

Week bounds: Complete Journey weeks run Monday..Sunday in US Eastern time (the timestamps are
UTC; week 2 starts 2017-01-02 05:00 UTC, week 12 at 04:00 UTC after the DST change). The
weekday and the numbering are read from the data: each week's first sale gives a candidate
"week 0" Monday (its local date minus 7 x week days); the most common candidate anchors every
week at local midnight, the tenant's first week starts at its first sale's local midnight (CJ
week 1 is the single day 2017-01-01), and every sale must fall inside its week's bounds.

Forecast universe (PROTOCOLS §1): merchandise only (not departments FUEL, MISCELLANEOUS, COUPON,
product_category 'COUPON/MISC ITEMS', products without a department or missing from `products`)
and line items with quantity > 0; baskets without a `week` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import psycopg
from psycopg import sql

from core.partitions import attach, has_own_partition, partition_name

WEEK_TIMEZONE = "America/New_York"
HISTORY_WEEKS = 16  # units plus units_lag_1..15
LAGS = range(1, HISTORY_WEEKS)
NON_MERCH_DEPARTMENTS = ("FUEL", "MISCELLANEOUS", "COUPON")
NON_MERCH_CATEGORIES = ("COUPON/MISC ITEMS",)
TABLES = ("calendar_weeks", "store_product_weekly", "product_attributes", "store_attributes")
WEEKLY = "store_product_weekly"

# Products of the forecast universe (the caller binds the tenant).
_MERCH = f"""
    SELECT product_id, department, product_category, product_type, brand
    FROM products
    WHERE tenant_id = %(tenant)s
      AND coalesce(department, '') NOT IN ('', {", ".join(f"'{d}'" for d in NON_MERCH_DEPARTMENTS)})
      AND coalesce(product_category, '') NOT IN ({", ".join(f"'{c}'" for c in NON_MERCH_CATEGORIES)})
"""

_WEEK_SPANS = """
SELECT week, min(transaction_timestamp), max(transaction_timestamp)
FROM transactions
WHERE tenant_id = %(tenant)s AND week IS NOT NULL
GROUP BY week
ORDER BY week
"""

# A lag is the units of the row exactly k weeks earlier. Weeks without sales have no row, so
# LAG(units, k) alone would be wrong; but rows are ordered by week, so the row k weeks earlier
# (if any) is at most k rows back: look at the previous 15 rows' (week, units) and pick the one
# whose week matches. All LAG() calls share one window, so this is one sort and one pass
# (a RANGE frame per lag took a pass each: 11 s of 25 on the full data).
_PREVIOUS = ",\n".join(
    f"           lag(week, {j}) OVER pair AS w{j}, lag(units, {j}) OVER pair AS u{j}" for j in LAGS
)
_LAG_COLUMNS = ",\n".join(
    f"       CASE l.week - {k} "
    + " ".join(f"WHEN l.w{j} THEN l.u{j}" for j in range(1, k + 1))
    + f" ELSE 0 END AS units_lag_{k}"
    for k in LAGS
)
_LAG_NAMES = ", ".join(f"units_lag_{k}" for k in LAGS)

_WEEKLY = f"""
INSERT INTO {{staged}} (
    tenant_id, store_id, product_id, week, event_timestamp, units, sales_value, shelf_price,
    discount_depth, display, mailer, week_of_year, holiday, {_LAG_NAMES}
)
WITH merch AS ({_MERCH}),
weekly AS (
    SELECT t.store_id, i.product_id, t.week::bigint AS week,
           sum(i.quantity)::bigint AS units,
           sum(i.sales_value) AS sales_value,
           avg(i.unit_price) AS shelf_price,
           sum(i.retail_disc) AS retail_disc
    FROM transaction_items i
    JOIN transactions t ON t.tenant_id = i.tenant_id AND t.transaction_id = i.transaction_id
    JOIN merch m ON m.product_id = i.product_id
    WHERE i.tenant_id = %(tenant)s AND t.tenant_id = %(tenant)s
      AND i.quantity > 0 AND t.week IS NOT NULL
    GROUP BY 1, 2, 3
),
previous AS (
    SELECT weekly.*,
{_PREVIOUS}
    FROM weekly
    WINDOW pair AS (PARTITION BY store_id, product_id ORDER BY week)
)
SELECT %(tenant)s AS tenant_id, l.store_id, l.product_id, l.week,
       c.week_end AS event_timestamp,
       l.units,
       l.sales_value::float8 AS sales_value,
       l.shelf_price::float8 AS shelf_price,
       coalesce(l.retail_disc / nullif(l.sales_value + l.retail_disc, 0), 0)::float8
           AS discount_depth,
       (coalesce(p.display_location, '0') <> '0')::int::bigint AS display,
       (coalesce(p.mailer_location, '0') <> '0')::int::bigint AS mailer,
       c.week_of_year::bigint AS week_of_year,
       c.holiday_count::bigint AS holiday,
{_LAG_COLUMNS}
FROM previous l
JOIN calendar_weeks c ON c.tenant_id = %(tenant)s AND c.week = l.week
LEFT JOIN promotion_placements p
  ON p.tenant_id = %(tenant)s AND p.store_id = l.store_id AND p.product_id = l.product_id
 AND p.week = l.week
"""

_PRODUCTS = f"""
INSERT INTO product_attributes (
    tenant_id, product_id, event_timestamp, department, product_category, product_type, brand
)
SELECT %(tenant)s, product_id, %(first_sale)s, department, product_category, product_type, brand
FROM ({_MERCH}) merch
"""

# Weeks without baskets count in weekly_baskets (as 0); products_sold counts distinct products
# of the forecast universe sold at the store so far; basket figures use whole baskets.
_STORES = """
INSERT INTO store_attributes (
    tenant_id, store_id, week, event_timestamp, weekly_baskets, mean_basket_value, products_sold,
    first_week, last_week
)
WITH baskets AS (
    SELECT store_id, week::bigint AS week, count(*) AS n, sum(total_sales) AS sales
    FROM transactions
    WHERE tenant_id = %(tenant)s AND week IS NOT NULL
    GROUP BY 1, 2
),
opened AS (SELECT store_id, min(week) AS first_week FROM baskets GROUP BY 1),
new_products AS (
    SELECT store_id, first_week AS week, count(*) AS n
    FROM (
        SELECT store_id, product_id, min(week) AS first_week
        FROM {staged}
        WHERE tenant_id = %(tenant)s
        GROUP BY 1, 2
    ) firsts
    GROUP BY 1, 2
),
grid AS (
    SELECT o.store_id, o.first_week, c.week::bigint AS week, c.week_end
    FROM opened o
    JOIN calendar_weeks c ON c.tenant_id = %(tenant)s AND c.week >= o.first_week
),
running AS (
    SELECT g.store_id, g.week, g.week_end, g.first_week,
           sum(coalesce(b.n, 0)) OVER w AS baskets,
           sum(coalesce(b.sales, 0)) OVER w AS sales,
           sum(coalesce(np.n, 0)) OVER w AS products,
           max(b.week) OVER w AS last_week
    FROM grid g
    LEFT JOIN baskets b ON b.store_id = g.store_id AND b.week = g.week
    LEFT JOIN new_products np ON np.store_id = g.store_id AND np.week = g.week
    WINDOW w AS (PARTITION BY g.store_id ORDER BY g.week ROWS UNBOUNDED PRECEDING)
)
SELECT %(tenant)s, store_id, week, week_end,
       (baskets::float8 / (week - first_week + 1)),
       coalesce(sales / nullif(baskets, 0), 0)::float8,
       products, first_week, last_week
FROM running
"""


@dataclass(frozen=True)
class CalendarWeek:
    """One retailer week: [week_start, week_end) as aware datetimes, ISO week, holidays."""

    week: int
    week_start: datetime
    week_end: datetime
    week_of_year: int
    holiday_count: int
    holiday_names: str


def build_calendar(
    spans: list[tuple[int, datetime, datetime]], *, timezone: str = WEEK_TIMEZONE
) -> list[CalendarWeek]:
    """Calendar rows for every week from the first to the last in `spans` (week, first, last sale).

    Raises ValueError when a sale falls outside the bounds derived for its week (the data does
    not follow a weekly cadence in `timezone`).
    """
    if not spans:
        return []
    tz = ZoneInfo(timezone)
    local_day = {w: first.astimezone(tz).date() for w, first, _ in spans}
    # Week w spans [anchor + 7w, anchor + 7(w + 1)): every anchor in [lo, hi] puts each
    # week's sales inside its week. Full weeks of data pin it to one day; sparse data
    # leaves a range, and the latest anchor is taken. An empty range raises below.
    hi = min(day - timedelta(days=7 * w) for w, day in local_day.items())
    lo = max(last.astimezone(tz).date() - timedelta(days=7 * w + 6) for w, _, last in spans)
    anchor = hi if lo <= hi else lo
    first_week, last_week = spans[0][0], spans[-1][0]

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=tz)

    us = holidays.country_holidays(
        "US", years=range(anchor.year, anchor.year + last_week // 52 + 2)
    )
    rows = []
    for week in range(first_week, last_week + 1):
        start_day = anchor + timedelta(days=7 * week)
        if week == first_week:
            start_day = max(start_day, local_day[week])
        end_day = anchor + timedelta(days=7 * (week + 1))
        names = [
            us[start_day + timedelta(days=d)]
            for d in range((end_day - start_day).days)
            if start_day + timedelta(days=d) in us
        ]
        # A holiday and its observed day in the same week are one holiday.
        distinct = {n.replace(" (observed)", "") for n in names}
        rows.append(
            CalendarWeek(
                week=week,
                week_start=midnight(start_day),
                week_end=midnight(end_day),
                week_of_year=(end_day - timedelta(days=1)).isocalendar().week,
                holiday_count=len(distinct),
                holiday_names="; ".join(names),
            )
        )
    bounds = {r.week: r for r in rows}
    for week, first, last in spans:
        row = bounds[week]
        if not (row.week_start <= first and last < row.week_end):
            raise ValueError(
                f"week {week}: sales from {first} to {last} fall outside its derived bounds"
                f" [{row.week_start}, {row.week_end}) in {timezone}"
            )
    return rows


def _write_calendar(conn: psycopg.Connection, tenant: str, rows: list[CalendarWeek]) -> int:
    conn.execute("DELETE FROM calendar_weeks WHERE tenant_id = %s", (tenant,))
    columns = "tenant_id, week, week_start, week_end, week_of_year, holiday_count, holiday_names"
    with conn.cursor() as cur, cur.copy(f"COPY calendar_weeks ({columns}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(
                (tenant, r.week, r.week_start, r.week_end, r.week_of_year, r.holiday_count,
                 r.holiday_names)
            )  # fmt: skip
    return len(rows)


def _staged_table(conn: psycopg.Connection, tenant: str) -> str:
    """An empty table shaped like store_product_weekly, to fill before it becomes a partition."""
    name = "spw_staged_" + partition_name(WEEKLY, tenant)[-8:]
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            sql.Identifier(name), sql.Identifier(WEEKLY)
        )
    )
    return name


def _replace_partition(conn: psycopg.Connection, tenant: str, staged: str | None) -> None:
    """Drop the tenant's rows of store_product_weekly; `staged` (if any) becomes its partition."""
    name = partition_name(WEEKLY, tenant)
    # Rows written for the tenant without a partition of its own would block the attach.
    conn.execute(f"DELETE FROM {WEEKLY}_default WHERE tenant_id = %s", (tenant,))
    if has_own_partition(conn, WEEKLY, tenant):
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    if staged is not None:
        rename = sql.SQL("ALTER TABLE {} RENAME TO {}")
        conn.execute(rename.format(sql.Identifier(staged), sql.Identifier(name)))
        attach(conn, WEEKLY, tenant)


def compute_forecast_features(conn: psycopg.Connection, *, tenant: str) -> dict[str, int]:
    """Rebuild the tenant's forecast tables in one transaction; returns rows written per table.

    The tenant's previous rows are replaced (re-running is idempotent); other tenants' rows are
    not touched. store_product_weekly is partitioned by tenant: the new rows go into a fresh
    table that replaces the tenant's partition at the end (inserting 1.3M rows beside the
    deleted ones spent 11 s on unique checks against them; a fresh table and one index build
    take a third of that), and readers of other tenants are blocked only for the swap.
    """
    params: dict[str, object] = {"tenant": tenant}
    counts = dict.fromkeys(TABLES, 0)
    with conn.transaction():
        # One writer per tenant at a time.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"forecast:{tenant}",))
        for table in ("calendar_weeks", "product_attributes", "store_attributes"):
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = %(tenant)s", params)
        spans = conn.execute(_WEEK_SPANS, params).fetchall()
        if not spans:
            _replace_partition(conn, tenant, None)
            return counts
        counts["calendar_weeks"] = _write_calendar(conn, tenant, build_calendar(spans))
        conn.execute("ANALYZE calendar_weeks")
        params["first_sale"] = min(first for _, first, _ in spans)
        # The per-pair window sort spills to disk at the default 4 MB on the full data.
        conn.execute("SET LOCAL work_mem = '256MB'")
        # These statements read whole tenants; right after a bulk load the planner may lack
        # statistics and pick per-row index probes (1.4M of them, seconds per join).
        conn.execute("SET LOCAL enable_nestloop = off")
        staged = _staged_table(conn, tenant)
        target = {"staged": sql.Identifier(staged)}
        weekly = sql.SQL(_WEEKLY).format(**target)
        counts["store_product_weekly"] = conn.execute(weekly, params).rowcount
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(staged)))
        counts["product_attributes"] = conn.execute(_PRODUCTS, params).rowcount
        stores = sql.SQL(_STORES).format(**target)
        counts["store_attributes"] = conn.execute(stores, params).rowcount
        _replace_partition(conn, tenant, staged)
        # Fresh statistics: without them Feast's point-in-time joins plan nested loops.
        for table in TABLES[1:]:
            conn.execute(f"ANALYZE {table}")
        return counts


def forecast_time_range(
    conn: psycopg.Connection, tenant: str
) -> tuple[datetime | None, datetime | None]:
    """(oldest, newest) `event_timestamp` in store_product_weekly for `tenant`; (None, None) if
    it has no rows."""
    row = conn.execute(
        "SELECT min(event_timestamp), max(event_timestamp) FROM store_product_weekly"
        " WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)
