"""HTTP contract of the recommendation, anomaly and churn routes (no services): validation,
404s naming what is unknown, 503 without a model, and the answers passed through."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_api
from serving.deps import Backends, ModelClient
from serving.schemas_predictions import MAX_ANOMALY_DAYS

CHURN_ROWS = {7: {"recency_days": 3.0}, 8: {"recency_days": 60.0}}


class Reader:
    def __init__(self, rows: dict[Any, dict[str, Any]]) -> None:
        self.rows = rows

    async def get_many(self, keys: list[Any], **kw: Any) -> list[dict[str, Any] | None]:
        return [self.rows.get(k) for k in keys]


class Features:
    def reader(self, tenant: str, view: Any) -> Reader:
        return Reader(CHURN_ROWS)


class ChurnModel:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def analyze(self, tenant: str, ids: list[int], rows: list[dict]) -> dict[str, Any]:
        self.calls.append(ids)
        return {
            "model": f"{tenant}.churn",
            "modelVersion": "2",
            "riskBands": {"low": "p < 0.2"},
            "customers": [
                {
                    "customerId": cid,
                    "probability": row["recency_days"] / 100,
                    "riskBand": "low" if row["recency_days"] < 20 else "high",
                    "drivers": [{"feature": "recency_days", "value": 1.0, "contribution": 0.5}],
                }
                for cid, row in zip(ids, rows, strict=True)
            ],
        }


class Segmenter:
    def members(self, tenant: str, segment: int) -> list[int] | None:
        return {1: [7, 8, 9]}.get(segment, [])


class Recommender:
    def recommend(
        self, tenant: str, customer: int, limit: int, days: int | None, per_category: int = 3
    ) -> dict:
        if customer == 404:
            return {"notFound": True}
        return {
            "customerId": customer,
            "model": f"{tenant}.recommender",
            "modelVersion": "1",
            "fallback": False,
            "excludedPurchasedDays": days,
            "recommendations": [
                {"productId": 10 + i, "rank": i + 1, "score": 1.0 - i / 10, "reason": "r"}
                for i in range(limit)
            ],
        }


class Detector:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def detect(self, tenant: str, stores: list[str] | None, start: str, end: str) -> dict:
        self.calls.append((stores, start, end))
        if stores and "nope" in stores:
            return {"unknownStores": ["nope"]}
        return {
            "model": f"{tenant}.anomaly",
            "modelVersion": "4",
            "from_": start,
            "to": end,
            "storesScanned": 1,
            "daysScanned": 2,
            "skipped": {},
            "anomalies": [
                {
                    "storeId": "1",
                    "date": start,
                    "sales": 30.0,
                    "expected": 10.0,
                    "score": 0.99,
                    "direction": "spike",
                    "detectors": ["seasonal"],
                }
            ],
        }


def client(**models: Any) -> TestClient:
    backends = Backends(
        models={k: ModelClient.local(k, v) for k, v in models.items()},
        features=Features(),
        default_tenant="default",
    )
    return TestClient(create_api(backends))


@pytest.mark.parametrize(
    "body, text",
    [
        ({}, "exactly one of customerIds or segmentId"),
        ({"customerIds": [7], "segmentId": 1}, "exactly one"),
        ({"customerIds": []}, "customerIds"),
        ({"customerIds": [0]}, "positive"),
        ({"customerIds": list(range(1, 1002))}, "1000"),
        ({"customerIds": [7], "extra": 1}, "extra"),
    ],
)
def test_churn_bad_bodies_are_422(body: dict, text: str) -> None:
    r = client(churn=ChurnModel()).post("/api/v1/predictions/churn/analyze", json=body)
    assert r.status_code == 422, r.text
    assert text in r.text


def test_churn_scores_known_customers_and_names_unknown_ones() -> None:
    model = ChurnModel()
    c = client(churn=model)
    ok = c.post("/api/v1/predictions/churn/analyze", json={"customerIds": [8, 7, 8]}).json()
    assert ok["success"] is True
    assert [x["customerId"] for x in ok["data"]["customers"]] == [8, 7]  # order kept, deduped
    assert ok["data"]["customers"][0]["riskBand"] == "high"
    missing = c.post("/api/v1/predictions/churn/analyze", json={"customerIds": [7, 99]})
    assert missing.status_code == 404 and "99" in missing.json()["error"]["message"]
    assert model.calls == [[8, 7]]  # nothing scored for the rejected request


def test_churn_of_a_segment_is_riskiest_first_and_needs_a_segmenter() -> None:
    c = client(churn=ChurnModel(), segmenter=Segmenter())
    body = c.post("/api/v1/predictions/churn/analyze", json={"segmentId": 1}).json()["data"]
    assert body["segmentId"] == 1
    # member 9 has no churn features: left out, the others sorted by probability
    assert [x["customerId"] for x in body["customers"]] == [8, 7]
    empty = c.post("/api/v1/predictions/churn/analyze", json={"segmentId": 5})
    assert empty.status_code == 404
    no_seg = client(churn=ChurnModel()).post(
        "/api/v1/predictions/churn/analyze", json={"segmentId": 1}
    )
    assert no_seg.status_code == 503 and "segmenter" in no_seg.json()["error"]["message"]


def test_churn_without_a_model_is_503_naming_the_command() -> None:
    r = client().post("/api/v1/predictions/churn/analyze", json={"customerIds": [7]})
    assert r.status_code == 503
    assert "churn" in r.json()["error"]["message"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "excludePurchasedDays=-1"])
def test_recommendation_bad_queries_are_422(query: str) -> None:
    r = client(recommender=Recommender()).get(f"/api/v1/recommendations/products/5?{query}")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_recommendations_pass_through_and_unknown_customer_is_404() -> None:
    c = client(recommender=Recommender())
    body = c.get("/api/v1/recommendations/products/5?limit=3&excludePurchasedDays=14").json()
    assert [r["rank"] for r in body["data"]["recommendations"]] == [1, 2, 3]
    assert body["data"]["excludedPurchasedDays"] == 14
    unknown = c.get("/api/v1/recommendations/products/404")
    assert unknown.status_code == 404 and "404" in unknown.json()["error"]["message"]
    assert client().get("/api/v1/recommendations/products/5").status_code == 503


@pytest.mark.parametrize(
    "body, text",
    [
        ({"from": "2017-12-10", "to": "2017-12-01"}, "before"),
        ({"from": "2017-01-01", "to": "2017-12-31"}, f"maximum of {MAX_ANOMALY_DAYS} days"),
        ({"from": "2017-13-01", "to": "2017-12-31"}, "from"),
        ({"to": "2017-12-31"}, "from"),
        ({"from": "2017-12-01", "to": "2017-12-02", "storeIds": []}, "storeIds"),
    ],
)
def test_anomaly_bad_ranges_are_422_naming_the_limit(body: dict, text: str) -> None:
    detector = Detector()
    r = client(anomaly=detector).post("/api/v1/predictions/anomalies/detect", json=body)
    assert r.status_code == 422, r.text
    assert text in r.text
    assert detector.calls == []


def test_anomaly_detection_passes_the_range_and_names_unknown_stores() -> None:
    detector = Detector()
    c = client(anomaly=detector)
    body = {"from": "2017-12-01", "to": "2017-12-02", "storeIds": ["1", "1"]}
    data = c.post("/api/v1/predictions/anomalies/detect", json=body).json()["data"]
    assert detector.calls == [(["1"], "2017-12-01", "2017-12-02")]
    assert data["from"] == "2017-12-01" and data["anomalies"][0]["detectors"] == ["seasonal"]
    bad = c.post("/api/v1/predictions/anomalies/detect", json={**body, "storeIds": ["nope"]})
    assert bad.status_code == 404 and "nope" in bad.json()["error"]["message"]
