"""HTTP contract of the API app: envelope, validation, and error statuses (no services)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_api
from serving.deps import Backends, ModelClient

FEATURES = {"recency_days": 3.0, "frequency": 40.0, "monetary": 1200.0}


class InMemorySegmenter:
    """The segmenter deployment's interface over fixed answers (the real one loads MLflow)."""

    def __init__(self, *, model: bool = True) -> None:
        self.model = model
        self.tenants: list[str] = []

    def info(self, tenant: str) -> dict[str, Any]:
        self.tenants.append(tenant)
        return {
            "model": "segmenter",
            "registeredName": f"{tenant}.segmenter",
            "version": "3" if self.model else None,
            "trainCommand": "retailpulse train segmenter",
        }

    def assign(self, tenant: str, features: dict[str, float]) -> dict[str, Any] | None:
        self.tenants.append(tenant)
        if not self.model:
            return None
        return {"segmentId": 1, "label": "Loyal", "modelVersion": "3"}

    def overview(self, tenant: str) -> dict[str, Any] | None:
        if not self.model:
            return None
        return {
            "model": f"{tenant}.segmenter",
            "modelVersion": "3",
            "customers": 10,
            "segments": [
                {"segmentId": 0, "label": "Occasional", "size": 6, "share": 0.6, "means": {}},
                {"segmentId": 1, "label": "Loyal", "size": 4, "share": 0.4, "means": FEATURES},
            ],
        }


class InMemoryReader:
    def __init__(self, rows: dict[Any, dict[str, Any]]) -> None:
        self.rows = rows

    async def get(self, key: Any, **kw: Any) -> dict[str, Any] | None:
        return self.rows.get(key)

    async def get_many(self, keys: list[Any], **kw: Any) -> list[dict[str, Any] | None]:
        return [self.rows.get(k) for k in keys]


class InMemoryFeatures:
    """OnlineFeatures over a dict: customer 42 exists for every tenant."""

    def reader(self, tenant: str, view: Any) -> InMemoryReader:
        return InMemoryReader({42: FEATURES})

    async def get_many_views(
        self, tenant: str, requests: list[tuple], strings: list[str] | None = None
    ) -> list[list[Any]]:
        rows = [await self.reader(tenant, view).get_many(keys) for view, keys, _ in requests]
        return rows + ([[None] * len(strings)] if strings else [])


def make_app(segmenter: InMemorySegmenter | None = None, *, models: bool = True):
    segmenter = segmenter or InMemorySegmenter()
    backends = Backends(
        models={"segmenter": ModelClient.local("segmenter", segmenter)} if models else {},
        features=InMemoryFeatures(),
        default_tenant="default",
    )
    return create_api(backends)


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


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
    client = TestClient(make_app(InMemorySegmenter(model=False)))
    for path in ("/api/v1/customers/42/segment", "/api/v1/analytics/customers/segments"):
        reply = client.get(path)
        assert reply.status_code == 503
        assert "retailpulse train segmenter" in reply.json()["error"]["message"]


def test_segments_overview_and_health(client: TestClient) -> None:
    body = client.get("/api/v1/analytics/customers/segments").json()
    assert [s["size"] for s in body["data"]["segments"]] == [6, 4]
    health = client.get("/healthz").json()["data"]
    assert health["status"] == "ok"
    assert health["models"] == [
        {
            "model": "segmenter",
            "registeredName": "default.segmenter",
            "version": "3",
            "ready": True,
            "detail": None,
        }
    ]


def test_health_never_depends_on_a_trained_model() -> None:
    untrained = TestClient(make_app(InMemorySegmenter(model=False)))
    reply = untrained.get("/healthz")
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["status"] == "degraded"
    assert data["models"][0]["version"] is None
    assert "retailpulse train segmenter" in data["models"][0]["detail"]
    # no model deployed at all: healthy app, nothing to report, routes answer 503
    bare = TestClient(make_app(models=False))
    assert bare.get("/healthz").json()["data"] == {
        "status": "ok",
        "tenant": "default",
        "models": [],
    }
    assert bare.get("/api/v1/analytics/customers/segments").status_code == 503


def test_tenant_comes_from_the_header_and_is_validated() -> None:
    segmenter = InMemorySegmenter()
    client = TestClient(make_app(segmenter))
    body = client.get(
        "/api/v1/analytics/customers/segments", headers={"X-Tenant-ID": "acme"}
    ).json()
    assert body["data"]["model"] == "acme.segmenter"
    client.get("/api/v1/customers/42/segment")
    assert segmenter.tenants[-1] == "default"
    bad = client.get("/api/v1/customers/42/segment", headers={"X-Tenant-ID": "no'quotes"})
    assert bad.status_code == 422
    assert "invalid tenant id" in bad.json()["error"]["message"]


def test_unknown_route_is_404_in_envelope(client: TestClient) -> None:
    reply = client.get("/api/v1/nope")
    assert reply.status_code == 404 and reply.json()["success"] is False


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/customers/{customerId}/segment" in paths
    assert "/api/v1/analytics/customers/segments" in paths


class NoForecaster:
    def info(self, tenant: str) -> dict[str, Any]:
        return {"model": "forecaster", "registeredName": f"{tenant}.forecaster", "version": None,
                "trainCommand": "retailpulse train forecaster"}  # fmt: skip

    def forecast(self, tenant: str, request: dict[str, Any]) -> None:
        return None


class StoreFeatures(InMemoryFeatures):
    """Store "S1" and product 7 exist; customer 42 as before."""

    def reader(self, tenant: str, view: Any) -> InMemoryReader:
        rows = {"S1": {"last_week": 52.0}, 7: {"department": "DAIRY"}, ("S1", 7): None}
        return InMemoryReader({k: v for k, v in rows.items() if v is not None})

    def __init__(self) -> None:
        pass


def forecast_app() -> TestClient:
    backends = Backends(
        models={"forecaster": ModelClient.local("forecaster", NoForecaster())},
        features=StoreFeatures(),
        default_tenant="default",
    )
    return TestClient(create_api(backends))


@pytest.mark.parametrize(
    "body,field",
    [
        ({"storeId": "S1", "productIds": [7], "horizon": 9}, "horizon"),
        ({"storeId": "S1", "productIds": [7], "horizon": 0}, "horizon"),
        ({"storeId": "S1", "productIds": []}, "productIds"),
        ({"storeId": "S1", "productIds": [7], "quantiles": [0.25]}, "quantiles"),
        ({"storeId": "S1", "productIds": [7], "extra": 1}, "extra"),
    ],
)
def test_forecast_bad_bodies_are_422_naming_the_field(body: dict, field: str) -> None:
    reply = forecast_app().post("/api/v1/predictions/demand/forecast", json=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["details"]["errors"][0]["field"] == field


def test_forecast_horizon_limit_is_named() -> None:
    reply = forecast_app().post(
        "/api/v1/predictions/demand/forecast",
        json={"storeId": "S1", "productIds": [7], "horizon": 9},
    )
    assert "8" in reply.json()["error"]["message"]


def test_forecast_unknown_store_and_product_are_404_naming_them() -> None:
    client = forecast_app()
    store = client.post(
        "/api/v1/predictions/demand/forecast", json={"storeId": "S9", "productIds": [7]}
    )
    assert store.status_code == 404 and "'S9'" in store.json()["error"]["message"]
    product = client.post(
        "/api/v1/predictions/demand/forecast", json={"storeId": "S1", "productIds": [7, 8]}
    )
    assert product.status_code == 404
    assert product.json()["error"]["details"] == {"productIds": [8]}


def test_forecast_without_a_trained_model_is_503_naming_the_command() -> None:
    reply = forecast_app().post(
        "/api/v1/predictions/demand/forecast", json={"storeId": "S1", "productIds": [7]}
    )
    assert reply.status_code == 503
    assert "retailpulse train forecaster" in reply.json()["error"]["message"]
