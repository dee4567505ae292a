"""Alert rules and notifications without services: validation, signatures, what an event
re-evaluates, and the rule route's 422s."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from alerts.engine import kinds_for, touched
from alerts.notify import message
from alerts.rules import Rule, parse_rule
from alerts.store import Finding
from core.events import Landed
from core.webhooks import sign, verify
from serving.app import create_api
from serving.deps import Backends

THRESHOLD = {
    "kind": "threshold",
    "name": "Low daily revenue",
    "params": {"metric": "revenue", "operator": "<", "value": 500},
    "scope": {"storeIds": ["367"]},
}


def _rule(spec: dict, rule_id: int = 7) -> Rule:
    parsed = parse_rule(spec)
    return Rule(
        tenant="default",
        rule_id=rule_id,
        name=parsed.name,
        kind=parsed.kind,
        params=parsed.params.model_dump(),
        scope=parsed.scope,
        severity=parsed.severity,
        channels=parsed.channels,
        secret="s" * 32,
        enabled=True,
        created_by=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_each_kind_validates_its_own_params() -> None:
    rule = parse_rule(THRESHOLD)
    assert rule.params.windowDays == 1 and rule.params.per == "store"
    assert parse_rule({"kind": "anomaly", "name": "a"}).params.minScore == 0.98
    assert parse_rule({"kind": "stockout", "name": "s"}).params.leadTimeWeeks == 1
    drop = {"kind": "performance_drop", "name": "d", "params": {"dropPct": 30}}
    assert parse_rule(drop).params.completeDaysOnly is True
    bad = [
        {**THRESHOLD, "params": {"metric": "revenue", "operator": "<"}},  # no value
        {**THRESHOLD, "params": {**THRESHOLD["params"], "windowDays": 0}},
        {**THRESHOLD, "params": {**THRESHOLD["params"], "metric": "profit"}},
        {**THRESHOLD, "params": {**THRESHOLD["params"], "extra": 1}},
        {"kind": "anomaly", "name": "a", "params": {"minScore": 2}},
        {"kind": "stockout", "name": "s", "params": {"leadTimeWeeks": 9}},
        {"kind": "performance_drop", "name": "d", "params": {"dropPct": 0}},
        {"kind": "forecast", "name": "x"},
        {**THRESHOLD, "channels": {"webhooks": ["ftp://example.com/x"]}},
        {**THRESHOLD, "channels": {"emails": ["not an address"]}},
        {**THRESHOLD, "severity": "fatal"},
    ]
    for spec in bad:
        with pytest.raises(ValidationError):
            parse_rule(spec)


def test_bad_rule_is_a_422_naming_the_field() -> None:
    client = TestClient(create_api(Backends(default_tenant="default")))
    body = {**THRESHOLD, "params": {"metric": "revenue", "operator": "<", "windowDays": 500}}
    r = client.post("/api/v1/alerts/rules", json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    fields = {e["field"] for e in error["details"]["errors"]}
    assert fields == {"threshold.params.value", "threshold.params.windowDays"}
    assert "windowDays" in error["message"]
    r = client.post("/api/v1/alerts/rules", json={"kind": "nope", "name": "x"})
    assert r.status_code == 422 and "kind" in r.json()["error"]["message"]
    for path in ("/api/v1/alerts/0/acknowledge", f"/api/v1/alerts/{2**63}/acknowledge"):
        assert client.put(path).status_code == 422
    r = client.get("/api/v1/alerts/history", params={"sort": "secret", "limit": 1000})
    assert r.status_code == 422


def test_text_the_warehouse_cannot_store_is_a_422_not_a_500() -> None:
    """Found by the fuzz run: a NUL character in a rule's text failed the INSERT (500)."""
    client = TestClient(create_api(Backends(default_tenant="default")))
    for change, field in [
        ({"name": "Low\x00revenue"}, "threshold.name"),
        ({"webhookSecret": "s" * 16 + "\x00"}, "threshold.webhookSecret"),
        ({"scope": {"departments": ["GROCERY\x00"]}}, "threshold.scope.departments.0"),
        ({"channels": {"emails": ["ops\x00@example.com"]}}, "threshold.channels.emails.0"),
    ]:
        r = client.post("/api/v1/alerts/rules", json={**THRESHOLD, **change})
        assert r.status_code == 422, r.text
        assert {e["field"] for e in r.json()["error"]["details"]["errors"]} == {field}


def test_webhook_signature_covers_body_and_timestamp() -> None:
    body = b'{"alert_id":1}'
    signature = sign("k" * 32, 1_700_000_000, body)
    assert signature.startswith("sha256=")
    assert verify("k" * 32, "1700000000", body, signature, now=1_700_000_100)
    assert not verify("k" * 32, "1700000000", body + b" ", signature, now=1_700_000_100)
    assert not verify("x" * 32, "1700000000", body, signature, now=1_700_000_100)
    assert not verify("k" * 32, "1700000001", body, signature, now=1_700_000_100)
    assert not verify("k" * 32, "1700000000", body, signature, now=1_700_009_999)  # replay


def test_dedup_key_names_rule_and_subject() -> None:
    f = Finding({"store_id": "367", "date": "2017-03-04"}, "t", "m")
    assert f.dedup_key(5) == "rule:5|date=2017-03-04|store_id=367"
    assert Finding({}, "t", "m").dedup_key(5) == "rule:5"


def test_kafka_message_carries_tenant_alert_and_stores() -> None:
    alert = {
        "tenant": "default", "alertId": 3, "ruleId": 5, "ruleName": "r", "kind": "threshold",
        "severity": "critical", "status": "active", "title": "t", "message": "m",
        "subject": {"store_id": "367"}, "triggeredAt": datetime(2026, 1, 1, tzinfo=UTC),
        "payload": {"value": 1.0},
    }  # fmt: skip
    m = message(alert)
    assert m["tenant"] == "default" and m["alert_id"] == 3 and m["stores"] == ["367"]
    assert m["triggered_at"] == "2026-01-01T00:00:00+00:00"


def test_an_event_re_evaluates_only_what_it_can_change() -> None:
    assert kinds_for(Landed("t", "score", model="anomaly")) == ("anomaly",)
    assert kinds_for(Landed("t", "score", model="forecaster")) == ("stockout",)
    assert kinds_for(Landed("t", "score", model="segments")) == ()
    assert "threshold" in kinds_for(Landed("t", "stream"))
    rule = _rule({**THRESHOLD, "params": {**THRESHOLD["params"], "windowDays": 7}})
    as_of = date(2017, 3, 10)

    def sales(stores: set[str] | None, last: date) -> Landed:
        return Landed(
            "default", "stream", first_day=last, last_day=last,
            stores=None if stores is None else frozenset(stores),
        )  # fmt: skip

    assert touched(rule, sales({"367", "1"}, as_of), as_of)
    assert not touched(rule, sales({"368"}, as_of), as_of)  # another store
    assert touched(rule, sales({"367"}, date(2017, 3, 4)), as_of)  # first day of the window
    assert not touched(rule, sales({"367"}, date(2017, 3, 3)), as_of)  # before the window
    assert touched(rule, sales(None, as_of), as_of)
    assert touched(rule, Landed("default", "completejourney"), as_of)
