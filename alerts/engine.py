"""Alert rule evaluation: on every ingested batch, stream batch and batch scoring.

`core.events.after_commit` calls `on_landed` once a writer's data is committed. Which rules
run depends on what landed (only the tenant's enabled rules):

| landed (`Landed.source`)                    | rule kinds evaluated                      |
|---------------------------------------------|-------------------------------------------|
| sales (completejourney, file, stream, …)    | threshold, performance_drop, stockout     |
| score, model "anomaly"                      | anomaly                                   |
| score, model "forecaster"                   | stockout                                  |
| inventory (stock levels moved)              | stockout                                  |
| manual (`retailpulse alerts evaluate`)      | all                                       |

For sales, a rule is skipped when the batch cannot have changed its answer: its scope lists
stores and the batch touched none of them, or the batch's newest day lies before the rule's
window (`Landed` days are UTC dates, never before the business day, so this errs towards
evaluating). Each rule is evaluated completely, in its own transaction under an advisory
lock (two writers evaluating the same rule take turns): new findings raise alerts (one per
rule and subject while open), open alerts whose condition no longer holds are resolved. A
rule that fails is logged and the others still run. Notifications go out after the commit,
in a background thread (`alerts.notify`).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import psycopg

from alerts import notify
from alerts.conditions import as_of_day, performance_drop, threshold
from alerts.rules import KINDS, Rule, list_rules
from alerts.scored import anomaly, stockout
from alerts.store import Finding, open_alerts, raise_alert, resolve
from core.events import Landed

log = logging.getLogger(__name__)

SALES_KINDS = ("threshold", "performance_drop", "stockout")
MANUAL = "manual"  # `retailpulse alerts evaluate`: every rule, now
INVENTORY = "inventory"  # stock levels moved (no sales): stockout rules only
SCORE_KINDS = {"anomaly": ("anomaly",), "forecaster": ("stockout",)}
WINDOWED = ("threshold", "performance_drop")
EVALUATORS = {
    "threshold": threshold,
    "performance_drop": performance_drop,
    "anomaly": anomaly,
    "stockout": stockout,
}
CONNECT_TIMEOUT_S = 5


def kinds_for(landed: Landed) -> tuple[str, ...]:
    """The rule kinds whose answer `landed` can change."""
    if landed.source == "score":
        return SCORE_KINDS.get(landed.model or "", ())
    if landed.source == MANUAL:
        return KINDS
    if landed.source == INVENTORY:
        return ("stockout",)
    return SALES_KINDS


def touched(rule: Rule, landed: Landed, as_of: date | None) -> bool:
    """Whether `landed` may change the rule's answer (cheap checks; True when unsure)."""
    if landed.source == "score":
        return True
    stores = set(rule.scope.storeIds)
    if stores and landed.stores is not None and not stores & landed.stores:
        return False
    if rule.kind not in WINDOWED or landed.everything or as_of is None:
        return True
    p = rule.typed_params()
    last = as_of - timedelta(days=1) if p.completeDaysOnly else as_of
    days = p.windowDays * (2 if rule.kind == "performance_drop" else 1)
    return landed.last_day >= last - timedelta(days=days - 1)


def apply_rule(
    conn: psycopg.Connection, rule: Rule, *, as_of: date | None, version: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Evaluate one rule and write the outcome (caller's transaction): (new alerts, resolved)."""
    findings = EVALUATORS[rule.kind](conn, rule, as_of=as_of, version=version)
    if findings is None:  # nothing to judge (no predictions yet): leave open alerts alone
        return [], 0
    found: dict[str, Finding] = {f.dedup_key(rule.rule_id): f for f in findings}
    already = open_alerts(conn, tenant=rule.tenant, rule_id=rule.rule_id)
    new = []
    for key, finding in found.items():
        if key in already:
            continue
        alert = raise_alert(
            conn, tenant=rule.tenant, rule_id=rule.rule_id, severity=rule.severity,
            finding=finding,
        )  # fmt: skip
        if alert is not None:
            new.append(alert)
    cleared = [alert_id for key, alert_id in already.items() if key not in found]
    return new, resolve(conn, tenant=rule.tenant, alert_ids=cleared)


def evaluate(conn: psycopg.Connection, landed: Landed) -> list[notify.Notice]:
    """Evaluate the rules `landed` concerns on an autocommit connection; returns the new
    alerts with where to send them (not yet sent)."""
    kinds = kinds_for(landed)
    if not kinds:
        return []
    rules = list_rules(conn, tenant=landed.tenant, kinds=kinds, enabled_only=True)
    if not rules:
        return []
    needs_day = any(r.kind in (*WINDOWED, "anomaly") for r in rules)
    as_of = as_of_day(conn, tenant=landed.tenant) if needs_day else None
    version = dict(landed.details).get("version")
    notices: list[notify.Notice] = []
    for rule in rules:
        if not touched(rule, landed, as_of):
            continue
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"retailpulse:alerts:{rule.tenant}:{rule.rule_id}",),
                )
                new, resolved = apply_rule(
                    conn, rule, as_of=as_of, version=int(version) if version is not None else None
                )
        except Exception:  # one broken rule must not keep the others from running
            log.exception("alert rule %s of tenant %s failed", rule.rule_id, rule.tenant)
            continue
        if new or resolved:
            log.info(
                "rule %s (%s): %d new alerts, %d resolved", rule.rule_id, rule.kind, len(new),
                resolved,
            )  # fmt: skip
        notices += [notify.Notice(a, rule.channels, rule.secret) for a in new]
    return notices


def _targets() -> tuple[str, str | None]:
    """(warehouse URL, Kafka bootstrap or None), starting nothing."""
    from core.errors import ServiceUnavailable
    from core.services import get_endpoints
    from core.settings import get_settings

    try:
        endpoints = get_endpoints(start=False)
        return endpoints.database_url, endpoints.kafka_bootstrap or None
    except ServiceUnavailable:  # e.g. the broker is down: evaluate anyway, Kafka is skipped
        from core.db import database_url

        settings = get_settings()
        return settings.database_url or database_url(), settings.kafka_bootstrap


def on_landed(landed: Landed, *, wait: bool = False) -> list[dict[str, Any]]:
    """Evaluate the tenant's alert rules against what `landed` changed; returns new alerts.

    Notifications are dispatched to the background worker (`wait=True`: delivered before
    returning, as the CLI wants)."""
    if not kinds_for(landed):
        return []
    from core.db import libpq_url

    url, bootstrap = _targets()
    url = landed.database_url or url  # the warehouse the writer wrote to
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as c:
        notices = evaluate(c, landed)
    future = notify.dispatch(notices, database_url=url, bootstrap=bootstrap)
    if wait and future is not None:
        future.result()
    return [n.alert for n in notices]
