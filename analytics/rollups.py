"""Rollup tables at each analytics query's grain, refreshed from the warehouse.

Grains (chosen because they aggregate Complete Journey's 1.47M line items, DESIGN §6):
`sales_hourly` store × day × hour (126k rows), `sales_daily` store × day (38.5k),
`product_weekly` product × week (595k), `category_daily` department × category × day (83k),
and `basket_sets` (per store × day, every basket's distinct category ids, packed for numpy) with
its id table `analytics_categories`. A store × product grain is deliberately absent: it barely
aggregates this data (1.34M rows at × week).

Days are business days, as in `store_daily_sales`: transaction time (UTC) − 5 h; weeks start on
the Monday of the business day; hours are business-local.

`refresh` runs inside the writer's transaction, so rollups change with the data or not at all.
Three ways, one set of statements (staged baskets → per basket × category → one insert per
table):

- delta (`add_baskets`): the writer staged exactly the baskets it inserted (`Landed.new_baskets`,
  core/events.py; re-deliveries it skipped are not among them). Only those baskets and their
  lines are read, and every table is upserted additively (`revenue = revenue + excluded.revenue`
  ...; `basket_sets` appends the baskets' packed sizes and ids — readers never depend on basket
  order, analytics/baskets.py). The one non-additive column, `sales_daily.customers`, counts a
  new basket's customer only when no other basket of that customer at that store-day exists
  (a probe of `ix_transactions_customer_ts` per basket). Cost follows the batch, not the days
  it touches: into the full Complete Journey tenant, a 5,000-basket stream batch took 0.8 s
  (recomputing its days: 1.7-2.0 s), 500 baskets 0.2 s (1.2-2.2 s), a 50k-line file import of
  households spanning both years 1.6 s (14-15 s). Exact as long as the rollups were exact
  before, which every writer keeps (all of them refresh in their transaction, one tenant at a
  time under an advisory lock); tests/integration/test_rollups_delta.py compares with rebuilds.
- window (`rebuild` with a `Window`): the writer did not say which baskets are new (a stream
  or POS batch mixing re-deliveries with new baskets; a tenant's first file import, where this
  was faster than a delta of everything). The business days `landed` touched (its
  UTC days and the day before, since a UTC day's first hours belong to the previous business
  day) are deleted and recomputed from the base tables, for the stores it touched in the
  store-grained tables and for every store in the tenant-wide ones (`product_weekly`: whole
  weeks). A re-delivered batch changes nothing.
- full (`landed.everything`, a first or full load): the tenant's rows are rebuilt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from core.events import Landed
from features.store_daily import BUSINESS_DAY_HOURS

log = logging.getLogger(__name__)
UNKNOWN = "(unknown)"  # department / category of a product the catalog does not describe
MAX_CATEGORY_ID = 32767  # basket_sets packs ids as int16

# Business-local time of a basket.
LOCAL_TS = f"((t.transaction_timestamp AT TIME ZONE 'UTC') - interval '{BUSINESS_DAY_HOURS} hours')"

# `new_customer`: the basket's customer counts towards sales_daily.customers of its store-day
# (rebuilds: every basket, the count is distinct; deltas: see _FIRST_AT_STORE_DAY).
_STAGE = f"""
CREATE TEMP TABLE _rp_baskets ON COMMIT DROP AS
SELECT t.transaction_id, t.store_id, t.customer_id,
       ({LOCAL_TS})::date AS day, extract(hour FROM {LOCAL_TS})::smallint AS hour,
       ({LOCAL_TS})::date - (extract(isodow FROM {LOCAL_TS})::int - 1) AS week,
       t.total_sales, t.total_discount, t.item_count, {{new_customer}} AS new_customer
FROM {{source}}
WHERE t.tenant_id = %(tenant)s {{window}}
"""

# A new basket's customer is new to its store-day when no other basket (one not staged) has that
# customer, store and business day: one range probe of ix_transactions_customer_ts per basket,
# the staged ids hashed once (NOT IN; NOT EXISTS would scan them per probe: they have no index).
_DAY_UTC = (
    f"(({LOCAL_TS})::date + {{plus}} + interval '{BUSINESS_DAY_HOURS} hours') AT TIME ZONE 'UTC'"
)
_FIRST_AT_STORE_DAY = f"""NOT EXISTS (
    SELECT 1 FROM transactions o
    WHERE o.tenant_id = %(tenant)s AND o.customer_id = t.customer_id AND o.store_id = t.store_id
      AND o.transaction_timestamp >= {_DAY_UTC.format(plus=0)}
      AND o.transaction_timestamp < {_DAY_UTC.format(plus=1)}
      AND o.transaction_id NOT IN (SELECT transaction_id FROM {{new}}))"""

# The staged baskets' rows of transactions (`t`) and line items (`i`). A rebuild joins them as
# the planner likes; a delta looks each basket up by its key (OFFSET 0 keeps the subquery a
# nested loop of index scans): right after a load the partition's statistics are stale and the
# planner would hash-join every row of the tenant for a few thousand baskets.
_ALL_ITEMS = (
    "JOIN transaction_items i ON i.tenant_id = %(tenant)s AND i.transaction_id = b.transaction_id"
)
_EACH_ITEMS = ("CROSS JOIN LATERAL (SELECT * FROM transaction_items i WHERE i.tenant_id = %(tenant)s"
               " AND i.transaction_id = b.transaction_id OFFSET 0) i")  # fmt: skip
_EACH_BASKET = ("{new} n CROSS JOIN LATERAL (SELECT * FROM transactions t WHERE t.tenant_id ="
                " %(tenant)s AND t.transaction_id = n.transaction_id OFFSET 0) t")  # fmt: skip

# Per basket × category: units, revenue, lines (one pass over the line items, reused below).
_BASKET_CATEGORIES = f"""
CREATE TEMP TABLE _rp_bc ON COMMIT DROP AS
WITH lines AS MATERIALIZED (  -- the staged baskets' lines first, whatever the statistics say
    SELECT i.transaction_id, i.product_id, i.quantity, i.sales_value
    FROM _rp_baskets b {{items}}
)
SELECT i.transaction_id, c.category_id, sum(i.quantity)::bigint AS units,
       sum(i.sales_value) AS revenue, count(*)::int AS lines
FROM lines i
LEFT JOIN products p ON p.tenant_id = %(tenant)s AND p.product_id = i.product_id
JOIN analytics_categories c
  ON c.tenant_id = %(tenant)s
 AND c.department = coalesce(p.department, '{UNKNOWN}')
 AND c.product_category = coalesce(p.product_category, '{UNKNOWN}')
GROUP BY i.transaction_id, c.category_id
"""

_UNITS = """
CREATE TEMP TABLE _rp_units ON COMMIT DROP AS
SELECT transaction_id, sum(units)::bigint AS units FROM _rp_bc GROUP BY transaction_id
"""

# The inserts below end with {conflict}: nothing for a rebuild (the rows were deleted), else
# the table's clause in `_INSERTS`, which adds a delta's rows to those already there.
_HOURLY = """
INSERT INTO sales_hourly (tenant_id, day, store_id, hour, revenue, units, baskets, discounts)
SELECT %(tenant)s, b.day, b.store_id, b.hour, sum(b.total_sales), coalesce(sum(u.units), 0),
       count(*), sum(b.total_discount)
FROM _rp_baskets b LEFT JOIN _rp_units u ON u.transaction_id = b.transaction_id
WHERE true {days} {stores}
GROUP BY b.day, b.store_id, b.hour
ORDER BY b.day, b.store_id, b.hour
{conflict}
"""

_DAILY = """
INSERT INTO sales_daily
    (tenant_id, day, store_id, revenue, units, baskets, customers, discounts, lines)
SELECT %(tenant)s, b.day, b.store_id, sum(b.total_sales), coalesce(sum(u.units), 0), count(*),
       count(DISTINCT b.customer_id) FILTER (WHERE b.new_customer), sum(b.total_discount),
       sum(b.item_count)
FROM _rp_baskets b LEFT JOIN _rp_units u ON u.transaction_id = b.transaction_id
WHERE true {days} {stores}
GROUP BY b.day, b.store_id
{conflict}
"""

_PRODUCT_WEEKLY = """
INSERT INTO product_weekly (tenant_id, product_id, week, revenue, units, lines, discounts)
SELECT %(tenant)s, i.product_id, b.week, sum(i.sales_value), sum(i.quantity), count(*),
       sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc)
FROM _rp_baskets b {items}
GROUP BY i.product_id, b.week
ORDER BY i.product_id, b.week  -- primary-key order: appends to the index instead of seeking
{conflict}
"""

_CATEGORY_DAILY = """
INSERT INTO category_daily (tenant_id, department, product_category, day, revenue, units, lines)
SELECT %(tenant)s, c.department, c.product_category, b.day, sum(x.revenue), sum(x.units),
       sum(x.lines)
FROM _rp_bc x
JOIN _rp_baskets b ON b.transaction_id = x.transaction_id
JOIN analytics_categories c ON c.tenant_id = %(tenant)s AND c.category_id = x.category_id
WHERE true {days}
GROUP BY c.department, c.product_category, b.day
ORDER BY c.department, c.product_category, b.day
{conflict}
"""

_NEW_CATEGORIES = f"""
INSERT INTO analytics_categories (tenant_id, category_id, department, product_category)
SELECT %(tenant)s,
       coalesce((SELECT max(category_id) FROM analytics_categories WHERE tenant_id = %(tenant)s),
                0) + row_number() OVER (ORDER BY c.department, c.product_category),
       c.department, c.product_category
FROM (
    SELECT DISTINCT coalesce(department, '{UNKNOWN}') AS department,
           coalesce(product_category, '{UNKNOWN}') AS product_category
    FROM products WHERE tenant_id = %(tenant)s
    UNION SELECT '{UNKNOWN}', '{UNKNOWN}'
) c
WHERE NOT EXISTS (
    SELECT 1 FROM analytics_categories a
    WHERE a.tenant_id = %(tenant)s AND a.department = c.department
      AND a.product_category = c.product_category
)
"""

_BASKET_SETS = """
INSERT INTO basket_sets (tenant_id, day, store_id, baskets, sizes, items)
SELECT %(tenant)s, day, store_id, count(*),
       string_agg(int2send(n), ''::bytea ORDER BY transaction_id),
       string_agg(ids, ''::bytea ORDER BY transaction_id)
FROM (
    SELECT b.transaction_id, b.day, b.store_id, count(*)::smallint AS n,
           string_agg(int2send(x.category_id::smallint), ''::bytea ORDER BY x.category_id)
             AS ids
    FROM _rp_bc x JOIN _rp_baskets b ON b.transaction_id = x.transaction_id
    WHERE true {days} {stores}
    GROUP BY b.transaction_id, b.day, b.store_id
) per_basket
GROUP BY day, store_id
ORDER BY day, store_id
{conflict}
"""


def _adding(table: str, key: str, sums: str, appends: str = "") -> str:
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in sums.split()]
    sets += [f"{c} = {table}.{c} || excluded.{c}" for c in appends.split()]
    return f"ON CONFLICT (tenant_id, {key}) DO UPDATE SET {', '.join(sets)}"


# (statement, its ON CONFLICT clause for a delta) per table, in the order they are written
_INSERTS = {
    "sales_hourly": (_HOURLY, _adding("sales_hourly", "day, store_id, hour",
                                      "revenue units baskets discounts")),
    "sales_daily": (_DAILY, _adding("sales_daily", "day, store_id",
                                    "revenue units baskets customers discounts lines")),
    "product_weekly": (_PRODUCT_WEEKLY, _adding("product_weekly", "product_id, week",
                                                "revenue units lines discounts")),
    "category_daily": (_CATEGORY_DAILY, _adding("category_daily",
                                                "department, product_category, day",
                                                "revenue units lines")),
    # appended: basket order means nothing to the readers (analytics/baskets.py)
    "basket_sets": (_BASKET_SETS, _adding("basket_sets", "day, store_id", "baskets",
                                          "sizes items")),
}  # fmt: skip


@dataclass(frozen=True)
class Window:
    """Business days to recompute (None: all of the tenant's) and stores (None: every store)."""

    first: date | None = None
    last: date | None = None
    stores: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.first is None or self.last is None

    @property
    def weeks(self) -> tuple[date, date]:
        """Mondays of the first and last touched weeks."""
        assert self.first is not None and self.last is not None
        return (
            self.first - timedelta(days=self.first.weekday()),
            self.last - timedelta(days=self.last.weekday()),
        )


def window_of(landed: Landed) -> Window:
    """The business days (and stores) `landed` may have changed."""
    if landed.everything:
        return Window()
    assert landed.first_day is not None and landed.last_day is not None
    # a UTC day's first BUSINESS_DAY_HOURS hours belong to the previous business day
    return Window(landed.first_day - timedelta(days=1), landed.last_day, landed.stores)


def refresh(conn: psycopg.Connection, landed: Landed) -> None:
    """Bring the rollups up to date with what `landed` changed, inside the caller's
    transaction: by delta when the writer staged its new baskets, else by recomputing."""
    if not landed.everything and landed.stores is not None and not landed.stores:
        return  # a batch that inserted nothing
    clock = time.perf_counter()
    if landed.new_baskets is not None and not landed.everything:
        add_baskets(conn, tenant=landed.tenant, new_baskets=landed.new_baskets)
        how = f"delta {landed.first_day}..{landed.last_day}"
    else:
        rebuild(conn, tenant=landed.tenant, window=window_of(landed))
        how = "full" if landed.everything else f"{landed.first_day}..{landed.last_day}"
    log.info("analytics rollups for %s (%s, %s): %.2f s", landed.tenant, landed.source, how,
             time.perf_counter() - clock)  # fmt: skip


def add_baskets(conn: psycopg.Connection, *, tenant: str, new_baskets: str) -> None:
    """Add the baskets listed in the temporary table `new_baskets` (transaction_id; inserted by
    this transaction, so in no rollup yet) to the tenant's rollups."""
    lock_tenant(conn, tenant)
    # The nested loops' estimates pass jit_above_cost: compiling them took longer (~0.6 s) than
    # running them. Set for these statements only: the writer's transaction goes on after them.
    before = conn.execute("SELECT current_setting('jit'), current_setting('work_mem')").fetchone()
    conn.execute("SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)")
    params = {"tenant": tenant}
    # no ANALYZE of the staged tables: a batch's few thousand rows are hash-joined whatever
    # their statistics, and three ANALYZEs cost ~10% of a 5,000-basket delta
    _stage(conn, params, source=_EACH_BASKET.format(new=new_baskets), items=_EACH_ITEMS,
           new_customer=_FIRST_AT_STORE_DAY.format(new=new_baskets), analyze=False)  # fmt: skip
    for statement, adding in _INSERTS.values():
        conn.execute(statement.format(days="", stores="", items=_EACH_ITEMS, conflict=adding),
                     params)  # fmt: skip
    conn.execute("DROP TABLE _rp_baskets, _rp_bc, _rp_units")
    conn.execute("SELECT set_config('jit', %s, true), set_config('work_mem', %s, true)", before)


def rebuild(conn: psycopg.Connection, *, tenant: str, window: Window | None = None) -> None:
    """Delete and recompute the tenant's rollup rows inside `window` (default: all of them)."""
    window = window or Window()
    lock_tenant(conn, tenant)
    # the product × week aggregate holds ~600k groups of numeric sums (~500 MB on full data)
    conn.execute("SET LOCAL work_mem = '512MB'")
    params: dict[str, object] = {"tenant": tenant}
    if window.everything:
        stage_window, days, week_days, stores = "", "", "", ""
    else:
        w0, w1 = window.weeks
        params.update(
            first=window.first,
            last=window.last,
            w0=w0,
            w1=w1,
            lo=w0,
            hi=w1 + timedelta(days=7),
            hours=BUSINESS_DAY_HOURS,
        )
        # whole weeks staged (product_weekly), narrowed to the touched days below
        stage_window = (
            "AND t.transaction_timestamp >= (%(lo)s::date + make_interval(hours => %(hours)s))"
            " AT TIME ZONE 'UTC'"
            " AND t.transaction_timestamp < (%(hi)s::date + make_interval(hours => %(hours)s))"
            " AT TIME ZONE 'UTC'"
        )
        days = "AND b.day BETWEEN %(first)s AND %(last)s"
        week_days = "AND day BETWEEN %(first)s AND %(last)s"
        stores = ""
        if window.stores is not None:
            params["stores"] = sorted(window.stores)
            stores = "AND b.store_id = ANY(%(stores)s)"
    store_filter = stores.replace("b.", "")

    _stage(conn, params, source="transactions t", window=stage_window, items=_ALL_ITEMS)
    for table in ("sales_hourly", "sales_daily", "basket_sets"):
        conn.execute(f"DELETE FROM {table} WHERE tenant_id = %(tenant)s {week_days} {store_filter}",
                     params)  # fmt: skip
    conn.execute(f"DELETE FROM category_daily WHERE tenant_id = %(tenant)s {week_days}", params)
    weeks = "" if window.everything else "AND week BETWEEN %(w0)s AND %(w1)s"
    conn.execute(f"DELETE FROM product_weekly WHERE tenant_id = %(tenant)s {weeks}", params)
    for statement, _ in _INSERTS.values():  # product_weekly: whole weeks, every store
        conn.execute(statement.format(days=days, stores=stores, items=_ALL_ITEMS, conflict=""),
                     params)  # fmt: skip
    conn.execute("DROP TABLE _rp_baskets, _rp_bc, _rp_units")


def lock_tenant(conn: psycopg.Connection, tenant: str) -> None:
    """One refresh per tenant at a time: two rebuilds of the same days would both delete and
    then collide on insert, and a delta must see every basket committed before it (its
    customer counts probe them). Held to the end of the caller's transaction; a writer may take
    it before its refresh to order itself (the stream consumer's writers do)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"analytics:{tenant}",))


def _stage(
    conn: psycopg.Connection,
    params: dict[str, object],
    *,
    source: str,
    items: str,
    window: str = "",
    new_customer: str = "true",
    analyze: bool = True,
) -> None:
    """Stage the baskets of `source` (`t`: transactions) in `window`, new categories, and per
    basket × category (lines by `items`) its units, revenue and lines; `analyze` the staged
    tables for the statements that join them."""
    conn.execute("DROP TABLE IF EXISTS _rp_baskets, _rp_bc, _rp_units")
    conn.execute(_STAGE.format(source=source, window=window, new_customer=new_customer), params)
    if analyze:
        conn.execute("ANALYZE _rp_baskets")
    conn.execute(_NEW_CATEGORIES, params)
    tenant = params["tenant"]
    top = conn.execute(
        "SELECT max(category_id) FROM analytics_categories WHERE tenant_id = %s", (tenant,)
    ).fetchone()[0]
    if top is not None and top > MAX_CATEGORY_ID:  # pragma: no cover - taxonomies of 32k+
        raise ValueError(f"tenant {tenant} has more than {MAX_CATEGORY_ID} product categories")
    conn.execute(_BASKET_CATEGORIES.format(items=items), params)
    if analyze:
        conn.execute("ANALYZE _rp_bc")
    conn.execute(_UNITS, params)
    if analyze:
        conn.execute("ANALYZE _rp_units")
