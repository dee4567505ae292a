"""Requests the fuzz run (tests/integration/test_fuzz_openapi.py) found answered 500, now 422s
naming the field: each is refused at the edge, before any service is reached (no services)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.app import create_api
from serving.deps import Backends
from serving.schemas_predictions import AnomalyRequest


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_api(Backends(default_tenant="default")), raise_server_exceptions=False)


def _fields(resp: Any) -> set[str]:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    return {e["field"] for e in body["error"]["details"]["errors"]}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        # a day near date.min: the previous period before it overflowed (OverflowError)
        ("/api/v1/analytics/stores/comparison", {"startDate": "0254-09-21"}, "startDate"),
        ("/api/v1/analytics/trends", {"endDate": "9999-12-31"}, "endDate"),
        ("/api/v1/analytics/sales/realtime", {"asOf": "0001-01-02"}, "asOf"),
        ("/api/v1/analytics/products/1/performance", {"startDate": "0001-01-01"}, "startDate"),
        # an offset PostgreSQL cannot store (timestamptz refuses 16 hours or more)
        ("/api/v1/alerts/history", {"from": "2017-01-01T00:00:00+20:00"}, "from"),
        ("/api/v1/alerts/history", {"to": "0001-01-01T00:00:00"}, "to"),
    ],
)
def test_dates_the_routes_cannot_compute_with_are_422(
    client: TestClient, path: str, params: dict[str, str], field: str
) -> None:
    assert _fields(client.get(path, params=params)) == {field}


def test_dates_in_bodies_are_bounded_too(client: TestClient) -> None:
    resp = client.post("/api/v1/analytics/basket/analysis", json={"startDate": "0001-01-01"})
    assert _fields(resp) == {"startDate"}
    # the anomaly route asks for its model first (503 here): the schema itself refuses the days
    with pytest.raises(ValidationError, match="must be from 1900-01-01"):
        AnomalyRequest.model_validate({"from": "0001-01-01", "to": "0001-01-02"})


def test_token_form_with_a_username_that_is_no_email_is_422(client: TestClient) -> None:
    """The OAuth2 form's `username` failed LoginRequest's e-mail rule outside the validation
    layer (500)."""
    resp = client.post(
        "/api/v1/users/token",
        data={"username": "1e100", "password": "x", "grant_type": "password"},
    )
    assert _fields(resp) == {"username"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        # PostgreSQL text cannot hold NUL: the INSERT or the query's parameter failed (500)
        ("/api/v1/users/login", {"email": "a\x00@example.com", "password": "x"}, "email"),
        ("/api/v1/analytics/basket/analysis", {"storeIds": ["1\x00"]}, "storeIds.0"),
        (
            "/api/v1/integrations/webhooks",
            {"url": "https://example.com/h", "events": ["crm.synced"], "secret": "s" * 16 + "\x00"},
            "secret",
        ),
    ],
)
def test_text_with_a_nul_character_is_422(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    assert _fields(client.post(path, json=body)) == {field}


def test_a_value_the_warehouse_refuses_is_a_422_not_a_500() -> None:
    """The net under the schemas: psycopg's DataError (a value the warehouse cannot hold)."""
    import psycopg
    from fastapi import FastAPI

    from serving import envelope

    app = FastAPI()
    envelope.install(app)

    @app.get("/store")
    async def store() -> None:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    resp = TestClient(app, raise_server_exceptions=False).get("/store")
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "cannot contain NUL" in error["message"]
