"""The analytics answers (plain dicts in the API's field names), from analytics/queries.py.

Each function takes a connection and runs its queries in one go, so a route makes one trip to
a worker thread. Money is rounded to cents, shares and ratios to 4 decimals.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg

from analytics import baskets as mining
from analytics import queries as q
from core.errors import NotFoundError

MARGIN_NOTE = "no unit cost in the data (Complete Journey has none): margin is unknown"
TURNOVER_NOTE = (
    "units sold in the period / units on hand now (inventory table); null when no store of the "
    "scope reports inventory (Complete Journey has no inventory levels)"
)


def _f(value: Any, digits: int = 2) -> float:
    return round(float(value or 0), digits)


def _change(now: float, before: float) -> float | None:
    return None if not before else round((now - before) / before, 4)


def _end_day(conn: psycopg.Connection, tenant: str, end: date | None) -> date:
    return end or q.latest_day(conn, tenant=tenant) or date.today()


def realtime(
    conn: psycopg.Connection,
    *,
    tenant: str,
    as_of: date | None,
    by: str,
    stores: list[str] | None,
    until_hour: int | None,
) -> dict[str, Any]:
    """The day's running totals beside the same weekday a week earlier, by hour or store."""
    day = _end_day(conn, tenant, as_of)
    before = day - timedelta(days=7)
    rows = q.realtime(conn, tenant=tenant, day=day, by=by, stores=stores, until_hour=until_hour)

    def totals(part: list[tuple]) -> dict[str, float]:
        revenue = sum(float(r[1]) for r in part)
        baskets = sum(int(r[3]) for r in part)
        return {
            "revenue": round(revenue, 2),
            "units": sum(int(r[2]) for r in part),
            "baskets": baskets,
            "discounts": round(sum(float(r[4]) for r in part), 2),
            "avgBasket": round(revenue / baskets, 2) if baskets else 0.0,
        }

    now, then = totals(rows[day]), totals(rows[before])
    earlier = {r[0]: r for r in rows[before]}
    keys = sorted({r[0] for r in rows[day]} | set(earlier), key=lambda k: (str(type(k)), k))
    current = {r[0]: r for r in rows[day]}
    breakdown = []
    for k in keys:
        cur, old = current.get(k), earlier.get(k)
        revenue = _f(cur[1]) if cur else 0.0
        previous = _f(old[1]) if old else 0.0
        breakdown.append({
            "key": str(k), "revenue": revenue, "units": int(cur[2]) if cur else 0,
            "baskets": int(cur[3]) if cur else 0, "previousRevenue": previous,
            "previousBaskets": int(old[3]) if old else 0,
            "revenueChange": _change(revenue, previous),
        })  # fmt: skip
    return {
        "asOf": day,
        "comparedWith": before,
        "by": by,
        "untilHour": until_hour,
        "totals": now,
        "previousTotals": then,
        "change": {k: _change(now[k], then[k]) for k in ("revenue", "units", "baskets")},
        "breakdown": breakdown,
    }


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def product_performance(
    conn: psycopg.Connection,
    *,
    tenant: str,
    product_id: int,
    start: date | None,
    end: date | None,
    stores: list[str] | None,
) -> dict[str, Any]:
    """Volume, revenue, discounts, turnover and the weekly trend of one product."""
    info = q.product(conn, tenant=tenant, product_id=product_id)
    if info is None:
        raise NotFoundError(
            f"product {product_id} is not in the catalog", details={"productId": product_id}
        )
    last_day = _end_day(conn, tenant, end)
    first_day = start or last_day - timedelta(weeks=13) + timedelta(days=1)
    w0, w1 = _monday(first_day), _monday(last_day)
    rows = q.product_weeks(conn, tenant=tenant, product_id=product_id, first_week=w0,
                           last_week=w1, stores=stores)  # fmt: skip
    by_week = {r[0]: r for r in rows}
    weeks = [w0 + timedelta(weeks=k) for k in range((w1 - w0).days // 7 + 1)]
    series = []
    for w in weeks:
        r = by_week.get(w)
        series.append({"week": w, "revenue": _f(r[1]) if r else 0.0,
                       "units": int(r[2]) if r else 0, "lines": int(r[3]) if r else 0,
                       "discounts": _f(r[4]) if r else 0.0})  # fmt: skip
    units = np.array([s["units"] for s in series], dtype=float)
    revenue = sum(s["revenue"] for s in series)
    total_units = int(units.sum())
    slope = None
    if len(units) >= 2 and units.mean() > 0:
        slope = round(float(np.polyfit(np.arange(len(units)), units, 1)[0] / units.mean()), 4)
    recent = (
        _change(float(units[-4:].sum()), float(units[-8:-4].sum())) if len(units) >= 8 else None
    )
    stock = q.on_hand(conn, tenant=tenant, product_id=product_id, stores=stores)
    return {
        "productId": product_id,
        "product": info,
        "startWeek": w0,
        "endWeek": w1,
        "source": "rollup" if stores is None else "line items (store filter)",
        "units": total_units,
        "revenue": round(revenue, 2),
        "discounts": round(sum(s["discounts"] for s in series), 2),
        "lines": sum(s["lines"] for s in series),
        "avgPrice": round(revenue / total_units, 4) if total_units else None,
        "weeksWithSales": int((units > 0).sum()),
        "unitsPerWeek": round(total_units / len(series), 2),
        "margin": None,
        "marginNote": MARGIN_NOTE,
        "turnover": round(total_units / stock[0], 4) if stock and stock[0] > 0 else None,
        "onHand": stock[0] if stock else None,
        "turnoverNote": TURNOVER_NOTE,
        "trend": {"unitsSlopePerWeek": slope, "last4VsPrevious4": recent},
        "weeks": series,
    }


def store_comparison(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date | None,
    end: date | None,
    stores: list[str] | None,
    sort: str,
    order: str,
    page: int,
    limit: int,
) -> dict[str, Any]:
    """Stores' revenue, baskets, basket size and growth over the previous period, one page."""
    last = _end_day(conn, tenant, end)
    first = start or last - timedelta(days=27)
    span = (last - first).days + 1
    total, rows = q.store_comparison(
        conn, tenant=tenant, start=first, end=last, stores=stores, sort=sort,
        descending=order == "desc", limit=limit, offset=(page - 1) * limit,
    )  # fmt: skip
    return {
        "startDate": first,
        "endDate": last,
        "previousStartDate": first - timedelta(days=span),
        "previousEndDate": first - timedelta(days=1),
        "sort": sort,
        "order": order,
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "pages": (total + limit - 1) // limit,
        },  # fmt: skip
        "stores": [
            {
                "storeId": s,
                "revenue": _f(rev),
                "units": int(units),
                "baskets": int(baskets),
                "discounts": _f(disc),
                "basketSize": _f(size),
                "previousRevenue": None if prev is None else _f(prev),
                "growth": None if growth is None else round(float(growth), 4),
            }
            for s, rev, units, baskets, disc, size, prev, growth in rows
        ],  # fmt: skip
    }


def trends(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date | None,
    end: date | None,
    interval: str,
    window: int | None,
    stores: list[str] | None,
    department: str | None,
    category: str | None,
) -> dict[str, Any]:
    """A daily or weekly series of revenue, units and baskets with a moving average and the
    change against the same period a week earlier."""
    if (department or category) and not q.category_known(
        conn, tenant=tenant, department=department, category=category
    ):
        field = "category" if category else "department"
        raise NotFoundError(
            f"no {field} {category or department!r} in the tenant's catalog",
            details={field: category or department},
        )
    last = _end_day(conn, tenant, end)
    first = start or last - timedelta(days=90)
    if interval == "week":
        first, last = _monday(first), _monday(last) + timedelta(days=6)
    rows = q.daily_totals(conn, tenant=tenant, start=first, end=last, stores=stores,
                          department=department, category=category)  # fmt: skip
    by_day = {r[0]: r for r in rows}
    has_baskets = department is None and category is None
    step = 7 if interval == "week" else 1
    periods = []
    d = first
    while d <= last:
        days = [d + timedelta(days=k) for k in range(step)]
        got = [by_day[x] for x in days if x in by_day]
        periods.append({
            "period": d,
            "revenue": round(sum(float(r[1]) for r in got), 2),
            "units": sum(int(r[2]) for r in got),
            "baskets": sum(int(r[3]) for r in got) if has_baskets else None,
        })  # fmt: skip
        d += timedelta(days=step)
    window = window or (7 if interval == "day" else 4)
    lag = 7 if interval == "day" else 1  # the same weekday last week / the previous week
    revenue = np.array([p["revenue"] for p in periods], dtype=float)
    for k, p in enumerate(periods):
        p["revenueMovingAvg"] = (
            round(float(revenue[k - window + 1 : k + 1].mean()), 2) if k + 1 >= window else None
        )
        p["revenueChange"] = _change(revenue[k], revenue[k - lag]) if k >= lag else None
    return {
        "startDate": first,
        "endDate": last,
        "interval": interval,
        "window": window,
        "department": department,
        "category": category,
        "source": "line items (store filter)"
        if stores is not None and not has_baskets
        else "rollup",
        "points": periods,
    }


def basket_analysis(
    conn: psycopg.Connection,
    *,
    tenant: str,
    start: date | None,
    end: date | None,
    stores: list[str] | None,
    level: str,
    min_support: float,
    min_confidence: float,
    max_rules: int,
) -> dict[str, Any]:
    """Association rules between categories (or departments) bought in the same basket."""
    last = _end_day(conn, tenant, end)
    first = start or last - timedelta(days=27)
    n, sizes, items = q.basket_sets(conn, tenant=tenant, start=first, end=last, stores=stores)
    names = q.categories(conn, tenant=tenant)
    basket, item = mining.unpack(n, sizes, items)
    if level == "department":
        first_of: dict[str, int] = {}
        for cid in sorted(names):
            first_of.setdefault(names[cid][0], cid)
        item = mining.to_departments(item, {c: first_of[d] for c, (d, _) in names.items()})
    mined = mining.mine_pairs(basket, item, n, min_support=min_support,
                              min_confidence=min_confidence, max_rules=max_rules)  # fmt: skip

    def label(cid: int) -> dict[str, Any]:
        dept, cat = names.get(cid, ("(unknown)", "(unknown)"))
        return {"department": dept, "category": None if level == "department" else cat,
                "baskets": mined.item_baskets.get(cid, 0)}  # fmt: skip

    return {
        "startDate": first,
        "endDate": last,
        "level": level,
        "baskets": n,
        "minSupport": min_support,
        "minConfidence": min_confidence,
        "frequentItems": mined.frequent_items,
        "pairsCounted": mined.pairs_counted,
        "rules": [
            {
                "antecedent": label(r.antecedent),
                "consequent": label(r.consequent),
                "baskets": r.baskets,
                "support": round(r.support, 6),
                "confidence": round(r.confidence, 4),
                "lift": round(r.lift, 4),
            }
            for r in mined.rules
        ],  # fmt: skip
    }
