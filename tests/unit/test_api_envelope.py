"""HTTP contract of the API app: envelope, validation, and error statuses (no services)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.api import create_api

FEATURES = {"recency_days": 3.0, "frequency": 40.0, "monetary": 1200.0}


class InMemoryBackend:
    """Our SegmentBackend protocol over a dict: the real one reads Redis and calls Ray Serve."""

    def __init__(self, *, model: bool = True) -> None:
        self.model = model
        self.features = {42: FEATURES}

    def online_features(self, customer_id: int) -> dict[str, float] | None:
        return self.features.get(customer_id)

    async def assign(self, features: dict[str, float]) -> dict[str, Any] | None:
        if not self.model:
            return None
        return {"segmentId": 1, "label": "Loyal", "modelVersion": "3"}

    async def overview(self) -> dict[str, Any] | None:
        if not self.model:
            return None
        return {
            "model": "retailpulse-segmenter",
            "modelVersion": "3",
            "customers": 10,
            "segments": [
                {"segmentId": 0, "label": "Occasional", "size": 6, "share": 0.6, "means": {}},
                {"segmentId": 1, "label": "Loyal", "size": 4, "share": 0.4, "means": FEATURES},
            ],
        }


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_api(InMemoryBackend()))


def test_segment_of_known_customer_is_enveloped(client: TestClient) -> None:
    reply = client.get("/api/v1/customers/42/segment", headers={"x-request-id": "abc"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is True
    assert body["data"] == {
        "customerId": 42,
        "segmentId": 1,
        "label": "Loyal",
        "modelVersion": "3",
        "features": FEATURES,
    }
    assert body["metadata"]["requestId"] == "abc"
    assert body["metadata"]["processingTime"] >= 0


def test_unknown_customer_is_404_in_envelope(client: TestClient) -> None:
    reply = client.get("/api/v1/customers/7/segment")
    assert reply.status_code == 404
    body = reply.json()
    assert body["success"] is False
    assert body["error"]["code"] == "NOT_FOUND"
    assert "customer 7 not found" in body["error"]["message"]


@pytest.mark.parametrize("bad", ["abc", "1.5", "-3", "0"])
def test_bad_customer_id_is_422_in_envelope(client: TestClient, bad: str) -> None:
    reply = client.get(f"/api/v1/customers/{bad}/segment")
    assert reply.status_code == 422
    body = reply.json()
    assert body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["errors"][0]["field"] == "customerId"


def test_no_champion_is_503_naming_the_command() -> None:
    client = TestClient(create_api(InMemoryBackend(model=False)))
    for path in ("/api/v1/customers/42/segment", "/api/v1/analytics/customers/segments"):
        reply = client.get(path)
        assert reply.status_code == 503
        assert "retailpulse train segmenter" in reply.json()["error"]["message"]


def test_segments_overview_and_health(client: TestClient) -> None:
    body = client.get("/api/v1/analytics/customers/segments").json()
    assert [s["size"] for s in body["data"]["segments"]] == [6, 4]
    assert client.get("/healthz").json()["data"]["status"] == "ok"


def test_unknown_route_is_404_in_envelope(client: TestClient) -> None:
    reply = client.get("/api/v1/nope")
    assert reply.status_code == 404 and reply.json()["success"] is False


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/customers/{customerId}/segment" in paths
    assert "/api/v1/analytics/customers/segments" in paths
