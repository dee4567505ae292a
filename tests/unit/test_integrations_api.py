"""The integration API's edges that need no database: record validation and its report, and
413 for bodies past the documented size (declared, understated or undeclared)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings
from integrations.messages import BasketMessage
from integrations.records import CustomerRecord, validate
from serving.app import create_api
from serving.deps import Backends

BASKET = {
    "transaction_id": 1,
    "store_id": "367",
    "customer_id": 9,
    "timestamp": "2017-03-04T10:00:00+00:00",
    "lines": [{"product_id": 10, "quantity": 2, "sales_value": 4.0}],
}
SYNC = "/api/v1/integrations/pos/sync"


@pytest.fixture
def limits(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("RETAILPULSE_INTEGRATION_MAX_RECORDS", "3")
    monkeypatch.setenv("RETAILPULSE_INTEGRATION_MAX_BYTES", "2048")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def client(limits) -> TestClient:
    return TestClient(create_api(Backends(default_tenant="default")))


def test_each_rejected_record_names_index_field_value_and_rule() -> None:
    records = [
        BASKET,
        {k: v for k, v in BASKET.items() if k != "customer_id"},
        {**BASKET, "lines": [{"product_id": 10, "quantity": "two", "sales_value": 4.0}]},
        "not a basket",
        {**BASKET, "timestamp": "2017-03-04T10:00:00"},  # no zone
    ]
    checked = validate(BasketMessage, records)
    assert [i for i, _ in checked.valid] == [0]
    by_index = {p["index"]: p for p in checked.problems}
    assert by_index[1] | {"message": ""} == {
        "index": 1, "field": "customer_id", "value": None, "rule": "missing", "message": ""
    }  # fmt: skip
    assert (by_index[2]["field"], by_index[2]["value"], by_index[2]["rule"]) == (
        "lines.0.quantity", "two", "int_parsing"
    )  # fmt: skip
    assert (by_index[3]["field"], by_index[3]["rule"]) == ("(record)", "model_type")
    assert (by_index[4]["field"], by_index[4]["rule"]) == ("timestamp", "timezone_aware")
    assert checked.rejected == {1, 2, 3, 4}


def test_crm_record_rules() -> None:
    checked = validate(
        CustomerRecord,
        [
            {"customer_id": 1, "email": "Ann@Example.com", "loyalty_tier": "gold"},
            {"customer_id": 2, "email": "not-an-email"},
            {"customer_id": 3, "shoe_size": 42},
            {"customer_id": -1},
        ],
    )
    assert checked.valid[0][1].email == "ann@example.com"
    got = {(p["index"], p["field"], p["rule"]) for p in checked.problems}
    assert got == {(1, "email", "value_error"), (2, "shoe_size", "extra_forbidden"),
                   (3, "customer_id", "greater_than_equal")}  # fmt: skip


def _too_large(resp, what: str) -> None:
    assert resp.status_code == 413, resp.text
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert what in body["error"]["message"]


def test_too_many_records_is_413_naming_the_limit(client: TestClient) -> None:
    records = [{**BASKET, "transaction_id": i} for i in range(4)]
    resp = client.post(SYNC, json={"records": records})
    _too_large(resp, "the limit is 3 per request")
    assert resp.json()["error"]["details"] == {"records": 4, "limitRecords": 3}


def test_too_many_bytes_is_413_by_declared_length(client: TestClient) -> None:
    body = json.dumps({"records": [BASKET], "batchId": "x" * 3000}).encode()
    _too_large(client.post(SYNC, content=body, headers={"content-type": "application/json"}),
               "the limit is 2,048 bytes")  # fmt: skip


def test_an_understated_content_length_does_not_get_past_the_limit(client: TestClient) -> None:
    body = json.dumps({"records": [BASKET], "batchId": "x" * 3000}).encode()
    resp = client.post(SYNC, content=body,
                       headers={"content-type": "application/json", "content-length": "100"})  # fmt: skip
    _too_large(resp, "more than 2,048 bytes sent")


def test_a_chunked_body_without_length_is_counted_too(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"records": ['
        for i in range(40):
            yield (json.dumps({**BASKET, "transaction_id": i}) + ",").encode()
        yield json.dumps(BASKET).encode() + b"]}"

    resp = client.post(SYNC, content=chunks(), headers={"content-type": "application/json"})
    _too_large(resp, "more than 2,048 bytes sent")


def test_malformed_bodies_are_422_not_500(client: TestClient) -> None:
    bad_json = client.post(
        SYNC, content=b'{"records": [', headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.post(SYNC, json={"records": []}).status_code == 422
    assert client.post(SYNC, json={"records": [BASKET], "extra": 1}).status_code == 422
    assert client.post(SYNC, json=[BASKET]).status_code == 422
    hook = client.post("/api/v1/integrations/webhooks",
                       json={"url": "ftp://example.com/x", "events": ["sales.synced"]})  # fmt: skip
    assert hook.status_code == 422 and "url" in hook.json()["error"]["message"]
    hook = client.post("/api/v1/integrations/webhooks",
                       json={"url": "https://example.com/x", "events": ["nope"]})  # fmt: skip
    assert hook.status_code == 422 and "events" in hook.json()["error"]["message"]


def test_openapi_documents_the_record_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    baskets = schemas["PosSyncRequest"]["properties"]["records"]["items"]
    assert baskets["title"] == "BasketMessage" and "transaction_id" in baskets["required"]
    customers = schemas["CrmSyncRequest"]["properties"]["records"]["items"]
    assert {"customer_id", "email", "loyalty_tier", "income"} <= set(customers["properties"])
    op = spec["paths"]["/api/v1/integrations/pos/sync"]["post"]
    assert {"403", "413", "422", "503"} <= set(op["responses"])
