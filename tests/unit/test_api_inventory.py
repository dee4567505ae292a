"""HTTP contract of the inventory, reorder and next-best-action routes (no services): limits
named in 422s, 404s naming the unknown id, 503 naming the train command, the on-hand rule made
visible, and the numbers agreeing with the forecaster's quantiles."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features.catalog import (
    CUSTOMER_CHURN,
    LAG_FEATURES,
    PRODUCT_ATTRIBUTES,
    STORE_ATTRIBUTES,
    STORE_PRODUCT_WEEKLY,
)
from serving.app import create_api
from serving.deps import Backends, ModelClient
from training.inventory import Z_90, z_value

STORE = "367"
ORIGIN = 100


def weekly_row(units_newest_first: list[float], price: float = 2.0) -> dict[str, Any]:
    """An online store x product row at the origin week with the given last weeks' units."""
    units = units_newest_first + [0.0] * (16 - len(units_newest_first))
    row = {"week": ORIGIN, "units": units[0], "shelf_price": price, "_event_timestamp": 1.5e9}
    row.update({name: units[k + 1] for k, name in enumerate(LAG_FEATURES)})
    return row


# product 1: steady seller (10 a week); 2: slow seller (model sold 1 unit in the origin week);
# 3: sold twice in 16 weeks → the forecaster's fallback; 4: in the catalog, never sold here.
WEEKLY = {
    (STORE, 1): weekly_row([10.0] * 16),
    (STORE, 2): weekly_row([1.0, 6.0, 6.0, 6.0, 6.0, 6.0]),
    (STORE, 3): weekly_row([0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 2.0], price=float("nan")),
}
VIEWS: dict[str, dict[Any, dict[str, Any]]] = {
    STORE_ATTRIBUTES.name: {STORE: {"last_week": float(ORIGIN)}},
    PRODUCT_ATTRIBUTES.name: {pid: {"department": "GROCERY"} for pid in (1, 2, 3, 4)},
    STORE_PRODUCT_WEEKLY.name: WEEKLY,
    CUSTOMER_CHURN.name: {7: {"risk": 0.9}, 8: {"risk": 0.3}, 9: {"risk": 0.05}},
}


class Reader:
    def __init__(self, rows: dict[Any, dict[str, Any]]) -> None:
        self.rows = rows

    async def get(self, key: Any, **kw: Any) -> dict[str, Any] | None:
        return self.rows.get(key)

    async def get_many(self, keys: list[Any], **kw: Any) -> list[dict[str, Any] | None]:
        return [self.rows.get(k) for k in keys]


class Features:
    def reader(self, tenant: str, view: Any) -> Reader:
        return Reader(VIEWS[view.name])


class Forecaster:
    """Weekly p50 = the pair's latest week's units... of a steady 10/week; p10/p90 +-20%."""

    def __init__(self, trained: bool = True) -> None:
        self.trained = trained
        self.horizons: list[int] = []

    def forecast(self, tenant: str, request: dict[str, Any]) -> dict[str, Any] | None:
        if not self.trained:
            return None
        self.horizons.append(request["horizon"])
        out = []
        for item in request["items"]:
            row = item["weekly"]
            sold = [row[n] for n in ["units", *LAG_FEATURES]] if row else []
            fallback = sum(1 for u in sold if u > 0) < 4
            level = sum(sold[:4]) / 4 if fallback else {1: 10.0, 2: 5.0}[item["productId"]]
            spread = 0.0 if fallback else 0.2 * level
            out.append(
                {
                    "productId": item["productId"],
                    "method": "mean of the last 4 weeks" if fallback else "lstm",
                    "fallback": fallback,
                    "reason": "too few weeks" if fallback else None,
                    "weeks": [
                        {"p10": level - spread, "p50": level, "p90": level + spread}
                        for _ in range(request["horizon"])
                    ],
                }
            )
        return {
            "storeId": request["storeId"],
            "model": f"{tenant}.forecaster",
            "modelVersion": "3",
            "modelKind": "lstm",
            "originWeek": ORIGIN,
            "forecasts": out,
        }


class Warehouse:
    def __init__(self, recorded: dict[int, tuple[int, str]] | None = None) -> None:
        self.recorded = recorded or {}

    async def on_hand_levels(self, *, tenant: str, store_id: str, product_ids: list[int]) -> dict:
        return {p: v for p, v in self.recorded.items() if p in product_ids}

    async def top_selling_products(self, *, tenant: str, store_id: str, **kw: Any) -> list[int]:
        return [1, 2, 3][: kw["limit"]]

    async def usual_store_customers(self, *, tenant: str, store_id: str, limit: int) -> list[int]:
        return [7, 8, 9, 10]  # 10 has no churn features


class Churn:
    def __init__(self, trained: bool = True) -> None:
        self.trained = trained

    def analyze(self, tenant: str, ids: list[int], rows: list[dict]) -> dict[str, Any] | None:
        if not self.trained:
            return None
        bands = {0.9: "high", 0.3: "medium", 0.05: "low"}
        return {
            "model": f"{tenant}.churn",
            "modelVersion": "2",
            "customers": [
                {
                    "customerId": cid,
                    "probability": row["risk"],
                    "riskBand": bands[row["risk"]],
                    "drivers": [{"feature": "recency_days", "value": 41.0, "contribution": 0.7}],
                }
                for cid, row in zip(ids, rows, strict=True)
            ],
        }


class Promotions:
    def top_promotions(self, tenant: str, limit: int, store_id: str | None) -> dict[str, Any]:
        return {
            "model": f"{tenant}.promotions",
            "modelVersion": "1",
            "promotions": [
                {
                    "campaignId": 18,
                    "campaignType": "Type A",
                    "spend": {"perHouseholdWeek": 1.5, "ciLow": 0.4, "ciHigh": 2.6},
                },
                {"campaignId": 13, "uplift": 0.12},
            ][:limit],
        }


def client(warehouse: Warehouse | None = None, **models: Any) -> TestClient:
    backends = Backends(
        models={k: ModelClient.local(k, v) for k, v in models.items()},
        features=Features(),  # type: ignore[arg-type]
        default_tenant="default",
    )
    app = create_api(backends)
    app.state.warehouse = warehouse or Warehouse()
    return TestClient(app)


OPTIMIZE = "/api/v1/predictions/inventory/optimize"


@pytest.mark.parametrize(
    "body, text",
    [
        ({"productIds": [1], "serviceLevel": 0.3}, "0.5"),
        ({"productIds": [1], "serviceLevel": 1.0}, "0.999"),
        ({"productIds": [1], "leadTimeWeeks": 6, "reviewPeriodWeeks": 3}, "maximum of 8 weeks"),
        ({"productIds": [1], "leadTimeWeeks": 0}, "leadTimeWeeks"),
        ({"productIds": list(range(1, 102))}, "100"),
        ({"productIds": []}, "productIds"),
        ({"productIds": [1], "orderingCost": 10}, "both orderingCost and holdingCostRate"),
        ({"productIds": [1], "onHand": {"2": 5}}, "not in productIds: [2]"),
        ({"productIds": [1], "onHand": {"1": -5}}, "onHand must be >= 0"),
        ({"productIds": [1], "extra": 1}, "extra"),
    ],
)
def test_optimize_bad_bodies_are_422_naming_the_limit(body: dict, text: str) -> None:
    forecaster = Forecaster()
    r = client(forecaster=forecaster).post(OPTIMIZE, json={"storeId": STORE, **body})
    assert r.status_code == 422, r.text
    assert text in r.text
    assert forecaster.horizons == []


def test_optimize_numbers_follow_the_forecast_quantiles() -> None:
    forecaster = Forecaster()
    body = {
        "storeId": STORE,
        "productIds": [1, 2],
        "serviceLevel": 0.95,
        "leadTimeWeeks": 2,
        "reviewPeriodWeeks": 1,
        "onHand": {"1": 12},
    }
    r = client(forecaster=forecaster).post(OPTIMIZE, json=body)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert forecaster.horizons == [3]  # lead time + review period
    assert data["modelVersion"] == "3" and data["z"] == pytest.approx(1.6449, abs=1e-4)
    first, second = data["products"]
    sigma_week = 2 * 2.0 / (2 * Z_90)  # p90 - p10 = 4 units
    assert first["leadTimeDemand"]["mean"] == 20
    assert first["safetyStock"] == pytest.approx(z_value(0.95) * sigma_week * math.sqrt(2), 0.01)
    assert first["reorderPoint"] == pytest.approx(20 + first["safetyStock"], abs=0.01)
    assert first["onHandSource"] == "request" and first["onHand"] == 12
    assert first["reorderNow"] is True
    assert first["orderQuantity"] == math.ceil(first["orderUpToLevel"] - 12)
    # no onHand given: the documented assumption, visible in the answer
    assert second["onHandSource"].startswith("assumed:") and second["onHand"] == 1
    assert "reorder point" in second["reason"]


def test_higher_service_levels_hold_more_safety_stock() -> None:
    c = client(forecaster=Forecaster())
    stock = [
        c.post(OPTIMIZE, json={"storeId": STORE, "productIds": [1], "serviceLevel": s}).json()[
            "data"
        ]["products"][0]["safetyStock"]
        for s in (0.5, 0.9, 0.99)
    ]
    assert stock[0] == 0 and stock[0] < stock[1] < stock[2]


def test_on_hand_from_the_inventory_table_and_eoq_with_costs() -> None:
    wh = Warehouse({1: (100, "pos sync 2026-11-29")})
    body = {"storeId": STORE, "productIds": [1], "orderingCost": 20, "holdingCostRate": 0.25}
    product = client(wh, forecaster=Forecaster()).post(OPTIMIZE, json=body).json()["data"]
    product = product["products"][0]
    assert product["onHandSource"] == "inventory table: pos sync 2026-11-29"
    assert product["reorderNow"] is False and product["orderQuantity"] == 0
    # EOQ = sqrt(2 * 10 * 52 * 20 / (0.25 * 2.00))
    assert product["unitValue"] == 2.0
    assert product["eoq"] == pytest.approx(math.sqrt(2 * 520 * 20 / 0.5), abs=0.01)


def test_products_without_a_series_get_the_flagged_fallback() -> None:
    body = {"storeId": STORE, "productIds": [3, 4], "orderingCost": 20, "holdingCostRate": 0.25}
    r = client(forecaster=Forecaster()).post(OPTIMIZE, json=body)
    sparse, never = r.json()["data"]["products"]
    assert sparse["fallback"] is True and sparse["fallbackReason"]
    assert sparse["leadTimeDemand"]["mean"] == pytest.approx(1.0)  # (0 + 0 + 4 + 0) / 4
    assert sparse["leadTimeDemand"]["sigma"] > 0  # spread of its last 16 weeks, not 0
    assert sparse["eoq"] is None  # no shelf price known: no EOQ
    assert never["fallback"] is True and never["reorderNow"] is False
    assert never["reason"].startswith("no demand expected")


def test_optimize_unknown_ids_are_404_and_no_model_is_503() -> None:
    c = client(forecaster=Forecaster())
    r = c.post(OPTIMIZE, json={"storeId": "nope", "productIds": [1]})
    assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]
    r = c.post(OPTIMIZE, json={"storeId": STORE, "productIds": [1, 999]})
    assert r.status_code == 404 and "999" in r.json()["error"]["message"]
    untrained = client(forecaster=Forecaster(trained=False))
    r = untrained.post(OPTIMIZE, json={"storeId": STORE, "productIds": [1]})
    assert r.status_code == 503 and "retailpulse train forecaster" in r.json()["error"]["message"]
    assert client().post(OPTIMIZE, json={"storeId": STORE, "productIds": [1]}).status_code == 503


REORDER = "/api/v1/recommendations/reorder"


def test_reorder_lists_products_under_their_reorder_point_most_urgent_first() -> None:
    r = client(forecaster=Forecaster()).post(REORDER, json={"storeId": STORE})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["candidates"] == 3 and data["modelVersion"] == "3"
    products = data["products"]
    # assumed on hand = the origin week's units: 3 sold 0 (no cover), 2 sold 1 (0.2 weeks),
    # 1 sold 10 (one week, under its reorder point of a week plus safety stock)
    assert [p["productId"] for p in products] == [3, 2, 1]
    assert [p["weeksOfCover"] for p in products] == sorted(p["weeksOfCover"] for p in products)
    assert all(p["reorderNow"] and p["orderQuantity"] > 0 for p in products)
    assert all(p["onHandSource"].startswith("assumed:") for p in products)
    stocked = client(Warehouse({1: (100, "count")}), forecaster=Forecaster())
    r = stocked.post(REORDER, json={"storeId": STORE, "limit": 5})
    assert [p["productId"] for p in r.json()["data"]["products"]] == [3, 2]
    one = client(forecaster=Forecaster()).post(REORDER, json={"storeId": STORE, "limit": 1})
    assert [p["productId"] for p in one.json()["data"]["products"]] == [3]


@pytest.mark.parametrize("body", [{"limit": 0}, {"limit": 101}, {"serviceLevel": 0.2}, {}])
def test_reorder_bad_bodies_are_422(body: dict) -> None:
    payload = {"storeId": STORE, **body} if body else {"limit": 5}
    r = client(forecaster=Forecaster()).post(REORDER, json=payload)
    assert r.status_code == 422, r.text


ACTIONS = "/api/v1/recommendations/actions/{}"


def test_actions_combine_churn_reorder_and_promotions_with_reasons_and_versions() -> None:
    c = client(forecaster=Forecaster(), churn=Churn(), promotions=Promotions())
    r = c.get(ACTIONS.format("assoc-1"), params={"storeId": STORE, "limit": 2})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["associateId"] == "assoc-1" and data["storeId"] == STORE
    assert data["models"] == {
        "churn": "default.churn v2",
        "forecaster": "default.forecaster v3",
        "promotions": "default.promotions v1",
    }
    # riskiest first, the low-risk customer left out
    assert [a["subject"] for a in data["customers"]["actions"]] == ["7", "8"]
    assert "churn risk 90% (high)" in data["customers"]["actions"][0]["reason"]
    assert [a["subject"] for a in data["reorder"]["actions"]] == ["3", "2"]
    promotions = data["promotions"]["actions"]
    assert [a["subject"] for a in promotions] == ["18", "13"]
    assert "+1.50 per household-week (95% CI +0.40..+2.60)" in promotions[0]["reason"]
    assert promotions[1]["reason"] == "estimated uplift 12.0%"
    for group in ("customers", "reorder", "promotions"):
        for action in data[group]["actions"]:
            assert action["reason"] and action["modelVersion"]


def test_actions_degrade_part_by_part_when_a_model_is_missing() -> None:
    c = client(forecaster=Forecaster(), churn=Churn(trained=False))
    data = c.get(ACTIONS.format("a1"), params={"storeId": STORE}).json()["data"]
    assert data["promotions"]["available"] is False
    assert "retailpulse train promotions" in data["promotions"]["reason"]
    assert data["customers"]["available"] is False
    assert "retailpulse train churn" in data["customers"]["reason"]
    assert data["reorder"]["available"] is True and data["reorder"]["actions"]
    assert list(data["models"]) == ["forecaster"]


@pytest.mark.parametrize(
    "path, params, status",
    [
        ("a1", {}, 422),  # storeId is required
        ("a1", {"storeId": STORE, "limit": 0}, 422),
        ("a1", {"storeId": STORE, "limit": 51}, 422),
        ("bad%20id!", {"storeId": STORE}, 422),
        ("a1", {"storeId": "nope"}, 404),
    ],
)
def test_actions_validate_the_associate_and_the_store(path: str, params: dict, status: int) -> None:
    c = client(forecaster=Forecaster(), churn=Churn())
    r = c.get(ACTIONS.format(path), params=params)
    assert r.status_code == status, r.text


def test_openapi_declares_every_status_the_routes_return() -> None:
    spec = client().app.openapi()["paths"]
    for path, method in (
        (OPTIMIZE, "post"),
        (REORDER, "post"),
        ("/api/v1/recommendations/actions/{associateId}", "get"),
    ):
        assert {"200", "404", "422", "503"} <= set(spec[path][method]["responses"]), path
