"""The integration API end to end on the session's Postgres: POS / inventory / CRM syncs and
their reports, the status, and signed webhook deliveries to a local receiver. Each test uses
tenants of its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from core import webhooks as signed
from core.settings import get_settings
from integrations import webhooks
from serving import deps
from serving.app import create_api
from serving.deps import Backends
from tests.unit.test_integrations_webhooks import Receiver

pytestmark = pytest.mark.integration
API = "/api/v1/integrations"
T0 = datetime(2017, 3, 4, 10, 0, tzinfo=UTC)


def _basket(tid: int, store: str = "367", customer: int = 501, days: int = 0) -> dict:
    return {
        "transaction_id": tid,
        "store_id": store,
        "customer_id": customer,
        "timestamp": (T0 + timedelta(days=days)).isoformat(),
        "lines": [
            {"product_id": 10, "quantity": 2, "sales_value": 4.0, "retail_disc": 1.0},
            {"product_id": 11, "quantity": 1, "sales_value": 3.5},
        ],
    }


def _level(product: int, on_hand: int, hours: int, store: str = "367") -> dict:
    when = (T0 + timedelta(hours=hours)).isoformat()
    return {"store_id": store, "product_id": product, "on_hand": on_hand, "timestamp": when}


@pytest.fixture
def db(service_env) -> Iterator[psycopg.Connection]:
    with psycopg.connect(service_env["RETAILPULSE_DATABASE_URL"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def api(service_env) -> Iterator[tuple[TestClient, str]]:
    """A client whose requests act on a fresh tenant (X-Tenant-ID; auth is off)."""
    app = create_api(Backends(default_tenant="default"))
    tenant = f"it-{uuid.uuid4().hex[:8]}"
    client = TestClient(app, headers={"X-Tenant-ID": tenant})
    yield client, tenant
    webhooks.drain(timeout=30)


def _count(db: psycopg.Connection, table: str, tenant: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant,)).fetchone()[0]


def _ok(resp) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True
    return body["data"]


def test_pos_batch_is_written_and_a_resent_batch_changes_nothing(api, db) -> None:
    client, tenant = api
    batch = {"batchId": "pos-1", "records": [_basket(1), _basket(2, days=1), _basket(3, "368")]}
    report = _ok(client.post(f"{API}/pos/sync", json=batch))
    assert (report["status"], report["received"], report["accepted"], report["rejected"],
            report["duplicates"]) == ("complete", 3, 3, 0, 0)  # fmt: skip
    assert report["committed"] and report["batchId"] == "pos-1" and report["syncId"]
    assert report["details"]["stores"] == ["367", "368"]
    assert report["details"]["revenue"] == 22.5
    assert (_count(db, "transactions", tenant), _count(db, "transaction_items", tenant)) == (3, 6)
    total = db.execute("SELECT sum(total_sales), sum(total_discount) FROM transactions"
                       " WHERE tenant_id = %s", (tenant,)).fetchone()  # fmt: skip
    assert (float(total[0]), float(total[1])) == (22.5, 3.0)
    # the same batch again, and one basket of it alone: all duplicates, nothing changes
    again = _ok(client.post(f"{API}/pos/sync", json=batch))
    assert (again["accepted"], again["duplicates"], again["status"]) == (0, 3, "complete")
    assert again["rules"] == {"already_loaded": 3}
    one = _ok(client.post(f"{API}/pos/sync", json={"records": [_basket(2, days=1)]}))
    assert (one["accepted"], one["duplicates"]) == (0, 1)
    assert (_count(db, "transactions", tenant), _count(db, "transaction_items", tenant)) == (3, 6)
    # the new customer and products got their dimension rows
    assert _count(db, "customers", tenant) == 1 and _count(db, "products", tenant) == 2


def test_a_mixed_batch_reports_each_rejected_record_and_writes_the_rest(api, db) -> None:
    client, tenant = api
    no_customer = {k: v for k, v in _basket(11).items() if k != "customer_id"}
    bad_quantity = _basket(12)
    bad_quantity["lines"][1]["quantity"] = "lots"
    records = [_basket(10), no_customer, bad_quantity, _basket(10), 42, _basket(13)]
    report = _ok(client.post(f"{API}/pos/sync", json={"records": records}))
    assert (report["status"], report["accepted"], report["rejected"], report["duplicates"]) == (
        "partial", 2, 3, 1
    )  # fmt: skip
    errors = {e["index"]: e for e in report["errors"]}
    assert sorted(errors) == [1, 2, 4]
    assert (errors[1]["field"], errors[1]["rule"], errors[1]["value"]) == (
        "customer_id", "missing", None
    )  # fmt: skip
    assert (errors[2]["field"], errors[2]["rule"], errors[2]["value"]) == (
        "lines.1.quantity", "int_parsing", "lots"
    )  # fmt: skip
    assert "valid integer" in errors[2]["message"]
    assert (errors[4]["field"], errors[4]["value"]) == ("(record)", 42)
    assert report["rules"]["duplicate_in_batch"] == 1
    ids = db.execute("SELECT transaction_id FROM transactions WHERE tenant_id = %s ORDER BY 1",
                     (tenant,)).fetchall()  # fmt: skip
    assert [r[0] for r in ids] == [10, 13]


def test_an_atomic_batch_with_one_bad_record_writes_nothing(api, db) -> None:
    client, tenant = api
    bad = {**_basket(21), "timestamp": "yesterday"}
    resp = client.post(f"{API}/pos/sync", json={"atomic": True, "records": [_basket(20), bad]})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert "atomic batch rejected" in error["message"] and "nothing was written" in error["message"]
    report = error["details"]["report"]
    assert (report["committed"], report["status"], report["valid"], report["rejected"]) == (
        False, "rejected", 1, 1
    )  # fmt: skip
    assert report["errors"][0]["field"] == "timestamp"
    assert _count(db, "transactions", tenant) == 0
    # the refused batch is still on record
    status = _ok(client.get(f"{API}/status"))["sources"][0]
    assert status["lastSync"]["status"] == "rejected" and status["totals"]["rejected"] == 1


def test_inventory_newest_level_wins(api, db) -> None:
    client, tenant = api
    first = _ok(client.post(f"{API}/inventory/sync",
                            json={"records": [_level(10, 40, 5), _level(11, 7, 5)]}))  # fmt: skip
    assert (first["accepted"], first["stale"], first["duplicates"]) == (2, 0, 0)
    # older than stored: stale; same again: duplicate; newer: written; two of one key in a
    # batch: the newest wins, the other is stale
    second = _ok(client.post(f"{API}/inventory/sync", json={"records": [
        _level(10, 99, 1), _level(11, 7, 5), _level(12, 3, 2), _level(12, 5, 8)
    ]}))  # fmt: skip
    assert (second["accepted"], second["stale"], second["duplicates"]) == (1, 2, 1)
    assert second["rules"] == {"stale": 2, "already_loaded": 1}
    third = _ok(client.post(f"{API}/inventory/sync", json={"records": [_level(10, 12, 9)]}))
    assert third["accepted"] == 1
    rows = dict(db.execute("SELECT product_id, on_hand FROM inventory WHERE tenant_id = %s",
                           (tenant,)).fetchall())  # fmt: skip
    assert rows == {10: 12, 11: 7, 12: 5}
    rule = db.execute("SELECT source_rule FROM inventory WHERE tenant_id = %s AND product_id = 11",
                      (tenant,)).fetchone()[0]  # fmt: skip
    assert rule == "api"
    bad = _ok(client.post(f"{API}/inventory/sync", json={"records": [
        {**_level(10, 1, 10), "on_hand": -1}]}))  # fmt: skip
    assert bad["errors"][0]["field"] == "on_hand" and bad["status"] == "rejected"


def test_crm_upserts_customers(api, db) -> None:
    client, tenant = api
    records = [
        {"customer_id": 1, "name": "Ann", "email": "ann@example.com", "loyalty_tier": "gold",
         "age": "45-54", "income": "50-74K"},
        {"customer_id": 2, "email": "bob@"},
        {"customer_id": 3, "household_size": "2"},
    ]  # fmt: skip
    first = _ok(client.post(f"{API}/crm/sync", json={"records": records}))
    assert (first["accepted"], first["rejected"], first["details"]) == (
        2, 1, {"created": 2, "updated": 0}
    )  # fmt: skip
    assert first["errors"][0]["field"] == "email"
    # a partial update keeps what it leaves out; an identical record is a duplicate; an older
    # one (updatedAt before the stored record) is stale
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    second = _ok(client.post(f"{API}/crm/sync", json={"records": [
        {"customer_id": 1, "loyalty_tier": "platinum", "updated_at": later},
        {"customer_id": 3, "household_size": "2"},
        {"customer_id": 3, "name": "Old", "updated_at": "2001-01-01T00:00:00Z"},
    ]}))  # fmt: skip
    assert (second["accepted"], second["duplicates"], second["stale"]) == (1, 1, 1)
    row = db.execute(
        "SELECT name, email, loyalty_tier, age, income FROM customers"
        " WHERE tenant_id = %s AND customer_id = 1",
        (tenant,),
    ).fetchone()
    assert row == ("Ann", "ann@example.com", "platinum", "45-54", "50-74K")
    assert db.execute("SELECT name FROM customers WHERE tenant_id = %s AND customer_id = 3",
                      (tenant,)).fetchone() == (None,)  # fmt: skip


def test_status_reflects_the_syncs_and_other_tenants_see_none_of_it(api) -> None:
    client, tenant = api
    _ok(client.post(f"{API}/pos/sync", json={"batchId": "a", "records": [_basket(1)]}))
    _ok(client.post(f"{API}/pos/sync", json={"batchId": "b", "records": [_basket(1), {}]}))
    _ok(client.post(f"{API}/crm/sync", json={"records": [{"customer_id": 5}]}))
    sources = {s["source"]: s for s in _ok(client.get(f"{API}/status"))["sources"]}
    pos = sources["pos"]
    assert pos["batches"] == 2
    assert pos["totals"] == {"received": 3, "accepted": 1, "rejected": 1, "duplicates": 1,
                             "stale": 0}  # fmt: skip
    assert pos["lastSync"]["batchId"] == "b" and pos["lastSync"]["status"] == "partial"
    assert pos["lastErrors"]["batchId"] == "b"
    assert {e["field"] for e in pos["lastErrors"]["errors"]} >= {"transaction_id", "lines"}
    assert sources["crm"]["totals"]["accepted"] == 1 and sources["crm"]["lastErrors"] is None
    assert sources["inventory"]["batches"] == 0 and sources["inventory"]["lastSync"] is None
    other = _ok(client.get(f"{API}/status", headers={"X-Tenant-ID": f"{tenant}-b"}))
    assert all(s["batches"] == 0 for s in other["sources"])


@pytest.fixture
def fast_retries(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("RETAILPULSE_WEBHOOK_BACKOFF_S", "0.05")
    monkeypatch.setenv("RETAILPULSE_WEBHOOK_ATTEMPTS", "3")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_sync_sends_a_signed_webhook_retried_after_a_500(api, fast_retries) -> None:
    client, tenant = api
    receiver = Receiver([500])
    try:
        created = _ok(client.post(f"{API}/webhooks", json={
            "url": receiver.url, "events": ["sales.synced"], "description": "erp"}))  # fmt: skip
        secret, hook_id = created["secret"], created["webhookId"]
        assert secret.startswith("whsec_") and created["lastDelivery"] is None
        report = _ok(client.post(f"{API}/pos/sync", json={"batchId": "w1",
                                                          "records": [_basket(1)]}))  # fmt: skip
        assert report["webhooksQueued"] == 1
        # nothing new: no event
        assert (
            _ok(client.post(f"{API}/pos/sync", json={"records": [_basket(1)]}))["webhooksQueued"]
            == 0
        )
        assert webhooks.drain(timeout=30)
    finally:
        receiver.close()
    assert len(receiver.got) == 2  # the 500, then the retry
    for headers, body in receiver.got:
        assert signed.verify(secret, headers["x-retailpulse-timestamp"], body,
                             headers["x-retailpulse-signature"])  # fmt: skip
        assert headers["x-retailpulse-event"] == "sales.synced"
    assert (
        receiver.got[0][0]["x-retailpulse-delivery"] == receiver.got[1][0]["x-retailpulse-delivery"]
    )
    event = json.loads(receiver.got[1][1])
    assert (event["event"], event["tenant"], event["data"]["batchId"]) == (
        "sales.synced",
        tenant,
        "w1",
    )
    assert event["data"]["accepted"] == 1 and event["data"]["stores"] == ["367"]
    attempts = _ok(client.get(f"{API}/webhooks/{hook_id}/deliveries"))["items"]
    assert [(a["attempt"], a["status"], a["responseCode"]) for a in attempts] == [
        (2, "sent", 200), (1, "failed", 500)
    ]  # fmt: skip
    listed = _ok(client.get(f"{API}/webhooks"))
    assert "sales.synced" in listed["events"]
    (item,) = listed["items"]
    assert "secret" not in item and secret not in json.dumps(listed)
    assert item["lastDelivery"]["status"] == "sent"


def test_webhooks_belong_to_their_tenant(api) -> None:
    client, tenant = api
    hook = _ok(client.post(f"{API}/webhooks", json={
        "url": "https://erp.example.com/hook", "events": ["crm.synced", "alert.triggered"],
        "secret": "a-secret-of-our-own-choosing"}))  # fmt: skip
    assert hook["secret"] == "a-secret-of-our-own-choosing"
    other = {"X-Tenant-ID": f"{tenant}-b"}
    assert _ok(client.get(f"{API}/webhooks", headers=other))["items"] == []
    gone = client.delete(f"{API}/webhooks/{hook['webhookId']}", headers=other)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"
    assert client.get(f"{API}/webhooks/{hook['webhookId']}/deliveries",
                      headers=other).status_code == 404  # fmt: skip
    assert _ok(client.delete(f"{API}/webhooks/{hook['webhookId']}"))["deleted"] is True
    assert _ok(client.get(f"{API}/webhooks"))["items"] == []
    assert client.delete(f"{API}/webhooks/{hook['webhookId']}").status_code == 404


def test_a_store_scoped_caller_syncs_only_its_stores(api, db) -> None:
    client, tenant = api

    async def only_367() -> frozenset[str]:
        return frozenset({"367"})

    client.app.dependency_overrides[deps.store_scope] = only_367
    refused = client.post(f"{API}/pos/sync", json={"records": [_basket(1), _basket(2, "999")]})
    assert refused.status_code == 403 and "999" in refused.json()["error"]["message"]
    assert _count(db, "transactions", tenant) == 0
    assert _ok(client.post(f"{API}/pos/sync", json={"records": [_basket(1)]}))["accepted"] == 1
    assert client.post(f"{API}/inventory/sync",
                       json={"records": [_level(1, 1, 1, "999")]}).status_code == 403  # fmt: skip
    assert client.post(f"{API}/crm/sync", json={"records": [{"customer_id": 1}]}).status_code == 403
    assert client.get(f"{API}/webhooks").status_code == 403
