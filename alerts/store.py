"""The `alert_events` and `alert_deliveries` repository.

An alert is open while its status is `active` or `acknowledged`; the partial unique index on
(tenant_id, dedup_key) over open rows means a condition that holds on every evaluation raises
one alert, not one per evaluation, even with two writers evaluating at once. When the
condition clears the alert is `resolved`, and a later recurrence raises a new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

OPEN = ("active", "acknowledged")
SORTS = {
    "triggeredAt": "e.triggered_at",
    "alertId": "e.alert_id",
    "severity": "CASE e.severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END",
    "status": "CASE e.status WHEN 'active' THEN 3 WHEN 'acknowledged' THEN 2 ELSE 1 END",
}


@dataclass(frozen=True)
class Finding:
    """A condition that holds for one subject of a rule (what an alert is raised for)."""

    subject: dict[str, Any]
    title: str
    message: str
    payload: dict[str, Any] = field(default_factory=dict)

    def dedup_key(self, rule_id: int) -> str:
        """`rule:<id>|k=v|…` over the subject's sorted keys: one open alert per rule and subject."""
        parts = [f"{k}={self.subject[k]}" for k in sorted(self.subject)]
        return "|".join([f"rule:{rule_id}", *parts])


_ALERT_COLUMNS = (
    "e.alert_id, e.rule_id, r.name, r.kind, e.dedup_key, e.severity, e.title, e.message,"
    " e.subject, e.status, e.triggered_at, e.acknowledged_at, e.acknowledged_by,"
    " e.resolved_at, e.payload, e.tenant_id"
)
_ALERT_KEYS = (
    "alertId", "ruleId", "ruleName", "kind", "dedupKey", "severity", "title", "message",
    "subject", "status", "triggeredAt", "acknowledgedAt", "acknowledgedBy", "resolvedAt",
    "payload", "tenant",
)  # fmt: skip
_FROM = (
    " FROM alert_events e LEFT JOIN alert_rules r"
    " ON r.tenant_id = e.tenant_id AND r.rule_id = e.rule_id"
)


def _alert(row: tuple) -> dict[str, Any]:
    return dict(zip(_ALERT_KEYS, row, strict=True))


def open_alerts(conn: psycopg.Connection, *, tenant: str, rule_id: int) -> dict[str, int]:
    """dedup_key → alert_id of the rule's open (active or acknowledged) alerts."""
    rows = conn.execute(
        "SELECT dedup_key, alert_id FROM alert_events"
        " WHERE tenant_id = %s AND rule_id = %s AND status <> 'resolved'",
        (tenant, rule_id),
    ).fetchall()
    return {str(k): int(a) for k, a in rows}


def open_subjects(conn: psycopg.Connection, *, tenant: str, rule_id: int) -> list[dict]:
    """The subjects of the rule's open alerts (re-evaluated even when no sale mentions them)."""
    rows = conn.execute(
        "SELECT subject FROM alert_events"
        " WHERE tenant_id = %s AND rule_id = %s AND status <> 'resolved'",
        (tenant, rule_id),
    ).fetchall()
    return [r[0] for r in rows]


def raise_alert(
    conn: psycopg.Connection, *, tenant: str, rule_id: int, severity: str, finding: Finding
) -> dict[str, Any] | None:
    """Insert an active alert for `finding`; None when one with its key is already open."""
    row = conn.execute(
        "INSERT INTO alert_events (tenant_id, rule_id, dedup_key, severity, title, message,"
        " subject, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, dedup_key) WHERE status <> 'resolved' DO NOTHING"
        " RETURNING alert_id",
        (
            tenant,
            rule_id,
            finding.dedup_key(rule_id),
            severity,
            finding.title,
            finding.message,
            json.dumps(finding.subject, default=str),
            json.dumps(finding.payload, default=str),
        ),
    ).fetchone()
    if row is None:
        return None
    return get_alert(conn, tenant=tenant, alert_id=int(row[0]))


def resolve(conn: psycopg.Connection, *, tenant: str, alert_ids: list[int]) -> int:
    """Resolve open alerts whose condition cleared; returns how many changed."""
    if not alert_ids:
        return 0
    return conn.execute(
        "UPDATE alert_events SET status = 'resolved', resolved_at = now()"
        " WHERE tenant_id = %s AND alert_id = ANY(%s) AND status <> 'resolved'",
        (tenant, alert_ids),
    ).rowcount


def _store_filter(stores: frozenset[str] | None) -> tuple[str, list[Any]]:
    """Alerts a store-scoped caller may see: those whose subject names one of their stores."""
    if stores is None:
        return "", []
    return " AND e.subject->>'store_id' = ANY(%s)", [sorted(stores)]


def get_alert(
    conn: psycopg.Connection,
    *,
    tenant: str,
    alert_id: int,
    stores: frozenset[str] | None = None,
) -> dict[str, Any] | None:
    """One alert of the tenant (None when unknown, another tenant's or outside `stores`)."""
    where, params = _store_filter(stores)
    row = conn.execute(
        f"SELECT {_ALERT_COLUMNS}{_FROM} WHERE e.tenant_id = %s AND e.alert_id = %s{where}",
        [tenant, alert_id, *params],
    ).fetchone()
    return None if row is None else _alert(row)


def acknowledge(
    conn: psycopg.Connection,
    *,
    tenant: str,
    alert_id: int,
    by: str | None,
    stores: frozenset[str] | None = None,
) -> dict[str, Any] | None:
    """Acknowledge an active alert (idempotent: an acknowledged or resolved one is returned as
    it is); None when the alert is unknown to this caller."""
    where, params = _store_filter(stores)
    conn.execute(
        "UPDATE alert_events e SET status = 'acknowledged', acknowledged_at = now(),"
        f" acknowledged_by = %s WHERE e.tenant_id = %s AND e.alert_id = %s"
        f" AND e.status = 'active'{where}",
        [by, tenant, alert_id, *params],
    )
    return get_alert(conn, tenant=tenant, alert_id=alert_id, stores=stores)


def list_alerts(
    conn: psycopg.Connection,
    *,
    tenant: str,
    statuses: tuple[str, ...] | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    stores: frozenset[str] | None = None,
    sort: str = "triggeredAt",
    order: str = "desc",
    page: int = 1,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the tenant's alerts (filters on status, severity, trigger time and stores)
    and the total count matching."""
    clauses, params = ["e.tenant_id = %s"], [tenant]
    if statuses is not None:
        clauses.append("e.status = ANY(%s)")
        params.append(list(statuses))
    if severity is not None:
        clauses.append("e.severity = %s")
        params.append(severity)
    if since is not None:
        clauses.append("e.triggered_at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("e.triggered_at < %s")
        params.append(until)
    where, extra = _store_filter(stores)
    sql_where = " WHERE " + " AND ".join(clauses) + where
    params += extra
    total = conn.execute(f"SELECT count(*) FROM alert_events e{sql_where}", params).fetchone()[0]
    direction = "ASC" if order == "asc" else "DESC"
    rows = conn.execute(
        f"SELECT {_ALERT_COLUMNS}{_FROM}{sql_where}"
        f" ORDER BY {SORTS[sort]} {direction}, e.alert_id {direction} LIMIT %s OFFSET %s",
        [*params, limit, (page - 1) * limit],
    ).fetchall()
    return [_alert(r) for r in rows], int(total)


def record_delivery(
    conn: psycopg.Connection,
    *,
    tenant: str,
    alert_id: int,
    channel: str,
    target: str,
    attempt: int,
    status: str,
    response_code: int | None = None,
    error: str | None = None,
) -> None:
    """One notification attempt (sent, failed or skipped)."""
    conn.execute(
        "INSERT INTO alert_deliveries (tenant_id, alert_id, channel, target, attempt, status,"
        " response_code, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (tenant, alert_id, channel, target, attempt, status, response_code, error),
    )


def deliveries(conn: psycopg.Connection, *, tenant: str, alert_id: int) -> list[dict[str, Any]]:
    """Every notification attempt of an alert, in order."""
    rows = conn.execute(
        "SELECT channel, target, attempt, status, response_code, error, at FROM alert_deliveries"
        " WHERE tenant_id = %s AND alert_id = %s ORDER BY delivery_id",
        (tenant, alert_id),
    ).fetchall()
    keys = ("channel", "target", "attempt", "status", "responseCode", "error", "at")
    return [dict(zip(keys, r, strict=True)) for r in rows]
