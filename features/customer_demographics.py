"""Customer demographics (`customer_demographics`, Feast `customer_demographics_fv`), in SQL.

Source: the warehouse `customers` table, which the Complete Journey ingest fills from the
household `demographics` table (age, income, home_ownership, marital_status, household_size,
household_comp, kids_count; text bands, NULL for the ~2/3 of households without demographics).
Each band is kept as a string feature (`unknown` when missing) and, where it has an order, as a
number (band midpoint; NULL when unknown, so a model sees a missing value, not an invented one).

Rows: one per customer when first seen, stamped at the customer's first basket (demographics
are known from then on). An incremental run adds a row for every customer seen for the first
time, and a row stamped at the newest snapshot time for a customer whose demographics changed
since their last row (the older row stays: point-in-time reads before the change see it).
A full rebuild keeps only the current values, stamped at each customer's first basket.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

_BANDS = ("age", "income", "home_ownership", "marital_status", "household_size", "household_comp")

DEMOGRAPHIC_FEATURES: dict[str, tuple[str, str]] = {
    # name: (dtype, description)
    "has_demographics": ("int64", "1 if the retailer holds demographics for the household"),
    "age_band": ("string", "Age band of the head of household (e.g. 45-54; unknown)"),
    "age_years": ("float64", "Midpoint of the age band in years (65+ as 70; null if unknown)"),
    "income_band": ("string", "Household income band (e.g. 50-74K; unknown)"),
    "income_k": ("float64", "Midpoint of the income band in thousands (250K+ as 275)"),
    "household_size": ("float64", "Household size (5+ as 5; null if unknown)"),
    "adults": ("float64", "Adults in the household, from its composition (null if unknown)"),
    "kids": ("float64", "Children in the household (3+ as 3; null if unknown)"),
    "has_kids": ("float64", "1 if the household has children, 0 if not, null if unknown"),
    "homeowner": ("float64", "1 for (probable) homeowners, 0 for (probable) renters, null else"),
    "married": ("float64", "1 married, 0 unmarried, null if unknown"),
    "household_comp": ("string", "Household composition (e.g. 2 Adults Kids; unknown)"),
}

_AGE = {"19-24": 21.5, "25-34": 29.5, "35-44": 39.5, "45-54": 49.5, "55-64": 59.5, "65+": 70.0}
_INCOME = {
    "Under 15K": 7.5, "15-24K": 19.5, "25-34K": 29.5, "35-49K": 42.0, "50-74K": 62.0,
    "75-99K": 87.0, "100-124K": 112.0, "125-149K": 137.0, "150-174K": 162.0,
    "175-199K": 187.0, "200-249K": 224.5, "250K+": 275.0,
}  # fmt: skip


def _lookup(column: str, mapping: dict[str, float]) -> str:
    cases = " ".join(f"WHEN '{k}' THEN {v}" for k, v in mapping.items())
    return f"(CASE {column} {cases} END)::float8"


def _leading_int(column: str, cap: int) -> str:
    """'5+' → 5, '2' → 2, '2 Adults Kids' → 2; NULL when the text starts with no digit."""
    return f"least(nullif(substring({column} from '^([0-9]+)'), '')::float8, {cap})"


# The values a row is made of; `c` is the customers table.
_VALUES = f"""
    (c.age IS NOT NULL OR c.income IS NOT NULL OR c.household_size IS NOT NULL)::int::bigint,
    coalesce(c.age, 'unknown'), {_lookup("c.age", _AGE)},
    coalesce(c.income, 'unknown'), {_lookup("c.income", _INCOME)},
    {_leading_int("c.household_size", 5)},
    {_leading_int("c.household_comp", 9)},
    {_leading_int("c.kids_count", 3)},
    (CASE WHEN c.kids_count IS NULL THEN NULL
          WHEN c.kids_count = '0' OR c.household_comp LIKE '%%No Kids' THEN 0 ELSE 1 END)::float8,
    (CASE WHEN c.home_ownership IN ('Homeowner', 'Probable Homeowner') THEN 1
          WHEN c.home_ownership IN ('Renter', 'Probable Renter') THEN 0 END)::float8,
    (CASE c.marital_status WHEN 'Married' THEN 1 WHEN 'Unmarried' THEN 0 END)::float8,
    coalesce(c.household_comp, 'unknown')
"""
_COLUMNS = ", ".join(DEMOGRAPHIC_FEATURES)
# The source bands, joined, tell "changed" apart from "same" (NULL-safe).
_SIGNATURE = (
    "concat_ws('|', "
    + ", ".join(f"coalesce(c.{b}, '~')" for b in _BANDS)
    + ", "
    + ("coalesce(c.kids_count, '~'))")
)

_FULL = f"""
INSERT INTO customer_demographics (tenant_id, customer_id, event_timestamp, signature,
    {_COLUMNS})
SELECT %(tenant)s, c.customer_id, f.first_ts, {_SIGNATURE}, {_VALUES}
FROM customers c
JOIN (
    SELECT customer_id, min(transaction_timestamp) AS first_ts
    FROM transactions WHERE tenant_id = %(tenant)s GROUP BY 1
) f ON f.customer_id = c.customer_id
WHERE c.tenant_id = %(tenant)s
"""

# New customers (first basket after the watermark) and changed ones: compare each customer's
# signature with their newest row. Customers without a basket yet have no row.
_INCREMENTAL = f"""
WITH latest AS (
    SELECT DISTINCT ON (customer_id) customer_id, signature
    FROM customer_demographics WHERE tenant_id = %(tenant)s
    ORDER BY customer_id, event_timestamp DESC
),
todo AS (
    SELECT c.customer_id, {_SIGNATURE} AS signature, l.customer_id IS NULL AS is_new
    FROM customers c LEFT JOIN latest l ON l.customer_id = c.customer_id
    WHERE c.tenant_id = %(tenant)s AND l.signature IS DISTINCT FROM {_SIGNATURE}
)
INSERT INTO customer_demographics (tenant_id, customer_id, event_timestamp, signature,
    {_COLUMNS})
SELECT %(tenant)s, c.customer_id, CASE WHEN todo.is_new THEN f.first_ts ELSE %(now)s END,
       todo.signature, {_VALUES}
FROM todo
JOIN customers c ON c.tenant_id = %(tenant)s AND c.customer_id = todo.customer_id
CROSS JOIN LATERAL (
    SELECT min(transaction_timestamp) AS first_ts FROM transactions
    WHERE tenant_id = %(tenant)s AND customer_id = todo.customer_id
) f
WHERE f.first_ts IS NOT NULL AND f.first_ts < %(now)s
ON CONFLICT (tenant_id, customer_id, event_timestamp) DO UPDATE
SET signature = EXCLUDED.signature, {", ".join(f"{n} = EXCLUDED.{n}" for n in DEMOGRAPHIC_FEATURES)}
"""


def compute_customer_demographics(
    conn: psycopg.Connection, *, tenant: str, now: datetime | None = None
) -> int:
    """Full rebuild (`now` None) or incremental update as of snapshot time `now`; returns rows
    written. The caller owns the transaction."""
    params = {"tenant": tenant, "now": now}
    if now is None:
        conn.execute("DELETE FROM customer_demographics WHERE tenant_id = %(tenant)s", params)
        return conn.execute(_FULL, params).rowcount
    return conn.execute(_INCREMENTAL, params).rowcount
