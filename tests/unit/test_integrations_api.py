"""The integration API's edges that need no database: record validation and its report, and
413 for bodies past the documented size (declared, understated or undeclared)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings
from integrations.messages import BasketMessage, InventoryMessage
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


# Values the fuzz run (tests/integration/test_fuzz_openapi.py) sent that passed validation but
# failed the warehouse write (a 500 for the whole batch): each is now a rejected record.
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transaction_id": 2**63}, "transaction_id"),
        ({"customer_id": 10**22}, "customer_id"),
        ({"week": 17551384}, "week"),
        ({"store_id": "st\x00re"}, "store_id"),
        ({"store_id": "\ud800"}, "store_id"),  # a lone surrogate cannot be stored as UTF-8
        ({"timestamp": "0257-08-04T12:21:47+16:33"}, "timestamp"),  # offset past 16 hours
        ({"timestamp": "7297-09-08T08:22:52Z"}, "timestamp"),  # year out of range
        ({"lines": [{"product_id": 2**64, "quantity": 1, "sales_value": 1.0}]}, "lines.0.product_id"),
        # a shelf price per unit past numeric(12,4)
        ({"lines": [{"product_id": 1, "quantity": 1, "sales_value": 9e8}]}, "lines.0"),
        # basket totals past numeric(12,2): 20 lines of 999,999,999
        ({"lines": [{"product_id": i, "quantity": 100, "sales_value": 999_999_999.0}
                    for i in range(20)]}, "(record)"),
    ],
)  # fmt: skip
def test_a_basket_the_warehouse_cannot_store_is_a_rejected_record(change, field) -> None:
    checked = validate(BasketMessage, [BASKET, {**BASKET, **change}])
    assert [i for i, _ in checked.valid] == [0]
    assert {p["field"] for p in checked.problems} == {field}


def test_inventory_and_crm_values_the_warehouse_cannot_store_are_rejected() -> None:
    level = {"store_id": "1", "product_id": 5, "on_hand": 3, "timestamp": "2017-03-04T10:00:00Z"}
    checked = validate(
        InventoryMessage,
        [level, {**level, "on_hand": 2**31}, {**level, "reorder_point": 2**40},
         {**level, "rule": "a\x00"}, {**level, "timestamp": "0073-04-06T23:44:20+20:56"}],
    )  # fmt: skip
    assert [i for i, _ in checked.valid] == [0]
    assert {(p["index"], p["field"]) for p in checked.problems} == {
        (1, "on_hand"), (2, "reorder_point"), (3, "rule"), (4, "timestamp")
    }  # fmt: skip
    checked = validate(
        CustomerRecord,
        [{"customer_id": 1, "name": "A\x00"}, {"customer_id": 2, "updated_at": "0185-04-04T00:16:37+19:54"}],
    )  # fmt: skip
    assert {(p["index"], p["field"]) for p in checked.problems} == {(0, "name"), (1, "updated_at")}


def test_a_report_row_can_always_be_stored_as_json() -> None:
    """NUL characters and lone surrogates (which PostgreSQL's JSONB refuses) are replaced in a
    rejected record's field and value."""
    checked = validate(CustomerRecord, [{"customer_id": 1, "na\x00me": "x\x00\ud800"}])
    (problem,) = checked.problems
    assert "\x00" not in problem["field"] and "\x00" not in problem["value"]
    json.dumps(problem, ensure_ascii=False).encode("utf-8")  # no lone surrogate left
