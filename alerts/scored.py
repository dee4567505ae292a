"""Rules judged on batch scores: anomaly (the detector's flagged store-days) and stockout (the
forecaster's demand against the `inventory` table). Both read the `predictions` rows of the
scored version `Landed` names, else of the newest scoring; with no scores yet there is nothing
to judge (None) and open alerts stay as they are.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import psycopg

from alerts.rules import Rule
from alerts.store import Finding


def _latest_version(conn: psycopg.Connection, tenant: str, model: str) -> int | None:
    row = conn.execute(
        "SELECT model_version FROM predictions WHERE tenant_id = %s AND model = %s"
        " ORDER BY scored_at DESC, model_version DESC LIMIT 1",
        (tenant, model),
    ).fetchone()
    return None if row is None else int(row[0])


def anomaly(
    conn: psycopg.Connection,
    rule: Rule,
    *,
    as_of: date | None,
    version: int | None = None,
    **_: Any,
) -> list[Finding] | None:
    """Store-days the newest anomaly scoring flagged, at minScore or above, in the rule's
    stores and direction, within the last withinDays days (of the newest sales day, or of the
    newest flagged day when the warehouse has no sales)."""
    p = rule.typed_params()
    version = version if version is not None else _latest_version(conn, rule.tenant, "anomaly")
    if version is None:
        return None
    rows = conn.execute(
        "SELECT payload FROM predictions WHERE tenant_id = %s AND model = 'anomaly'"
        " AND model_version = %s AND (payload->>'score')::float8 >= %s",
        (rule.tenant, version, p.minScore),
    ).fetchall()
    flagged = [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]
    if rule.scope.storeIds:
        stores = set(rule.scope.storeIds)
        flagged = [a for a in flagged if str(a.get("storeId")) in stores]
    if p.direction != "any":
        flagged = [a for a in flagged if a.get("direction") == p.direction]
    dates = [date.fromisoformat(str(a["date"])[:10]) for a in flagged]
    ref = as_of or max(dates, default=None)
    findings = []
    for a, day in zip(flagged, dates, strict=True):
        if ref is not None and day <= ref - timedelta(days=p.withinDays):
            continue
        store, direction = str(a["storeId"]), a.get("direction", "change")
        title = f"Sales {direction} at store {store} on {day}"
        message = (
            f"The anomaly detector flagged store {store} on {day}: sales {a.get('sales')} "
            f"against {a.get('expected')} expected (score {a['score']}, detectors "
            f"{', '.join(a.get('detectors', []))}; rule {rule.name!r})."
        )
        payload = {**a, "modelVersion": version}
        findings.append(Finding({"store_id": store, "date": str(day)}, title, message, payload))
    return findings


def stockout(
    conn: psycopg.Connection, rule: Rule, *, version: int | None = None, **_: Any
) -> list[Finding] | None:
    """Store-products whose forecast demand over the lead time (the rule's quantile of the
    newest forecaster scoring) exceeds their on-hand units (the `inventory` table) by more than
    minShortfall. Products without an inventory row are not judged."""
    p = rule.typed_params()
    version = version if version is not None else _latest_version(conn, rule.tenant, "forecaster")
    if version is None:
        return None
    scope = rule.scope
    params: dict[str, Any] = {"tenant": rule.tenant, "version": version}
    where = ""
    if scope.storeIds:
        where += " AND i.store_id = ANY(%(stores)s)"
        params["stores"] = list(scope.storeIds)
    if scope.productIds:
        where += " AND i.product_id = ANY(%(products)s)"
        params["products"] = list(scope.productIds)
    if scope.departments:
        where += " AND d.department = ANY(%(departments)s)"
        params["departments"] = list(scope.departments)
    rows = conn.execute(
        "SELECT i.store_id, i.product_id, i.on_hand, f.payload->'weeks'"
        " FROM predictions f JOIN inventory i ON i.tenant_id = f.tenant_id"
        " AND i.store_id = split_part(f.entity, ':', 1)"
        " AND i.product_id::text = split_part(f.entity, ':', 2)"
        " LEFT JOIN products d ON d.tenant_id = i.tenant_id AND d.product_id = i.product_id"
        " WHERE f.tenant_id = %(tenant)s AND f.model = 'forecaster'"
        f" AND f.model_version = %(version)s{where}",
        params,
    ).fetchall()
    findings = []
    for store, product, on_hand, weeks in rows:
        weeks = (weeks if isinstance(weeks, list) else json.loads(weeks or "[]"))[: p.leadTimeWeeks]
        if not weeks:
            continue
        demand = sum(float(w[p.quantile]) for w in weeks)
        short = demand - float(on_hand)
        if short <= p.minShortfall:
            continue
        span = f"{len(weeks)} week{'s' if len(weeks) > 1 else ''}"
        title = f"Stockout risk: product {product} at store {store}"
        message = (
            f"Forecast demand ({p.quantile}) for product {product} at store {store} over the "
            f"next {span} is {demand:,.1f} units, {short:,.1f} more than the {on_hand} on hand "
            f"(rule {rule.name!r})."
        )
        payload = {
            "demand": round(demand, 3),
            "onHand": int(on_hand),
            "shortfall": round(short, 3),
            "quantile": p.quantile,
            "weeks": [w.get("week") for w in weeks],
            "modelVersion": version,
        }
        findings.append(
            Finding({"store_id": str(store), "product_id": int(product)}, title, message, payload)
        )
    return findings
