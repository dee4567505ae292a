"""Sales rules (threshold, performance_drop): the subjects their condition holds for now.

Sales metrics are computed in SQL on the base tables (`transactions`, `transaction_items`,
`products`) over business days — transaction time (UTC) − 5 h, the `store_daily_sales` rule —
ending at the tenant's newest business day with sales ("as of"), so a replayed history behaves
as a live one. Missing sales count as 0 (a listed store that sold nothing has revenue 0); an
average basket value over no baskets is undefined and never fires.

Every evaluator (here and in `alerts.scored`) returns the full list of findings for its rule
(None: nothing to judge, and open alerts stay as they are): the engine raises what is new and
resolves the open alerts that are no longer found.
"""

from __future__ import annotations

import operator as op
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from alerts.rules import Rule
from alerts.store import Finding, open_subjects

BUSINESS_DAY_HOURS = 5
LABELS = {
    "revenue": "Revenue",
    "units": "Units sold",
    "baskets": "Baskets",
    "avg_basket_value": "Average basket value",
}
OPERATORS = {"<": op.lt, "<=": op.le, ">": op.gt, ">=": op.ge}
WORDS = {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above"}
SUBJECT_KEY = {"store": "store_id", "product": "product_id", "department": "department"}
SCOPE_KEY = {"store": "storeIds", "product": "productIds", "department": "departments"}


def business_day(ts: datetime) -> date:
    """The business date of a transaction time."""
    return (ts.astimezone(UTC) - timedelta(hours=BUSINESS_DAY_HOURS)).date()


def day_start(day: date) -> datetime:
    """When business day `day` starts (UTC)."""
    return datetime.combine(day, time(BUSINESS_DAY_HOURS), tzinfo=UTC)


def as_of_day(conn: psycopg.Connection, *, tenant: str) -> date | None:
    """The tenant's newest business day with sales (None: no sales yet)."""
    row = conn.execute(
        "SELECT max(transaction_timestamp) FROM transactions WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    return None if row is None or row[0] is None else business_day(row[0])


def _span(first: date, last: date) -> str:
    return f"business day {last}" if first == last else f"business days {first}..{last}"


def _subject(per: str, key: Any) -> dict[str, Any]:
    if per == "tenant":
        return {}
    return {SUBJECT_KEY[per]: int(key) if per == "product" else str(key)}


def _label(per: str, key: Any) -> str:
    return "all sales in scope" if per == "tenant" else f"{per} {key}"


def sales_by_subject(
    conn: psycopg.Connection,
    *,
    rule: Rule,
    metric: str,
    per: str,
    first: date,
    last: date,
    split: date | None = None,
) -> dict[tuple[Any, int], dict[str, float]]:
    """(subject key, period) → {revenue, units, baskets} over business days first..last, within
    the rule's scope; period is 1 from `split` on and 0 before it (always 0 without a split)."""
    scope = rule.scope
    items = metric == "units" or per in ("product", "department")
    items = items or bool(scope.productIds) or bool(scope.departments)
    products = per == "department" or bool(scope.departments)
    key = {
        "store": "t.store_id",
        "product": "i.product_id",
        "department": "p.department",
        "tenant": "'all'",
    }[per]
    params: dict[str, Any] = {
        "tenant": rule.tenant,
        "t0": day_start(first),
        "t1": day_start(last + timedelta(days=1)),
        "split": day_start(split) if split else None,
    }
    joins, where = "", ""
    if items:
        joins += (
            " JOIN transaction_items i ON i.tenant_id = t.tenant_id"
            " AND i.transaction_id = t.transaction_id"
        )
    if products:
        joins += " JOIN products p ON p.tenant_id = i.tenant_id AND p.product_id = i.product_id"
    if scope.storeIds:
        where += " AND t.store_id = ANY(%(stores)s)"
        params["stores"] = list(scope.storeIds)
    if scope.productIds:
        where += " AND i.product_id = ANY(%(products)s)"
        params["products"] = list(scope.productIds)
    if scope.departments:
        where += " AND p.department = ANY(%(departments)s)"
        params["departments"] = list(scope.departments)
    if per == "department":
        where += " AND p.department IS NOT NULL"
    revenue = "sum(i.sales_value)" if items else "sum(t.total_sales)"
    units = "sum(i.quantity)" if items else "0"
    period = "(t.transaction_timestamp >= %(split)s)::int" if split else "0"
    rows = conn.execute(
        f"SELECT {key} AS subject, {period} AS period, {revenue}::float8, {units}::float8,"
        " count(DISTINCT t.transaction_id)::float8"
        f" FROM transactions t{joins}"
        " WHERE t.tenant_id = %(tenant)s AND t.transaction_timestamp >= %(t0)s"
        f" AND t.transaction_timestamp < %(t1)s{where} GROUP BY 1, 2",
        params,
    ).fetchall()
    return {
        (subject, int(period)): {"revenue": rev or 0.0, "units": u or 0.0, "baskets": b or 0.0}
        for subject, period, rev, u, b in rows
    }


def metric_value(metric: str, sums: dict[str, float] | None) -> float | None:
    """The metric from a subject's sums (missing sums: no sales, 0; undefined average: None)."""
    sums = sums or {"revenue": 0.0, "units": 0.0, "baskets": 0.0}
    if metric == "avg_basket_value":
        return sums["revenue"] / sums["baskets"] if sums["baskets"] else None
    return sums[metric]


def _candidates(conn: psycopg.Connection, rule: Rule, per: str, found: set[Any]) -> list[Any]:
    """Subjects to judge: those with sales, those the scope lists, those with open alerts."""
    keys = set(found)
    if per == "tenant":
        return ["all"]
    listed = getattr(rule.scope, SCOPE_KEY[per])
    keys.update(listed)
    for subject in open_subjects(conn, tenant=rule.tenant, rule_id=rule.rule_id):
        if SUBJECT_KEY[per] in subject:
            keys.add(subject[SUBJECT_KEY[per]])
    norm = int if per == "product" else str
    return sorted({norm(k) for k in keys}, key=str)


def threshold(
    conn: psycopg.Connection, rule: Rule, *, as_of: date | None, **_: Any
) -> list[Finding] | None:
    """Subjects whose metric over the window compares with the value as the rule says."""
    p = rule.typed_params()
    if as_of is None:
        return None
    last = as_of - timedelta(days=1) if p.completeDaysOnly else as_of
    first = last - timedelta(days=p.windowDays - 1)
    sums = sales_by_subject(conn, rule=rule, metric=p.metric, per=p.per, first=first, last=last)
    by_key = {(int(k) if p.per == "product" else str(k)): v for (k, _), v in sums.items()}
    findings = []
    for key in _candidates(conn, rule, p.per, set(by_key)):
        value = metric_value(p.metric, by_key.get(key))
        if value is None or not OPERATORS[p.operator](value, p.value):
            continue
        label, word = LABELS[p.metric], WORDS[p.operator]
        title = f"{label} {word} {p.value:g} for {_label(p.per, key)}"
        message = (
            f"{label} over {_span(first, last)} for {_label(p.per, key)} is {value:,.2f}, "
            f"{word} the threshold of {p.value:g} (rule {rule.name!r})."
        )
        payload = {
            "metric": p.metric,
            "value": round(value, 4),
            "operator": p.operator,
            "threshold": p.value,
            "window": {"from": str(first), "to": str(last)},
        }
        findings.append(Finding(_subject(p.per, key), title, message, payload))
    return findings


def performance_drop(
    conn: psycopg.Connection, rule: Rule, *, as_of: date | None, **_: Any
) -> list[Finding] | None:
    """Subjects whose metric over the last window fell by dropPct % or more against the one
    before (subjects below minBase before are left alone)."""
    p = rule.typed_params()
    if as_of is None:
        return None
    last = as_of - timedelta(days=1) if p.completeDaysOnly else as_of
    start = last - timedelta(days=p.windowDays - 1)
    before = start - timedelta(days=p.windowDays)
    sums = sales_by_subject(
        conn, rule=rule, metric=p.metric, per=p.per, first=before, last=last, split=start
    )
    norm = (lambda k: int(k)) if p.per == "product" else (lambda k: str(k))
    periods: dict[Any, dict[int, dict[str, float]]] = {}
    for (k, period), v in sums.items():
        periods.setdefault(norm(k), {})[period] = v
    findings = []
    for key in _candidates(conn, rule, p.per, {k for k, v in periods.items() if 0 in v}):
        prev = metric_value(p.metric, periods.get(key, {}).get(0))
        cur = metric_value(p.metric, periods.get(key, {}).get(1))
        if prev is None or cur is None or prev <= 0 or prev < p.minBase:
            continue
        drop = (prev - cur) / prev * 100
        if drop < p.dropPct:
            continue
        label = LABELS[p.metric]
        title = f"{label} down {drop:.0f}% for {_label(p.per, key)}"
        message = (
            f"{label} for {_label(p.per, key)} over {_span(start, last)} is {cur:,.2f}, "
            f"{drop:.1f}% below the {prev:,.2f} of {_span(before, start - timedelta(days=1))} "
            f"(rule {rule.name!r}: a drop of {p.dropPct:g}% or more)."
        )
        payload = {
            "metric": p.metric,
            "current": round(cur, 4),
            "previous": round(prev, 4),
            "dropPct": round(drop, 2),
            "window": {"from": str(start), "to": str(last)},
            "previousWindow": {"from": str(before), "to": str(start - timedelta(days=1))},
        }
        findings.append(Finding(_subject(p.per, key), title, message, payload))
    return findings
