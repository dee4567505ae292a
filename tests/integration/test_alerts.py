"""Alerts end to end on real services: rules evaluated when stream batches and batch scores
land, deduplicated while open, resolved when the condition clears, notified by a signed and
retried webhook (a local receiver), e-mail (aiosmtpd) and Kafka `alerts.trigger` (the session's
broker), and served by the alerts routes with tenant and store isolation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from serving.deps import store_scope
from tests.integration.alerts_support import (
    DAY,
    SECRET,
    TENANT,
    Receiver,
    alerts,
    alerts_topic_end,
    baskets,
    create_rule,
    deliveries,
    free_port,
    kafka_alerts,
    land,
    threshold_rule,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp(monkeypatch):
    """A local SMTP server (aiosmtpd) and RETAILPULSE_SMTP_* pointing at it."""
    from aiosmtpd.controller import Controller

    from core.settings import get_settings

    class Inbox:
        def __init__(self) -> None:
            self.mails: list[Any] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            self.mails.append(envelope)
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("RETAILPULSE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RETAILPULSE_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("RETAILPULSE_SMTP_FROM", "alerts@retailpulse.test")
    get_settings.cache_clear()
    yield inbox
    controller.stop()
    get_settings.cache_clear()


def test_threshold_rule_fires_once_notifies_and_resolves(
    api, warehouse_env, service_env, smtp
) -> None:
    bootstrap = service_env["RETAILPULSE_KAFKA_BOOTSTRAP"]
    since = alerts_topic_end(bootstrap)  # other tests' alerts came before
    receiver = Receiver([500])  # the first delivery fails: the retry must get through
    try:
        rule = create_rule(
            api,
            {
                "kind": "threshold", "name": "Busy store", "severity": "critical",
                "params": {"metric": "baskets", "operator": ">=", "value": 2},
                "scope": {"storeIds": ["367"]},
                "channels": {"webhooks": [receiver.url], "emails": ["ops@shop.test"]},
                "webhookSecret": SECRET,
            },
        )  # fmt: skip
        assert rule["webhookSecret"] == SECRET
        other = create_rule(api, {**threshold_rule(), "name": "other tenant"}, tenant="acme")
        land(warehouse_env, baskets(1, "367", DAY, [5.0]))
        assert alerts(warehouse_env) == []  # one basket: below the threshold

        land(warehouse_env, baskets(2, "367", DAY + timedelta(hours=1), [7.0]))
        (alert,) = alerts(warehouse_env)
        alert_id, rule_id, status, subject, payload = alert
        assert (rule_id, status, subject) == (rule["ruleId"], "active", {"store_id": "367"})
        assert payload["value"] == 2 and payload["window"] == {
            "from": "2017-03-04",
            "to": "2017-03-04",
        }
        # webhook: a 500, then the retry; both signed; every attempt recorded
        assert [c["signed"] for c in receiver.calls] == [True, True]
        assert receiver.calls[1]["body"]["alert_id"] == alert_id
        assert deliveries(warehouse_env, alert_id) == [
            ("kafka", 1, "sent", None),
            ("webhook", 1, "failed", 500),
            ("webhook", 2, "sent", 200),
            ("email", 1, "sent", 250),
        ]
        (mail,) = smtp.mails
        assert mail.rcpt_tos == ["ops@shop.test"]
        assert "Baskets at or above 2 for store 367" in mail.content.decode()
        sent = [m for m in kafka_alerts(bootstrap, since)
                if m["alert_id"] == alert_id and m["tenant"] == TENANT]  # fmt: skip
        assert len(sent) == 1 and sent[0]["severity"] == "critical"
        assert sent[0]["stores"] == ["367"]

        # the condition still holds: not raised or notified again
        land(warehouse_env, baskets(3, "367", DAY + timedelta(hours=2), [1.0]))
        assert [a[0] for a in alerts(warehouse_env)] == [alert_id]
        assert len(receiver.calls) == 2 and len(smtp.mails) == 1

        # a new business day with one basket: the condition cleared, the alert resolves
        land(warehouse_env, baskets(4, "367", DAY + timedelta(days=1), [2.0]))
        assert [a[2] for a in alerts(warehouse_env)] == ["resolved"]
        # ... and a recurrence is a new alert
        land(warehouse_env, baskets(5, "367", DAY + timedelta(days=1, hours=1), [2.0]))
        assert [a[2] for a in alerts(warehouse_env)] == ["resolved", "active"]
        # the other tenant's identical rule saw none of this tenant's data
        assert alerts(warehouse_env, "acme") == [] and other["ruleId"] != rule["ruleId"]
    finally:
        receiver.close()


def test_unreachable_webhook_never_loses_the_alert(api, warehouse_env) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    create_rule(api, {**threshold_rule(value=1), "channels": {"webhooks": [dead]}})
    land(warehouse_env, baskets(1, "367", DAY, [5.0]))
    ((alert_id, _, status, _, _),) = alerts(warehouse_env)
    assert status == "active"
    webhook = [d for d in deliveries(warehouse_env, alert_id) if d[0] == "webhook"]
    assert [(d[1], d[2]) for d in webhook] == [(n, "failed") for n in (1, 2, 3)]


def test_performance_drop_against_the_previous_period(api, warehouse_env) -> None:
    rule = {
        "kind": "performance_drop", "name": "revenue fell",
        "params": {"metric": "revenue", "dropPct": 50, "windowDays": 1,
                   "completeDaysOnly": False},
    }  # fmt: skip
    create_rule(api, rule)
    land(warehouse_env, baskets(1, "367", DAY, [100.0]) + baskets(2, "368", DAY, [100.0]))
    assert alerts(warehouse_env) == []  # nothing before to compare with
    later = DAY + timedelta(days=1)
    land(warehouse_env, baskets(3, "367", later, [20.0]) + baskets(4, "368", later, [90.0]))
    ((_, _, status, subject, payload),) = alerts(warehouse_env)
    assert subject == {"store_id": "367"} and payload["dropPct"] == 80.0


def test_routes_acknowledge_history_scope_and_delete(api, warehouse_env) -> None:
    rule = create_rule(api, threshold_rule(value=1, per="store") | {"scope": {}})
    land(warehouse_env, baskets(1, "367", DAY, [5.0]) + baskets(2, "368", DAY, [5.0]))
    active = api.get("/api/v1/alerts/active").json()["data"]
    assert active["total"] == 2 and {a["subject"]["store_id"] for a in active["items"]} == {
        "367",
        "368",
    }
    first = active["items"][0]["alertId"]
    for _ in range(2):  # idempotent
        r = api.put(f"/api/v1/alerts/{first}/acknowledge")
        assert r.status_code == 200 and r.json()["data"]["status"] == "acknowledged"
    assert r.json()["data"]["acknowledgedAt"] is not None
    still = api.get("/api/v1/alerts/active").json()["data"]["items"]
    assert {a["status"] for a in still} == {"active", "acknowledged"}
    only = api.get("/api/v1/alerts/active", params={"status": "active"}).json()["data"]
    assert only["total"] == 1

    # another tenant sees none of it and cannot acknowledge it
    other = {"X-Tenant-ID": "acme"}
    assert api.get("/api/v1/alerts/active", headers=other).json()["data"]["total"] == 0
    assert api.put(f"/api/v1/alerts/{first}/acknowledge", headers=other).status_code == 404
    assert api.put("/api/v1/alerts/999999/acknowledge").status_code == 404
    assert api.delete(f"/api/v1/alerts/rules/{rule['ruleId']}", headers=other).status_code == 404

    # a store-scoped caller sees and acknowledges only their stores' alerts
    api.app.dependency_overrides[store_scope] = lambda: frozenset({"368"})
    try:
        mine = api.get("/api/v1/alerts/history").json()["data"]["items"]
        assert [a["subject"]["store_id"] for a in mine] == ["368"]
        hidden = next(a for a in active["items"] if a["subject"]["store_id"] == "367")
        assert api.put(f"/api/v1/alerts/{hidden['alertId']}/acknowledge").status_code == 404
        r = api.post("/api/v1/alerts/rules", json=threshold_rule())  # scoped to 367
        assert r.status_code == 403
    finally:
        api.app.dependency_overrides.clear()

    page = api.get("/api/v1/alerts/history", params={"limit": 1, "page": 2, "order": "asc"})
    data = page.json()["data"]
    assert data["total"] == 2 and len(data["items"]) == 1 and data["page"] == 2
    assert (
        api.get("/api/v1/alerts/history", params={"severity": "critical"}).json()["data"]["total"]
        == 0
    )
    future = {"from": "2199-01-01T00:00:00"}
    assert api.get("/api/v1/alerts/history", params=future).json()["data"]["total"] == 0
    bad = api.get("/api/v1/alerts/history", params={"from": "2030-01-01", "to": "2020-01-01"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["errors"][0]["field"] == "from"

    assert [r["ruleId"] for r in api.get("/api/v1/alerts/rules").json()["data"]["items"]] == [
        rule["ruleId"]
    ]
    assert "webhookSecret" not in api.get("/api/v1/alerts/rules").text
    r = api.delete(f"/api/v1/alerts/rules/{rule['ruleId']}")
    assert r.status_code == 200 and r.json()["data"]["alertsResolved"] == 2
    assert api.delete(f"/api/v1/alerts/rules/{rule['ruleId']}").status_code == 404
    assert api.get("/api/v1/alerts/active").json()["data"]["total"] == 0
    # a deleted rule is no longer evaluated
    land(warehouse_env, baskets(3, "369", DAY, [5.0]))
    assert len(alerts(warehouse_env)) == 2


def test_two_writers_cannot_open_the_same_alert_twice(warehouse_env) -> None:
    """The partial unique index: a second open alert with the same key is refused."""
    with psycopg.connect(warehouse_env) as conn:
        conn.execute(
            "INSERT INTO alert_rules (tenant_id, rule_id, name, kind, params, severity, secret)"
            " VALUES ('default', 1, 'r', 'threshold', '{}', 'info', 's')"
        )
        insert = (
            "INSERT INTO alert_events (tenant_id, rule_id, dedup_key, severity, title, message,"
            " subject, status) VALUES ('default', 1, 'rule:1', 'info', 't', 'm', '{}', %s)"
        )
        conn.execute(insert, ("resolved",))
        conn.execute(insert, ("acknowledged",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("active",))
