"""Customer behaviour snapshots (`customer_behaviour`, Feast `customer_behaviour_fv`), in SQL.

One row per customer and as-of time (the snapshot times of `customer_rfm`: month starts plus one
just after the newest basket), summarising every basket strictly before the as-of time, so a row
stamped `as_of` never sees its own future. The statistics are cumulative (no window), so a
customer without a new basket keeps the values of their previous row: an incremental run writes
rows only for customers with new baskets (`customers=`) at the new snapshot times.

Definitions (docs/features.md):
- basket value = the basket's sales value; basket units = its quantity over lines outside the
  fuel group (Complete Journey's fuel quantities are gallons or odometer readings); items = its
  line count. sd is the sample standard deviation (0 with one basket).
- a basket is "on promotion" when one of its lines carries a retail (shelf) discount.
- department shares: sales value per group of `DEPARTMENT_GROUPS` over all sales value; a
  department outside the list (or a product without one) counts as `other`.
- discounted spend share: sales value of lines with a retail discount over all sales value;
  discount depth: retail discount over shelf value (sales + retail discount + coupon match);
  coupon redemption rate: lines with a coupon discount over all lines; coupon savings share:
  coupon discount over shelf value. Any ratio with a zero denominator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

# Top-level department groups of spend (Complete Journey department names, upper case). The list
# is fixed so that every tenant's view has the same columns; unknown departments are "other".
DEPARTMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "grocery": ("GROCERY", "FROZEN GROCERY", "NUTRITION"),
    "drug_gm": ("DRUG GM", "COSMETICS", "GM MERCH EXP"),
    "produce": ("PRODUCE", "SALAD BAR", "FLORAL", "GARDEN CENTER"),
    "meat": ("MEAT", "MEAT-PCKGD"),
    "seafood": ("SEAFOOD", "SEAFOOD-PCKGD"),
    "deli": ("DELI", "CHEF SHOPPE", "RESTAURANT"),
    "bakery": ("PASTRY",),
    "fuel": ("FUEL",),
    "other": (),
}

BEHAVIOUR_FEATURES: dict[str, str] = {
    "baskets": "Number of baskets before the snapshot time",
    "basket_value_mean": "Mean basket sales value",
    "basket_value_sd": "Sample standard deviation of basket sales value (0 with one basket)",
    "basket_units_mean": "Mean units per basket (lines outside the fuel group)",
    "basket_units_sd": "Sample standard deviation of units per basket",
    "items_per_basket": "Mean line items per basket",
    "promo_basket_share": "Share of baskets with at least one retail-discounted line",
    **{
        f"share_{group}": (
            f"Share of sales value in department group {group}"
            + (f" ({', '.join(depts)})" if depts else " (any department not listed elsewhere)")
        )
        for group, depts in DEPARTMENT_GROUPS.items()
    },
    "discounted_spend_share": "Sales value of retail-discounted lines over all sales value",
    "discount_depth": "Retail discount over shelf value (sales + retail discount + coupon match)",
    "coupon_redemption_rate": "Share of line items with a coupon discount",
    "coupon_savings_share": "Coupon discount over shelf value",
}

_GROUP_CODES = {group: code for code, group in enumerate(DEPARTMENT_GROUPS)}
_OTHER = _GROUP_CODES["other"]
_FUEL = _GROUP_CODES["fuel"]
# Group code per product, computed once per product (not per line: text work per line costs
# seconds on the full data).
_GROUP_CASE = (
    "CASE "
    + " ".join(
        f"WHEN upper(department) IN ({', '.join(repr(d) for d in depts)}) THEN {_GROUP_CODES[g]}"
        for g, depts in DEPARTMENT_GROUPS.items()
        if depts
    )
    + f" ELSE {_OTHER} END"
)
_GROUP_SUMS = ",\n".join(
    f"           sum(l.sales_value) FILTER (WHERE l.grp = {c}) AS s_{g}"
    for g, c in _GROUP_CODES.items()
)
_GROUP_COLS = ",\n".join(f"           l.s_{g}" for g in DEPARTMENT_GROUPS)
_GROUP_PARTS = ",\n".join(f"           sum(b.s_{g}) AS s_{g}" for g in DEPARTMENT_GROUPS)
_GROUP_RUN = ",\n".join(f"           sum(p.s_{g}) OVER w AS s_{g}" for g in DEPARTMENT_GROUPS)
_GROUP_OUT = ",\n".join(f"       coalesce(s_{g} / nullif(sales, 0), 0)" for g in DEPARTMENT_GROUPS)


def _sd(total: str, squares: str) -> str:
    return (
        f"CASE WHEN n > 1 THEN sqrt(greatest(({squares} - {total} * {total} / n) / (n - 1), 0))"
        " ELSE 0 END"
    )


# Each basket falls in one bucket k (the first cut-off after it, as in features/rfm.py); additive
# per-(customer, k) partials become per-cut-off totals with running sums over the cut-offs.
_INSERT = f"""
WITH tx AS (
    SELECT t.transaction_id, t.customer_id,
           width_bucket(t.transaction_timestamp, %(cuts)s::timestamptz[]) + 1 AS k
    FROM transactions t
    WHERE t.tenant_id = %(tenant)s AND t.transaction_timestamp < %(hi)s {{customer_filter}}
),
baskets AS (  -- per basket: line sums (a basket without lines counts with zeros)
    SELECT tx.customer_id, tx.k,
           coalesce(l.value, 0) AS value, coalesce(l.units, 0) AS units,
           coalesce(l.items, 0) AS items, coalesce(l.promo, false) AS promo,
           l.disc_sales, l.retail, l.coupon, l.shelf, l.coupon_lines,
{_GROUP_COLS}
    FROM tx
    LEFT JOIN (
        SELECT l.transaction_id,
               sum(l.sales_value) AS value,
               coalesce(sum(l.quantity) FILTER (WHERE l.grp <> {_FUEL}), 0)::float8 AS units,
               count(*)::float8 AS items,
               bool_or(l.retail_disc > 0) AS promo,
               sum(l.sales_value) FILTER (WHERE l.retail_disc > 0) AS disc_sales,
               sum(l.retail_disc) AS retail, sum(l.coupon_disc) AS coupon,
               sum(l.shelf) AS shelf,
               count(*) FILTER (WHERE l.coupon_disc > 0) AS coupon_lines,
{_GROUP_SUMS}
        FROM (
            SELECT i.transaction_id, i.quantity, i.sales_value::float8 AS sales_value,
                   i.retail_disc::float8 AS retail_disc, i.coupon_disc::float8 AS coupon_disc,
                   (i.sales_value + i.retail_disc + i.coupon_match_disc)::float8 AS shelf,
                   coalesce(p.grp, {_OTHER}) AS grp
            FROM transaction_items i
            LEFT JOIN (
                SELECT product_id, {_GROUP_CASE} AS grp FROM products WHERE tenant_id = %(tenant)s
            ) p ON p.product_id = i.product_id
            WHERE i.tenant_id = %(tenant)s {{item_filter}}
        ) l
        GROUP BY l.transaction_id
    ) l ON l.transaction_id = tx.transaction_id
),
part AS (
    SELECT b.customer_id, b.k, count(*) AS n,
           sum(b.value) AS sales, sum(b.value * b.value) AS sales2,
           sum(b.units) AS units, sum(b.units * b.units) AS units2, sum(b.items) AS items,
           count(*) FILTER (WHERE b.promo) AS promo,
           sum(b.disc_sales) AS disc_sales, sum(b.retail) AS retail, sum(b.coupon) AS coupon,
           sum(b.shelf) AS shelf, sum(b.coupon_lines) AS coupon_lines,
{_GROUP_PARTS}
    FROM baskets b
    GROUP BY 1, 2
),
grid AS (  -- every cut-off from the customer's first bucket on
    SELECT c.customer_id, g.k
    FROM (SELECT customer_id, min(k) AS k0 FROM part GROUP BY 1) c,
         generate_series(c.k0, %(n)s) AS g(k)
),
run AS (
    SELECT g.customer_id, g.k,
           sum(p.n) OVER w AS n, sum(p.sales) OVER w AS sales, sum(p.sales2) OVER w AS sales2,
           sum(p.units) OVER w AS units, sum(p.units2) OVER w AS units2,
           sum(p.items) OVER w AS items, sum(p.promo) OVER w AS promo,
           sum(p.disc_sales) OVER w AS disc_sales, sum(p.retail) OVER w AS retail,
           sum(p.coupon) OVER w AS coupon, sum(p.shelf) OVER w AS shelf,
           sum(p.coupon_lines) OVER w AS coupon_lines,
{_GROUP_RUN}
    FROM grid g
    LEFT JOIN part p ON p.customer_id = g.customer_id AND p.k = g.k
    WINDOW w AS (PARTITION BY g.customer_id ORDER BY g.k ROWS UNBOUNDED PRECEDING)
)
INSERT INTO customer_behaviour (tenant_id, customer_id, event_timestamp,
    {", ".join(BEHAVIOUR_FEATURES)})
SELECT %(tenant)s, customer_id, (%(cuts)s::timestamptz[])[k],
       n, sales / n, {_sd("sales", "sales2")}, units / n, {_sd("units", "units2")},
       items / n, promo::float8 / n,
{_GROUP_OUT},
       coalesce(disc_sales / nullif(sales, 0), 0),
       coalesce(retail / nullif(shelf, 0), 0),
       coalesce(coupon_lines / nullif(items, 0), 0),
       coalesce(coupon / nullif(shelf, 0), 0)
FROM run
"""


def _tune(conn: psycopg.Connection) -> None:
    """Session settings of one feature statement (inside the caller's transaction)."""
    # The per-basket aggregate spills to disk at the default 4 MB on the full data set.
    conn.execute("SET LOCAL work_mem = '128MB'")
    # Right after a bulk load the row estimates are far off; JIT then spends seconds compiling
    # a plan that runs in about as long.
    conn.execute("SET LOCAL jit = off")


def compute_customer_behaviour(
    conn: psycopg.Connection,
    *,
    tenant: str,
    as_of: Sequence[datetime],
    customers: Sequence[int] | None = None,
) -> int:
    """Write `customer_behaviour` rows at each as-of time (all customers, or only `customers`);
    rows already stored at those times for those customers are replaced. Returns rows written.

    The caller owns the transaction (a full rebuild deletes the tenant's rows first).
    """
    cutoffs = sorted(set(as_of))
    if not cutoffs or (customers is not None and not customers):
        return 0
    params: dict[str, object] = {
        "tenant": tenant, "cuts": cutoffs, "n": len(cutoffs), "hi": cutoffs[-1],
    }  # fmt: skip
    delete = (
        "DELETE FROM customer_behaviour WHERE tenant_id = %(tenant)s"
        " AND event_timestamp = ANY(%(cuts)s::timestamptz[])"
    )
    customer_filter = ""
    if customers is not None:
        params["customers"] = list(customers)
        customer_filter = "AND t.customer_id = ANY(%(customers)s::bigint[])"
        delete += " AND customer_id = ANY(%(customers)s::bigint[])"
    conn.execute(delete, params)
    _tune(conn)
    # The customers' baskets again rather than `tx`: the planner then sees how many there are
    # (a third of all baskets after a typical day) and hashes them against one scan of the
    # lines instead of ~50,000 index probes.
    item_filter = (
        "AND i.transaction_id IN (SELECT transaction_id FROM transactions t"
        " WHERE t.tenant_id = %(tenant)s AND t.customer_id = ANY(%(customers)s::bigint[]))"
        if customer_filter
        else ""
    )
    sql = _INSERT.replace("{customer_filter}", customer_filter).replace(
        "{item_filter}", item_filter
    )
    return conn.execute(sql, params).rowcount
