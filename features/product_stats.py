"""Product statistics snapshots (`product_stats`, Feast `product_stats_fv`), in SQL.

At each snapshot time (the customer views' times: month starts plus one just after the newest
basket) a product's row holds, over line items strictly before the snapshot time:
- units and revenue (sales value) over the last 7, 28 and 91 days;
- shelf price: mean shelf price per unit over the last 91 days, (sales_value + retail_disc +
  coupon_match_disc) / quantity over lines with quantity > 0 (DESIGN §4); NULL without units;
- display / mailer: 1 if the product was on an in-store display / in the weekly mailer in any
  store in the snapshot's week (the retailer week of the newest basket before it; placements are
  planned ahead, so this is no look-ahead), and the number of such stores.

Row rule: a product has a row at snapshot time c when it sold in [prev(c) - 91 days, c), prev(c)
being the previous snapshot time: a product that stops selling gets rows until one with all
windows at 0, then none (its newest row stays the zero one).

Incremental (`products=`, `as_of=` the new snapshot times only): the rows of products whose
values changed since the previous snapshot time — products with new sales, products whose sales
left one of the windows, products whose placements changed with the week — are written; every
other product keeps its newest row, which still holds its current values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg

WINDOWS = (7, 28, 91)
LONGEST = timedelta(days=max(WINDOWS))

PRODUCT_STATS_FEATURES: dict[str, tuple[str, str]] = {
    **{
        f"units_{w}d": ("float64", f"Units sold in the {w} days before the snapshot time")
        for w in WINDOWS
    },
    **{
        f"revenue_{w}d": ("float64", f"Sales value in the {w} days before the snapshot time")
        for w in WINDOWS
    },
    "shelf_price_91d": (
        "float64",
        "Mean shelf price per unit over 91 days: (sales + retail discount + coupon match) "
        "/ quantity; null without units",
    ),
    "display": ("int64", "1 if on an in-store display in any store in the snapshot's week"),
    "mailer": ("int64", "1 if in the weekly mailer in any store in the snapshot's week"),
    "display_stores": ("int64", "Stores with the product on display in the snapshot's week"),
    "mailer_stores": ("int64", "Stores with the product in the mailer in the snapshot's week"),
}

_WINDOW_SUMS = ",\n".join(
    f"           sum(l.quantity) FILTER (WHERE l.ts >= g.c - interval '{w} days') AS units_{w}d,\n"
    f"           sum(l.sales_value) FILTER (WHERE l.ts >= g.c - interval '{w} days')"
    f" AS revenue_{w}d"
    for w in WINDOWS
)
_WINDOW_OUT = ",\n".join(
    [f"       coalesce(a.units_{w}d, 0)::float8" for w in WINDOWS]
    + [f"       coalesce(a.revenue_{w}d, 0)::float8" for w in WINDOWS]
)

_INSERT = f"""
WITH cuts AS (
    SELECT c, coalesce(lag(c) OVER (ORDER BY c), '-infinity'::timestamptz) AS prev
    FROM unnest(%(all_cuts)s::timestamptz[]) AS c
),
target AS (
    SELECT c, prev,
           (SELECT max(week) FROM transactions
            WHERE tenant_id = %(tenant)s AND transaction_timestamp < c) AS week
    FROM cuts WHERE c = ANY(%(cuts)s::timestamptz[])
),
lines AS (
    SELECT i.product_id, t.transaction_timestamp AS ts, i.quantity,
           i.sales_value::float8 AS sales_value,
           (i.sales_value + i.retail_disc + i.coupon_match_disc)::float8 AS shelf
    FROM transactions t
    JOIN transaction_items i ON i.tenant_id = %(tenant)s AND i.transaction_id = t.transaction_id
    WHERE t.tenant_id = %(tenant)s
      AND t.transaction_timestamp >= %(lo)s AND t.transaction_timestamp < %(hi)s
      {{product_filter}}
),
agg AS (
    SELECT l.product_id, g.c, g.week,
{_WINDOW_SUMS},
           sum(l.shelf) FILTER (WHERE l.ts >= g.c - interval '91 days' AND l.quantity > 0)
               AS shelf_value,
           sum(l.quantity) FILTER (WHERE l.ts >= g.c - interval '91 days' AND l.quantity > 0)
               AS shelf_units
    FROM lines l
    JOIN target g ON l.ts < g.c AND l.ts >= g.prev - interval '91 days'
    GROUP BY 1, 2, 3
),
placed AS (
    SELECT product_id, week,
           count(*) FILTER (WHERE display_location <> '0') AS display_stores,
           count(*) FILTER (WHERE mailer_location <> '0') AS mailer_stores
    FROM promotion_placements
    WHERE tenant_id = %(tenant)s AND week IN (SELECT week FROM target)
    GROUP BY 1, 2
)
INSERT INTO product_stats (tenant_id, product_id, event_timestamp, {", ".join(PRODUCT_STATS_FEATURES)})
SELECT %(tenant)s, a.product_id, a.c,
{_WINDOW_OUT},
       (a.shelf_value / nullif(a.shelf_units, 0))::float8,
       (coalesce(p.display_stores, 0) > 0)::int::bigint,
       (coalesce(p.mailer_stores, 0) > 0)::int::bigint,
       coalesce(p.display_stores, 0)::bigint, coalesce(p.mailer_stores, 0)::bigint
FROM agg a
LEFT JOIN placed p ON p.product_id = a.product_id AND p.week = a.week
"""

# Products whose values at the new snapshot times differ from the previous snapshot time
# (`prev`): sales in [prev, hi), sales that left a window ([prev - w, hi - w)), placements of the
# weeks involved when the week changed.
_WINDOW_EDGES = " OR ".join(
    f"(t.transaction_timestamp >= %(prev)s - interval '{w} days'"
    f" AND t.transaction_timestamp < %(hi)s - interval '{w} days')"
    for w in WINDOWS
)
_AFFECTED = f"""
SELECT DISTINCT i.product_id
FROM transactions t
JOIN transaction_items i ON i.tenant_id = %(tenant)s AND i.transaction_id = t.transaction_id
WHERE t.tenant_id = %(tenant)s
  AND t.transaction_timestamp >= %(prev)s - interval '{max(WINDOWS)} days'
  AND t.transaction_timestamp < %(hi)s
  AND (t.transaction_timestamp >= %(prev)s OR {_WINDOW_EDGES})
UNION
SELECT product_id FROM promotion_placements
WHERE tenant_id = %(tenant)s AND week = ANY(%(weeks)s::int[])
  AND cardinality(%(weeks)s::int[]) > 1
"""


def affected_products(
    conn: psycopg.Connection, *, tenant: str, prev: datetime, hi: datetime
) -> list[int]:
    """Products whose statistics at `hi` may differ from those at the earlier snapshot `prev`."""
    weeks = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT (SELECT max(week) FROM transactions WHERE tenant_id = %s"
            " AND transaction_timestamp < c) FROM unnest(%s::timestamptz[]) AS c",
            (tenant, [prev, hi]),
        ).fetchall()
        if row[0] is not None
    ]
    params = {"tenant": tenant, "prev": prev, "hi": hi, "weeks": weeks}
    return [row[0] for row in conn.execute(_AFFECTED, params).fetchall()]


def compute_product_stats(
    conn: psycopg.Connection,
    *,
    tenant: str,
    as_of: Sequence[datetime],
    all_as_of: Sequence[datetime] | None = None,
    products: Sequence[int] | None = None,
) -> int:
    """Write `product_stats` rows at each time of `as_of` (all products, or only `products`);
    `all_as_of` is the full list of snapshot times (for each time's predecessor; default
    `as_of`). Rows stored at those times for those products are replaced; returns rows
    written. The caller owns the transaction."""
    cutoffs = sorted(set(as_of))
    every = sorted(set(all_as_of or ()) | set(cutoffs))
    if not cutoffs or (products is not None and not products):
        return 0
    prev = {c: p for p, c in zip([None, *every[:-1]], every, strict=True)}
    starts = [prev[c] for c in cutoffs]
    lo = None if None in starts else min(starts) - LONGEST  # type: ignore[type-var]
    params: dict[str, object] = {
        "tenant": tenant, "cuts": cutoffs, "all_cuts": every, "hi": cutoffs[-1],
        "lo": lo or datetime.min.replace(tzinfo=cutoffs[0].tzinfo),
    }  # fmt: skip
    delete = (
        "DELETE FROM product_stats WHERE tenant_id = %(tenant)s"
        " AND event_timestamp = ANY(%(cuts)s::timestamptz[])"
    )
    product_filter = ""
    if products is not None:
        params["products"] = list(products)
        product_filter = "AND i.product_id = ANY(%(products)s::bigint[])"
        delete += " AND product_id = ANY(%(products)s::bigint[])"
    conn.execute(delete, params)
    conn.execute("SET LOCAL work_mem = '256MB'")
    conn.execute("SET LOCAL jit = off")  # see features/customer_behaviour.py _tune
    sql = _INSERT.replace("{product_filter}", product_filter)
    return conn.execute(sql, params).rowcount
