"""HTTP contract of the pricing and promotion routes (no services): the real deployments over
in-memory bundles; 422 naming the limit, 404 naming the unknown, 503 naming the command."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_api
from serving.deployments.pricing import Pricing
from serving.deployments.promotions import Promotions
from serving.deps import Backends, ModelClient
from training.models.pricing import PricingBundle
from training.registry import Loaded

NAN = float("nan")


def pricing_bundle() -> PricingBundle:
    cats = pd.DataFrame(
        {
            "category": ["ELASTIC", "INELASTIC", "FLAT", "NOISY"],
            "department": ["GROCERY"] * 4,
            "status": ["estimated", "estimated", "insufficient variation", "estimated"],
            "elasticity": [-2.0, -0.5, NAN, -1.2],
            "se": [0.2, 0.1, NAN, 0.9],
            "ci_low": [-2.4, -0.7, NAN, -3.0],
            "ci_high": [-1.6, -0.3, NAN, 0.6],
            "p_value": [0.0001, 0.0002, NAN, 0.3],
            "n_obs": [500, 400, 12, 90],
            "n_products": [3, 2, 1, 2],
            "n_price_changes": [80, 60, 0, 25],
            "r2_within": [0.1, 0.05, NAN, 0.01],
        }
    ).set_index("category")
    prods = pd.DataFrame(
        {
            "product_id": [1, 2, 3, 4, 5],
            "category": ["ELASTIC", "INELASTIC", "FLAT", "NOISY", "ELASTIC"],
            "department": ["GROCERY"] * 5,
            "price": [2.0, 4.0, 1.0, 3.0, 5.0],
            "last_week": [50] * 5,
            "weeks_sold": [10, 10, 2, 5, 30],
        }
    ).set_index("product_id")
    return PricingBundle(cats, prods, {"weeks": [1, 53]}, 0.05)


@pytest.fixture(scope="module")
def promotions_bundle():
    from tests.unit.test_pricing_promotions_estimators import synthetic_promotions
    from training.promotions import load_promotions_config, run_promotions

    data, _ = synthetic_promotions(1)
    return run_promotions(tenant="default", cfg=load_promotions_config(bootstrap=100), data=data)


def served(cls, bundle=None):
    dep = cls("default")
    if bundle is None:  # no model: registry checked a moment ago, nothing found
        dep._checked = {"default": time.monotonic()}
        dep._reload_interval_s = 1e9
    else:
        dep._loaded = {"default": Loaded(bundle, f"default.{cls.spec.key}", "3", "run")}
    return dep


def client(**models) -> TestClient:
    backends = Backends(
        models={k: ModelClient.local(k, v) for k, v in models.items()}, default_tenant="default"
    )
    return TestClient(create_api(backends))


@pytest.fixture
def api(promotions_bundle) -> TestClient:
    return client(
        pricing=served(Pricing, pricing_bundle()),
        promotions=served(Promotions, promotions_bundle.bundle),
    )


ELASTICITY = "/api/v1/predictions/pricing/elasticity"
PRICE_RECS = "/api/v1/recommendations/pricing"
IMPACT = "/api/v1/predictions/promotions/impact"
PROMO_RECS = "/api/v1/recommendations/promotions"


@pytest.mark.parametrize(
    "path, body, text",
    [
        (ELASTICITY, {}, "give categories, productIds or both"),
        (ELASTICITY, {"categories": []}, "1..100"),
        (ELASTICITY, {"categories": [f"C{i}" for i in range(101)]}, "1..100"),
        (ELASTICITY, {"productIds": list(range(1, 502))}, "1..500"),
        (ELASTICITY, {"productIds": [0]}, "positive"),
        (PRICE_RECS, {"productIds": [1], "category": "ELASTIC"}, "exactly one"),
        (PRICE_RECS, {"productIds": [1], "maxChangePct": 0}, "maxChangePct"),
        (PRICE_RECS, {"productIds": [1], "maxChangePct": 80}, "50"),
        (PRICE_RECS, {"productIds": [1], "objective": "profit"}, "objective"),
        (IMPACT, {}, "exactly one of campaignId or campaignIds"),
        (IMPACT, {"campaignIds": []}, "1..50"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(api, path: str, body: dict, text: str) -> None:
    r = api.post(path, json=body)
    assert r.status_code == 422, r.text
    assert text in r.text


def test_elasticity_answers_per_category_and_says_insufficient_variation(api) -> None:
    r = api.post(ELASTICITY, json={"categories": ["FLAT"], "productIds": [5, 1, 2]}).json()
    assert r["success"] and r["data"]["model"] == "default.pricing"
    assert r["data"]["modelVersion"] == "3"
    rows = {c["category"]: c for c in r["data"]["categories"]}
    assert rows["FLAT"]["status"] == "insufficient variation" and rows["FLAT"]["elasticity"] is None
    assert rows["ELASTIC"]["elasticity"] == -2.0 and rows["ELASTIC"]["productIds"] == [5, 1]
    assert rows["ELASTIC"]["ciLow"] < -2.0 < rows["ELASTIC"]["ciHigh"]
    assert rows["INELASTIC"]["significant"] is True


def test_unknown_category_or_product_is_404_naming_it(api) -> None:
    r = api.post(ELASTICITY, json={"categories": ["ELASTIC", "CAVIAR"]})
    assert r.status_code == 404 and "CAVIAR" in r.json()["error"]["message"]
    r = api.post(PRICE_RECS, json={"productIds": [1, 999]})
    assert r.status_code == 404 and "999" in r.json()["error"]["message"]


def test_price_recommendations_follow_the_elasticity(api) -> None:
    body = {"productIds": [1, 2, 3, 4], "maxChangePct": 10}
    recs = {
        x["productId"]: x for x in api.post(PRICE_RECS, json=body).json()["data"]["recommendations"]
    }
    assert recs[1]["action"] == "cut price" and recs[1]["suggestedPrice"] == 1.8
    assert recs[1]["expectedRevenueChangePct"] > 0 and recs[1]["expectedUnitsChangePct"] > 0
    assert recs[2]["action"] == "raise price" and recs[2]["expectedRevenueChangePct"] > 0
    assert recs[2]["expectedUnitsChangePct"] < 0
    assert recs[3]["action"] == recs[4]["action"] == "keep price"
    assert "not significant" in recs[4]["reason"] and recs[4]["changePct"] == 0
    units = api.post(PRICE_RECS, json={"productIds": [2], "objective": "units"}).json()["data"]
    assert units["recommendations"][0]["action"] == "cut price"
    cat = api.post(PRICE_RECS, json={"category": "ELASTIC", "limit": 1}).json()["data"]
    assert [x["productId"] for x in cat["recommendations"]] == [5]  # the best seller


def test_promotion_impact_and_ranking(api, promotions_bundle) -> None:
    r = api.post(IMPACT, json={"campaignIds": [1, 2]}).json()["data"]
    assert r["model"] == "default.promotions" and r["modelVersion"] == "3"
    c1, c2 = r["campaigns"]
    assert c1["status"] == "estimated" and c1["spend"]["ciLow"] > 0
    assert c1["matched"]["treated"] > 0 and len(c1["balance"]["features"]) == 5
    assert c2["status"] == "insufficient pre-period" and c2["spend"] is None
    missing = api.post(IMPACT, json={"campaignId": 77})
    assert missing.status_code == 404 and "77" in missing.json()["error"]["message"]
    top = api.get(PROMO_RECS, params={"limit": 3}).json()["data"]
    assert [p["campaignId"] for p in top["promotions"]] == [1]
    local = api.get(PROMO_RECS, params={"storeId": "2"}).json()["data"]["promotions"]
    assert local[0]["scope"] == "store" and local[0]["storeId"] == "2"
    assert api.get(PROMO_RECS, params={"storeId": "999"}).status_code == 404
    for bad in (0, 51):
        r = api.get(PROMO_RECS, params={"limit": bad})
        assert r.status_code == 422 and "limit" in r.text


def test_untrained_or_undeployed_models_are_503_naming_the_command() -> None:
    c = client(pricing=served(Pricing), promotions=served(Promotions))
    r = c.post(ELASTICITY, json={"categories": ["X"]})
    assert r.status_code == 503 and "retailpulse train pricing" in r.text
    r = c.get(PROMO_RECS)
    assert r.status_code == 503 and "retailpulse train promotions" in r.text
    none = client()
    assert none.post(IMPACT, json={"campaignId": 1}).status_code == 503
    assert none.post(PRICE_RECS, json={"productIds": [1]}).status_code == 503


def test_recommendation_effects_match_the_constant_elasticity_curve() -> None:
    b = pricing_bundle()
    rec = b.recommend(1, objective="revenue", max_change_pct=10)
    assert rec["expectedUnitsChangePct"] == pytest.approx((0.9**-2.0 - 1) * 100, abs=0.01)
    assert rec["expectedRevenueChangePct"] == pytest.approx((0.9**-1.0 - 1) * 100, abs=0.01)
    lo, hi = rec["expectedUnitsChangePctRange"]
    assert lo < rec["expectedUnitsChangePct"] < hi
    assert np.isclose(rec["suggestedPrice"], 1.8)
