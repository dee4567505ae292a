"""The SQL of the rollups (analytics/rollups.py, whose docstring explains the grains, the
business day and the three ways they are refreshed): staging of the baskets and their lines,
then one insert per rollup table."""

from __future__ import annotations

from features.store_daily import BUSINESS_DAY_HOURS

UNKNOWN = "(unknown)"  # department / category of a product the catalog does not describe
MAX_CATEGORY_ID = 32767  # basket_sets packs ids as int16

# Business-local time of a basket.
LOCAL_TS = f"((t.transaction_timestamp AT TIME ZONE 'UTC') - interval '{BUSINESS_DAY_HOURS} hours')"

# `into`: _rp_baskets (`prepare`: _rp_baskets_pre). `new_customer`: the basket's customer counts
# towards sales_daily.customers of its store-day (rebuilds: every basket, the count is distinct;
# deltas: see FIRST_AT_STORE_DAY).
STAGE = f"""
CREATE TEMP TABLE {{into}} ON COMMIT DROP AS
SELECT t.transaction_id, t.store_id, t.customer_id,
       ({LOCAL_TS})::date AS day, extract(hour FROM {LOCAL_TS})::smallint AS hour,
       ({LOCAL_TS})::date - (extract(isodow FROM {LOCAL_TS})::int - 1) AS week,
       t.total_sales, t.total_discount, t.item_count, {{new_customer}} AS new_customer
FROM {{source}}
WHERE t.tenant_id = %(tenant)s {{window}}
"""

# The same rows from `prepare`'s staging of them (`_rp_baskets_pre`, staged before the writer
# waited for the tenant's lock with `new_customer` still to decide: that probe reads what other
# writers committed, so it runs here, under the lock).
STAGE_PREPARED = """
CREATE TEMP TABLE _rp_baskets ON COMMIT DROP AS
SELECT b.transaction_id, b.store_id, b.customer_id, b.day, b.hour, b.week, b.total_sales,
       b.total_discount, b.item_count, {new_customer} AS new_customer
FROM _rp_baskets_pre b
"""


def _first_at_store_day(row: str, day: str) -> str:
    """Whether basket `row`'s customer is new to its store-day (business day `day`): no other
    basket (one not staged in `{new}`) has that customer, store and business day. One range
    probe of ix_transactions_customer_ts per basket, the staged ids hashed once (NOT IN; NOT
    EXISTS would scan them per probe: they have no index)."""

    def utc(plus: int) -> str:
        return f"({day} + {plus} + interval '{BUSINESS_DAY_HOURS} hours') AT TIME ZONE 'UTC'"

    return f"""NOT EXISTS (
    SELECT 1 FROM transactions o
    WHERE o.tenant_id = %(tenant)s AND o.customer_id = {row}.customer_id
      AND o.store_id = {row}.store_id
      AND o.transaction_timestamp >= {utc(0)} AND o.transaction_timestamp < {utc(1)}
      AND o.transaction_id NOT IN (SELECT transaction_id FROM {{new}}))"""


# of a basket `t` of transactions; of a staged basket `b` (its business day computed already)
FIRST_AT_STORE_DAY = _first_at_store_day("t", f"({LOCAL_TS})::date")
FIRST_AT_STORE_DAY_STAGED = _first_at_store_day("b", "b.day")

# The staged baskets' rows of transactions (`t`) and line items (`i`). A rebuild joins them as
# the planner likes; a delta looks each basket up by its key (OFFSET 0 keeps the subquery a
# nested loop of index scans): right after a load the partition's statistics are stale and the
# planner would hash-join every row of the tenant for a few thousand baskets.
ALL_ITEMS = (
    "JOIN transaction_items i ON i.tenant_id = %(tenant)s AND i.transaction_id = b.transaction_id"
)
EACH_ITEMS = ("CROSS JOIN LATERAL (SELECT * FROM transaction_items i WHERE i.tenant_id = %(tenant)s"
               " AND i.transaction_id = b.transaction_id OFFSET 0) i")  # fmt: skip
EACH_BASKET = ("{new} n CROSS JOIN LATERAL (SELECT * FROM transactions t WHERE t.tenant_id ="
                " %(tenant)s AND t.transaction_id = n.transaction_id OFFSET 0) t")  # fmt: skip

# Per basket × category: units, revenue, lines (one pass over the line items, reused below).
BASKET_CATEGORIES = f"""
CREATE TEMP TABLE {{into}} ON COMMIT DROP AS
WITH lines AS MATERIALIZED (  -- the staged baskets' lines first, whatever the statistics say
    SELECT i.transaction_id, i.product_id, i.quantity, i.sales_value
    FROM {{baskets}} b {{items}}
)
SELECT i.transaction_id, c.category_id, sum(i.quantity)::bigint AS units,
       sum(i.sales_value) AS revenue, count(*)::int AS lines
FROM lines i
LEFT JOIN products p ON p.tenant_id = %(tenant)s AND p.product_id = i.product_id
{{categories}} JOIN analytics_categories c
  ON c.tenant_id = %(tenant)s
 AND c.department = coalesce(p.department, '{UNKNOWN}')
 AND c.product_category = coalesce(p.product_category, '{UNKNOWN}')
GROUP BY i.transaction_id, c.category_id
"""

UNITS = """
CREATE TEMP TABLE _rp_units ON COMMIT DROP AS
SELECT transaction_id, sum(units)::bigint AS units FROM _rp_bc GROUP BY transaction_id
"""

# The inserts below end with {conflict}: nothing for a rebuild (the rows were deleted), else
# the table's clause in `INSERTS`, which adds a delta's rows to those already there.
HOURLY = """
INSERT INTO sales_hourly (tenant_id, day, store_id, hour, revenue, units, baskets, discounts)
SELECT %(tenant)s, b.day, b.store_id, b.hour, sum(b.total_sales), coalesce(sum(u.units), 0),
       count(*), sum(b.total_discount)
FROM _rp_baskets b LEFT JOIN _rp_units u ON u.transaction_id = b.transaction_id
WHERE true {days} {stores}
GROUP BY b.day, b.store_id, b.hour
ORDER BY b.day, b.store_id, b.hour
{conflict}
"""

DAILY = """
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

PRODUCT_WEEKLY = """
INSERT INTO product_weekly (tenant_id, product_id, week, revenue, units, lines, discounts)
SELECT %(tenant)s, i.product_id, b.week, sum(i.sales_value), sum(i.quantity), count(*),
       sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc)
FROM _rp_baskets b {items}
GROUP BY i.product_id, b.week
ORDER BY i.product_id, b.week  -- primary-key order: appends to the index instead of seeking
{conflict}
"""

# A delta's product × week rows, aggregated by `prepare` from the writer's own baskets before
# it waited for the tenant's lock (`_rp_pw_pre`), then only upserted under it.
PRODUCT_WEEKLY_PRE = """
CREATE TEMP TABLE _rp_pw_pre ON COMMIT DROP AS
SELECT i.product_id, b.week, sum(i.sales_value) AS revenue, sum(i.quantity) AS units,
       count(*) AS lines, sum(i.retail_disc + i.coupon_disc + i.coupon_match_disc) AS discounts
FROM _rp_baskets_pre b {items}
GROUP BY i.product_id, b.week
"""
PRODUCT_WEEKLY_PREPARED = """
INSERT INTO product_weekly (tenant_id, product_id, week, revenue, units, lines, discounts)
SELECT %(tenant)s, product_id, week, revenue, units, lines, discounts
FROM _rp_pw_pre
ORDER BY product_id, week
{conflict}
"""

CATEGORY_DAILY = """
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

NEW_CATEGORIES = f"""
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

BASKET_SETS = """
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


def adding(table: str, key: str, sums: str, appends: str = "") -> str:
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in sums.split()]
    sets += [f"{c} = {table}.{c} || excluded.{c}" for c in appends.split()]
    return f"ON CONFLICT (tenant_id, {key}) DO UPDATE SET {', '.join(sets)}"


# (statement, its ON CONFLICT clause for a delta) per table, in the order they are written
INSERTS = {
    "sales_hourly": (HOURLY, adding("sales_hourly", "day, store_id, hour",
                                      "revenue units baskets discounts")),
    "sales_daily": (DAILY, adding("sales_daily", "day, store_id",
                                    "revenue units baskets customers discounts lines")),
    "product_weekly": (PRODUCT_WEEKLY, adding("product_weekly", "product_id, week",
                                                "revenue units lines discounts")),
    "category_daily": (CATEGORY_DAILY, adding("category_daily",
                                                "department, product_category, day",
                                                "revenue units lines")),
    # appended: basket order means nothing to the readers (analytics/baskets.py)
    "basket_sets": (BASKET_SETS, adding("basket_sets", "day, store_id", "baskets",
                                          "sizes items")),
}  # fmt: skip
