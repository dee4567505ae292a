"""Alert digest: the alerts raised in a period, by severity and status.

Reads `alert_events` (migration 0010: tenant_id, alert_id, rule_id, severity, title, message,
status 'active' | 'acknowledged' | 'resolved', triggered_at, acknowledged_at). Where that table
does not exist yet the report says so instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from statistics import median

import psycopg

from reports.document import Chart, Column, Kpi, Section, Table
from reports.params import AlertDigestParams, Period

Step = Callable[[str], None]
SEVERITIES = ("critical", "warning", "info")
STATUSES = ("active", "acknowledged", "resolved")


def has_alert_events(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('alert_events') IS NOT NULL").fetchone()[0]


def alerts_in(conn: psycopg.Connection, *, tenant: str, period: Period,
              severities: list[str] | None) -> list[tuple]:  # fmt: skip
    """Alerts triggered in the period, newest first."""
    return conn.execute(
        "SELECT alert_id, triggered_at, severity, status, title, message, rule_id,"
        " acknowledged_at FROM alert_events WHERE tenant_id = %(tenant)s"
        " AND triggered_at >= %(lower)s AND triggered_at < %(upper)s"
        " AND (%(sev)s::text[] IS NULL OR severity = ANY(%(sev)s::text[]))"
        " ORDER BY triggered_at DESC, alert_id DESC",
        {"tenant": tenant, "lower": period.lower, "upper": period.upper, "sev": severities},
    ).fetchall()


def _hours(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() / 3600


def alert_digest(conn: psycopg.Connection, *, tenant: str, params: AlertDigestParams,
                 period: Period, step: Step) -> list[Section]:  # fmt: skip
    """Sections of the alert digest: counts by severity × status, per day, and every alert."""
    step("alerts")
    if not has_alert_events(conn):
        note = ("The alert_events table does not exist in this warehouse yet (migration 0010, "
                "`retailpulse db upgrade`): there are no alerts to digest.")  # fmt: skip
        return [Section(heading="Alerts", notes=[note])]
    rows = alerts_in(conn, tenant=tenant, period=period, severities=params.severities)
    if not rows:
        return [Section(heading="Alerts", notes=[f"No alerts were raised from {period}."])]
    by = Counter((r[2], r[3]) for r in rows)
    severities = [s for s in SEVERITIES if any(k[0] == s for k in by)]
    severities += sorted({k[0] for k in by} - set(severities))
    matrix = [[s, *(by.get((s, st), 0) for st in STATUSES), sum(by.get((s, st), 0)
               for st in STATUSES)] for s in severities]  # fmt: skip
    ack = [h for r in rows if (h := _hours(r[1], r[7])) is not None]
    now = datetime.now(UTC)
    open_rows = [r for r in rows if r[3] == "active"]
    kpis = [
        Kpi(label="Alerts", value=len(rows), kind="int"),
        Kpi(label="Still active", value=len(open_rows), kind="int"),
        Kpi(label="Critical", value=sum(1 for r in rows if r[2] == "critical"), kind="int"),
        Kpi(
            label="Median hours to acknowledge", value=median(ack) if ack else None, kind="float"
        ),  # fmt: skip
        Kpi(
            label="Oldest active (hours)",
            value=max((now - r[1]).total_seconds() / 3600 for r in open_rows)
            if open_rows
            else None,
            kind="float",
        ),  # fmt: skip
    ]
    days = sorted({r[1].astimezone(UTC).date() for r in rows})
    per_day = Counter((r[1].astimezone(UTC).date(), r[2]) for r in rows)
    chart = Chart(
        title="Alerts per day by severity",
        kind="bar",
        x=[d.isoformat() for d in days],
        series={s: [float(per_day.get((d, s), 0)) for d in days] for s in severities},
        x_label="day (UTC)",
        y_label="alerts",
    )
    summary = Table(
        name="by_severity",
        title="Alerts by severity and status",
        columns=[
            Column(key="severity", label="Severity"),
            *(Column(key=s, label=s.capitalize(), kind="int") for s in STATUSES),
            Column(key="total", label="Total", kind="int"),
        ],  # fmt: skip
        rows=matrix,
    )
    detail = Table(
        name="alerts",
        title="Alerts, newest first",
        main=True,
        columns=[
            Column(key="alert_id", label="Alert"),
            Column(key="triggered_at", label="Triggered (UTC)"),
            Column(key="severity", label="Severity"),
            Column(key="status", label="Status"),
            Column(key="title", label="Title"),
            Column(key="message", label="Message"),
            Column(key="rule_id", label="Rule"),
            Column(key="hours_to_acknowledge", label="Hours to acknowledge", kind="float"),
        ],
        rows=[
            [
                str(r[0]),
                r[1].astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                r[2],
                r[3],
                r[4],
                r[5],
                str(r[6]),
                _hours(r[1], r[7]),
            ]
            for r in rows
        ],  # fmt: skip
    )
    return [Section(heading="Alerts", kpis=kpis, charts=[chart], tables=[summary, detail])]
