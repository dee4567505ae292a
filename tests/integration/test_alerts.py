"""Alerts end to end on real services: rules evaluated when stream batches and batch scores
land, deduplicated while open, resolved when the condition clears, notified by a signed and
retried webhook (a local receiver), e-mail (aiosmtpd) and Kafka `alerts.trigger` (the session's
broker), and served by the alerts routes with tenant and store isolation."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient

from alerts import engine, notify
from core import events, webhooks
from core.events import Landed
from core.predictions import replace_predictions
from integrations.messages import BasketMessage
from integrations.warehouse import write_batch
from serving.app import create_api
from serving.deps import Backends, store_scope

pytestmark = pytest.mark.integration
TENANT = "default"
DAY = datetime(2017, 3, 4, 15, 0, tzinfo=UTC)  # business day 2017-03-04
SECRET = "test-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook receiver answering the scripted statuses in turn (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = webhooks.verify(
                    SECRET,
                    self.headers["X-RetailPulse-Timestamp"],
                    body,
                    self.headers["X-RetailPulse-Signature"],
                )
                outer.calls.append({"body": json.loads(body), "signed": ok})
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("RETAILPULSE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RETAILPULSE_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("RETAILPULSE_SMTP_FROM", "alerts@retailpulse.test")
    get_settings.cache_clear()
    yield inbox
    controller.stop()
    get_settings.cache_clear()


@pytest.fixture
def api(warehouse_env):
    """The API app on the test's warehouse (auth off: every store, no actor)."""
    app = create_api(Backends(default_tenant=TENANT))
    with TestClient(app) as client:
        yield client


def _baskets(start_id: int, store: str, when: datetime, values: list[float]) -> list:
    return [
        BasketMessage(
            transaction_id=start_id + n, store_id=store, customer_id=900 + n, timestamp=when,
            lines=[{"product_id": 10, "quantity": 1, "sales_value": v}],
        )
        for n, v in enumerate(values)
    ]  # fmt: skip


def _land(url: str, baskets: list, tenant: str = TENANT) -> None:
    """One stream batch as the consumer writes it: committed, then the after-commit hooks."""
    with psycopg.connect(url) as conn, conn.transaction():
        result = write_batch(conn, tenant=tenant, baskets=baskets, inventory=[])
    events.after_commit(events.sales_landed(tenant, "stream", result.times, result.stores))
    assert notify.drain(timeout=60)


def _alerts(url: str, tenant: str = TENANT) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT alert_id, rule_id, status, subject, payload FROM alert_events"
            " WHERE tenant_id = %s ORDER BY alert_id",
            (tenant,),
        ).fetchall()


def _deliveries(url: str, alert_id: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT channel, attempt, status, response_code FROM alert_deliveries"
            " WHERE alert_id = %s ORDER BY delivery_id",
            (alert_id,),
        ).fetchall()


def _kafka_alerts(bootstrap: str) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    try:
        tp = TopicPartition(notify.ALERTS_TOPIC, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def _create(api: TestClient, body: dict[str, Any], tenant: str = TENANT) -> dict[str, Any]:
    r = api.post("/api/v1/alerts/rules", json=body, headers={"X-Tenant-ID": tenant})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_threshold_rule_fires_once_notifies_and_resolves(
    api, warehouse_env, service_env, smtp
) -> None:
    receiver = Receiver([500])  # the first delivery fails: the retry must get through
    try:
        rule = _create(
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
        other = _create(api, {**_threshold(), "name": "other tenant"}, tenant="acme")
        _land(warehouse_env, _baskets(1, "367", DAY, [5.0]))
        assert _alerts(warehouse_env) == []  # one basket: below the threshold

        _land(warehouse_env, _baskets(2, "367", DAY + timedelta(hours=1), [7.0]))
        (alert,) = _alerts(warehouse_env)
        alert_id, rule_id, status, subject, payload = alert
        assert (rule_id, status, subject) == (rule["ruleId"], "active", {"store_id": "367"})
        assert payload["value"] == 2 and payload["window"] == {
            "from": "2017-03-04",
            "to": "2017-03-04",
        }
        # webhook: a 500, then the retry; both signed; every attempt recorded
        assert [c["signed"] for c in receiver.calls] == [True, True]
        assert receiver.calls[1]["body"]["alert_id"] == alert_id
        assert _deliveries(warehouse_env, alert_id) == [
            ("kafka", 1, "sent", None),
            ("webhook", 1, "failed", 500),
            ("webhook", 2, "sent", 200),
            ("email", 1, "sent", 250),
        ]
        (mail,) = smtp.mails
        assert mail.rcpt_tos == ["ops@shop.test"]
        assert "Baskets at or above 2 for store 367" in mail.content.decode()
        sent = [m for m in _kafka_alerts(service_env["RETAILPULSE_KAFKA_BOOTSTRAP"])
                if m["alert_id"] == alert_id and m["tenant"] == TENANT]  # fmt: skip
        assert len(sent) == 1 and sent[0]["severity"] == "critical"
        assert sent[0]["stores"] == ["367"]

        # the condition still holds: not raised or notified again
        _land(warehouse_env, _baskets(3, "367", DAY + timedelta(hours=2), [1.0]))
        assert [a[0] for a in _alerts(warehouse_env)] == [alert_id]
        assert len(receiver.calls) == 2 and len(smtp.mails) == 1

        # a new business day with one basket: the condition cleared, the alert resolves
        _land(warehouse_env, _baskets(4, "367", DAY + timedelta(days=1), [2.0]))
        assert [a[2] for a in _alerts(warehouse_env)] == ["resolved"]
        # ... and a recurrence is a new alert
        _land(warehouse_env, _baskets(5, "367", DAY + timedelta(days=1, hours=1), [2.0]))
        assert [a[2] for a in _alerts(warehouse_env)] == ["resolved", "active"]
        # the other tenant's identical rule saw none of this tenant's data
        assert _alerts(warehouse_env, "acme") == [] and other["ruleId"] != rule["ruleId"]
    finally:
        receiver.close()


def _threshold(**params: Any) -> dict[str, Any]:
    p = {"metric": "baskets", "operator": ">=", "value": 2, **params}
    return {"kind": "threshold", "name": "busy", "params": p, "scope": {"storeIds": ["367"]}}


def test_unreachable_webhook_never_loses_the_alert(api, warehouse_env) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/hook"
    _create(api, {**_threshold(value=1), "channels": {"webhooks": [dead]}})
    _land(warehouse_env, _baskets(1, "367", DAY, [5.0]))
    ((alert_id, _, status, _, _),) = _alerts(warehouse_env)
    assert status == "active"
    webhook = [d for d in _deliveries(warehouse_env, alert_id) if d[0] == "webhook"]
    assert [(d[1], d[2]) for d in webhook] == [(n, "failed") for n in (1, 2, 3)]


def test_performance_drop_against_the_previous_period(api, warehouse_env) -> None:
    rule = {
        "kind": "performance_drop", "name": "revenue fell",
        "params": {"metric": "revenue", "dropPct": 50, "windowDays": 1,
                   "completeDaysOnly": False},
    }  # fmt: skip
    _create(api, rule)
    _land(warehouse_env, _baskets(1, "367", DAY, [100.0]) + _baskets(2, "368", DAY, [100.0]))
    assert _alerts(warehouse_env) == []  # nothing before to compare with
    later = DAY + timedelta(days=1)
    _land(warehouse_env, _baskets(3, "367", later, [20.0]) + _baskets(4, "368", later, [90.0]))
    ((_, _, status, subject, payload),) = _alerts(warehouse_env)
    assert subject == {"store_id": "367"} and payload["dropPct"] == 80.0


def _anomaly_rows(flags: dict[str, float]) -> pd.DataFrame:
    rows = []
    for entity, score in flags.items():
        store, day = entity.split(":")
        payload = {
            "storeId": store, "date": day, "sales": 10.0, "expected": 100.0, "score": score,
            "direction": "drop", "detectors": ["robust_z"],
        }  # fmt: skip
        rows.append({"entity": entity, "payload": json.dumps(payload)})
    return pd.DataFrame(rows, columns=["entity", "payload"])


def _score(url: str, model: str, version: int, rows: pd.DataFrame) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        replace_predictions(
            conn, tenant=TENANT, model=model, version=version, run_id=f"run{version}",
            scored_at=datetime.now(UTC), rows=rows,
        )  # fmt: skip
    landed = Landed(TENANT, "score", model=model, details=(("version", version),))
    return engine.on_landed(landed, wait=True)


def test_anomaly_rule_fires_from_detector_scores(api, warehouse_env) -> None:
    _create(api, {"kind": "anomaly", "name": "odd days", "params": {"minScore": 0.95}})
    new = _score(
        warehouse_env, "anomaly", 1,
        _anomaly_rows({"367:2017-03-04": 0.99, "368:2017-03-04": 0.5, "369:2017-01-02": 0.99}),
    )  # fmt: skip
    # 368 scored below minScore; 369's day lies outside the last 7 days
    assert [a["subject"] for a in new] == [{"store_id": "367", "date": "2017-03-04"}]
    assert new[0]["payload"]["score"] == 0.99
    assert _score(warehouse_env, "anomaly", 1, _anomaly_rows({"367:2017-03-04": 0.99})) == []
    # the next scoring no longer flags it: resolved
    _score(warehouse_env, "anomaly", 2, _anomaly_rows({"368:2017-03-04": 0.97}))
    statuses = {a[3]["store_id"]: a[2] for a in _alerts(warehouse_env)}
    assert statuses == {"367": "resolved", "368": "active"}


def _forecast_rows(weekly: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for entity, p50 in weekly.items():
        weeks = [{"week": 100 + h, "p10": v / 2, "p50": v, "p90": v * 2} for h, v in enumerate(p50)]
        rows.append({"entity": entity, "payload": json.dumps({"weeks": weeks})})
    return pd.DataFrame(rows, columns=["entity", "payload"])


def _stock(url: str, levels: dict[tuple[str, int], int]) -> None:
    with psycopg.connect(url) as conn:
        for (store, product), on_hand in levels.items():
            conn.execute(
                "INSERT INTO inventory (tenant_id, store_id, product_id, on_hand, source_rule)"
                " VALUES (%s, %s, %s, %s, 'test') ON CONFLICT (tenant_id, store_id, product_id)"
                " DO UPDATE SET on_hand = EXCLUDED.on_hand",
                (TENANT, store, product, on_hand),
            )


def test_stockout_rule_compares_lead_time_demand_with_stock(api, warehouse_env) -> None:
    _create(api, {"kind": "stockout", "name": "running out", "params": {"leadTimeWeeks": 2}})
    _stock(warehouse_env, {("367", 10): 5, ("367", 11): 100})
    forecast = _forecast_rows({"367:10": [4, 3, 50], "367:11": [4, 3, 50], "367:12": [9, 9]})
    new = _score(warehouse_env, "forecaster", 1, forecast)
    # 10: 4 + 3 = 7 > 5 on hand; 11 has stock; 12 has no inventory row
    assert [a["subject"] for a in new] == [{"store_id": "367", "product_id": 10}]
    assert new[0]["payload"]["shortfall"] == 2.0
    _stock(warehouse_env, {("367", 10): 50})
    _score(warehouse_env, "forecaster", 1, forecast)
    assert [a[2] for a in _alerts(warehouse_env)] == ["resolved"]


def test_routes_acknowledge_history_scope_and_delete(api, warehouse_env) -> None:
    rule = _create(api, _threshold(value=1, per="store") | {"scope": {}})
    _land(warehouse_env, _baskets(1, "367", DAY, [5.0]) + _baskets(2, "368", DAY, [5.0]))
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
        r = api.post("/api/v1/alerts/rules", json=_threshold())  # scoped to 367
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
    _land(warehouse_env, _baskets(3, "369", DAY, [5.0]))
    assert len(_alerts(warehouse_env)) == 2


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


def test_cli_adds_evaluates_lists_and_tests_a_webhook(warehouse_env, tmp_path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    _land(warehouse_env, _baskets(1, "367", DAY, [5.0]))  # before the rule: nothing to raise
    path = tmp_path / "rule.yaml"
    path.write_text(
        "kind: threshold\nname: any sale\nparams: {metric: revenue, operator: '>', value: 1}\n"
    )
    result = runner.invoke(app, ["alerts", "add-rule", str(path)])
    assert result.exit_code == 0 and "created" in result.output
    path.write_text("kind: threshold\nname: no value\nparams: {metric: revenue}\n")
    result = runner.invoke(app, ["alerts", "add-rule", str(path)])
    assert result.exit_code != 0 and "params.operator" in str(result.exception)
    result = runner.invoke(app, ["alerts", "evaluate"])
    assert result.exit_code == 0 and "1 new alert" in result.output
    assert "store 367" in runner.invoke(app, ["alerts", "active"]).output
    assert "any sale" in runner.invoke(app, ["alerts", "rules"]).output
    receiver = Receiver([503])
    try:
        result = runner.invoke(app, ["alerts", "test-webhook", receiver.url, "--secret", SECRET])
        assert result.exit_code == 0, result.output
        assert [c["signed"] for c in receiver.calls] == [True, True]
        assert "attempt 2: sent" in result.output
    finally:
        receiver.close()


def test_integration_webhooks_subscribed_to_alerts_receive_them(api, warehouse_env) -> None:
    from integrations import webhooks as integration_webhooks

    receiver = Receiver([])
    try:
        hook = api.post(
            "/api/v1/integrations/webhooks",
            json={"url": receiver.url, "events": ["alert.triggered"], "secret": SECRET},
        )
        assert hook.status_code == 200, hook.text
        rule = _create(api, _threshold(value=1))
        _land(warehouse_env, _baskets(1, "367", DAY, [5.0]))
        assert integration_webhooks.drain(timeout=60)
        (call,) = receiver.calls
        assert call["signed"] and call["body"]["event"] == "alert.triggered"
        assert call["body"]["data"]["rule_id"] == rule["ruleId"]
        assert call["body"]["data"]["subject"] == {"store_id": "367"}
    finally:
        receiver.close()
