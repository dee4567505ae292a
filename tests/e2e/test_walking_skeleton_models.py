"""Every other served model end to end (the `served` fixture, tests/e2e/conftest.py): each
judged against its baselines in the same run, then answering its routes from the champion."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_forecaster_is_judged_against_its_baselines_in_the_same_run(served) -> None:
    client, _ = served
    summary = client.forecast
    assert summary["window"]["origins"] == {"inner_validation": 36, "test": 44}
    for split in ("inner_validation", "test"):
        assert {"naive", "mean4", "lightgbm", "lstm", "lstm+lightgbm"} <= set(
            summary["table"][split]
        )
    from training.forecasting.evaluate import BLEND_MIN_GAIN

    val = summary["table"]["inner_validation"]
    member = min(("lstm", "lightgbm"), key=lambda n: val[n]["MASE"])
    # the blend serves both members: selected only if it beats the better one by the margin
    blend_wins = val["lstm+lightgbm"]["MASE"] <= (1 - BLEND_MIN_GAIN) * val[member]["MASE"]
    assert summary["selected"] == ("lstm+lightgbm" if blend_wins else member)


def _busiest_pair(conn) -> tuple[str, int]:
    """The store x product sold in the most weeks after week 36 (ties: the lowest ids)."""
    return conn.execute(
        "SELECT store_id, product_id FROM store_product_weekly WHERE tenant_id = 'default'"
        " AND week > 36 GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1"
    ).fetchone()


def test_forecast_route_answers_for_a_real_store_with_flagged_fallbacks(served) -> None:
    import psycopg

    from core.settings import get_settings

    client, _ = served
    with psycopg.connect(get_settings().database_url) as conn:
        store, busy = _busiest_pair(conn)
        rare = conn.execute(
            "SELECT product_id FROM store_product_weekly WHERE tenant_id = 'default'"
            " AND store_id = %s GROUP BY 1 HAVING count(*) = 1 ORDER BY 1 LIMIT 1",
            (store,),
        ).fetchone()[0]
    body = {"storeId": store, "productIds": [busy, rare], "horizon": 3, "quantiles": [0.5]}
    reply = client.post("/api/v1/predictions/demand/forecast", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == client.forecast["version"]
    assert data["originWeek"] == 52  # the newest complete week, not partial week 53
    first, second = data["forecasts"]
    assert first["productId"] == busy and first["fallback"] is False
    assert first["method"] == data["modelKind"] and first["featureTimestamp"]
    assert second["productId"] == rare and second["fallback"] is True
    assert "week(s) with sales" in second["reason"]
    for product in data["forecasts"]:
        assert [w["week"] for w in product["weeks"]] == [53, 54, 55]
        assert all(
            w["p50"] >= 0 and w["p10"] is None and w["p90"] is None for w in product["weeks"]
        )
    unknown = client.post("/api/v1/predictions/demand/forecast", json={**body, "storeId": "nope"})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]["message"]
    too_far = client.post("/api/v1/predictions/demand/forecast", json={**body, "horizon": 9})
    assert too_far.status_code == 422


def test_churn_is_judged_against_its_baselines_and_served_from_the_champion(served) -> None:
    from features.offline import churn_frame
    from training.churn_run import snapshot_times
    from training.datasets import warehouse_line_items
    from training.registry import load_champion
    from training.specs import CHURN

    client, _ = served
    summary = client.churn
    assert summary["table"]["window"]["label_weeks"] == [45, 53]  # CJ's churn_cj windows
    assert {"logistic", "recency", "lightgbm_raw"} <= set(summary["baselines"])
    assert 0.5 <= summary["roc_auc"] <= 1.0
    # the route serves the champion on the newest ("now") snapshot from the online store
    items, _ = warehouse_line_items("default")
    now = churn_frame(tenant="default", as_of=snapshot_times(items)["now"][1])
    ids = [int(c) for c in now["customer_id"].iloc[:5]]
    reply = client.post("/api/v1/predictions/churn/analyze", json={"customerIds": ids})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == summary["version"]
    loaded = load_champion(CHURN, "default")
    X = now.set_index("customer_id").loc[ids, loaded.model.model.feature_names].to_numpy()
    expected = loaded.model.model.predict_proba(X)
    got = [c["probability"] for c in data["customers"]]
    assert got == pytest.approx(expected.tolist(), abs=1e-4)
    for c in data["customers"]:
        assert c["riskBand"] == (
            "high" if c["probability"] >= 0.5 else "medium" if c["probability"] >= 0.2 else "low"
        )
        assert len(c["drivers"]) <= 3
        assert all(d["feature"] in loaded.model.model.feature_names for d in c["drivers"])
    unknown = client.post("/api/v1/predictions/churn/analyze", json={"customerIds": [987654321]})
    assert unknown.status_code == 404


def test_a_failed_churn_run_leaves_the_champion_untouched(served) -> None:
    from core.errors import ValidationFailed
    from pipelines.jobs.train import train_churn
    from training.registry import load_champion
    from training.specs import CHURN

    client, _ = served
    before = load_champion(CHURN, "default").version
    with pytest.raises(ValidationFailed, match="no transactions"):
        train_churn(tenant="nobody", quick=True)
    assert load_champion(CHURN, "default").version == before


def test_anomaly_detector_is_judged_and_flags_store_days_from_the_champion(served) -> None:
    client, _ = served
    summary = client.anomaly
    assert {"ensemble", "seasonal", "iqr", "iforest", "seasonal_log1p", "iforest_protocol"} <= set(
        summary["table"]
    )
    assert summary["window"]["window"] == ["2017-11-02", "2017-12-31"]
    body = {"from": "2017-11-01", "to": "2018-01-05"}
    reply = client.post("/api/v1/predictions/anomalies/detect", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == summary["version"] and data["daysScanned"] == 61
    assert data["skipped"]["after_newest_data"] == 5 * data["storesScanned"]
    for day in data["anomalies"]:
        assert "2017-11-01" <= day["date"] <= "2017-12-31" and day["detectors"]
        assert day["score"] >= 0.98 and day["direction"] in ("spike", "drop")
    too_long = client.post(
        "/api/v1/predictions/anomalies/detect", json={"from": "2017-01-01", "to": "2017-12-31"}
    )
    assert too_long.status_code == 422 and "92" in too_long.json()["error"]["message"]
    unknown = client.post("/api/v1/predictions/anomalies/detect", json={**body, "storeIds": ["x"]})
    assert unknown.status_code == 404


def test_operators_list_versions_and_promote_one_explicitly(served) -> None:
    from core.errors import NotFoundError
    from pipelines.jobs.train import train_churn
    from training import registry
    from training.specs import CHURN

    client, _ = served
    second = train_churn(quick=True)  # same window: kept unless strictly better
    rows = registry.versions(CHURN, "default")
    assert [r["version"] for r in rows][:2] == [second["version"], client.churn["version"]]
    assert sum(r["champion"] for r in rows) == 1
    with pytest.raises(NotFoundError, match="no version 99"):
        registry.promote(CHURN, "default", 99)
    result = registry.promote(CHURN, "default", second["version"])
    assert result["version"] == second["version"]
    assert [r["version"] for r in registry.versions(CHURN, "default") if r["champion"]] == [
        second["version"]
    ]


def test_churn_of_a_segment_scores_its_members_riskiest_first(served) -> None:
    from training.registry import load_champion
    from training.specs import SEGMENTER

    client, _ = served
    segmenter = load_champion(SEGMENTER, "default").model
    segment = segmenter.profiles[0]["id"]
    members = set(segmenter.members(segment))
    assert members and len(members) == segmenter.profiles[0]["size"]
    reply = client.post("/api/v1/predictions/churn/analyze", json={"segmentId": segment})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    got = [c["customerId"] for c in data["customers"]]
    assert data["segmentId"] == segment and set(got) == members and len(got) == len(members)
    probabilities = [c["probability"] for c in data["customers"]]
    assert probabilities == sorted(probabilities, reverse=True)
    missing = client.post("/api/v1/predictions/churn/analyze", json={"segmentId": 99})
    assert missing.status_code == 404


def test_recommender_is_judged_and_recommends_with_reasons(served) -> None:
    import psycopg

    from core.settings import get_settings

    client, _ = served
    summary = client.recommender
    test = summary["table"]["test"]
    assert {"popularity", "repeat", "item_knn", "als", "ncf", "hybrid"} <= set(test)
    assert summary["ndcg_at_10"] == test["hybrid"]["NDCG@10"]
    reply = client.get("/api/v1/recommendations/products/1?limit=7")
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == summary["version"] and data["fallback"] is False
    recs = data["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, 8))
    assert len({r["productId"] for r in recs}) == 7 and all(r["reason"] for r in recs)
    # excluding the last 365 days leaves only staples (bought in >= half of the baskets)
    fresh = client.get("/api/v1/recommendations/products/1?limit=7&excludePurchasedDays=365")
    assert fresh.status_code == 200 and fresh.json()["data"]["asOf"] == "2018-01-01"
    with psycopg.connect(get_settings().database_url) as conn:
        bought = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT i.product_id FROM transactions t JOIN transaction_items i"
                " USING (tenant_id, transaction_id) WHERE t.tenant_id = 'default'"
                " AND t.customer_id = 1"
            )
        }
        # a customer the warehouse knows without any purchase: popularity, flagged fallback
        conn.execute("INSERT INTO customers (tenant_id, customer_id) VALUES ('default', 424242)")
        conn.commit()
        try:
            new = client.get("/api/v1/recommendations/products/424242?limit=5").json()["data"]
        finally:  # the session's warehouse is shared: leave its customers as they were
            conn.execute(
                "DELETE FROM customers WHERE tenant_id = 'default' AND customer_id = 424242"
            )
    assert {r["productId"] for r in recs} & bought  # repeat purchases lead the plain list
    for r in fresh.json()["data"]["recommendations"]:
        assert r["productId"] not in bought or "every" in r["reason"]  # only staples stay
    assert new["fallback"] is True and "popular" in new["fallbackReason"]
    assert len(new["recommendations"]) == 5
    assert client.get("/api/v1/recommendations/products/987654321").status_code == 404
    assert client.get("/api/v1/recommendations/products/1?limit=101").status_code == 422


def test_inventory_reorder_and_actions_plan_from_the_served_models(served) -> None:
    import psycopg

    from core.settings import get_settings

    client, _ = served
    with psycopg.connect(get_settings().database_url) as conn:
        store, busy = _busiest_pair(conn)
    body = {
        "storeId": store,
        "productIds": [busy],
        "leadTimeWeeks": 2,
        "reviewPeriodWeeks": 1,
        "orderingCost": 20,
        "holdingCostRate": 0.25,
    }
    reply = client.post("/api/v1/predictions/inventory/optimize", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == client.forecast["version"]
    (product,) = data["products"]
    forecast = client.post(
        "/api/v1/predictions/demand/forecast",
        json={"storeId": store, "productIds": [busy], "horizon": 3},
    ).json()["data"]["forecasts"][0]["weeks"]
    # demand over the 2-week lead time is the forecaster's p50s; the reorder point adds z*sigma
    lead = product["leadTimeDemand"]
    assert lead["mean"] == pytest.approx(sum(w["p50"] for w in forecast[:2]), abs=0.02)
    assert product["safetyStock"] == pytest.approx(data["z"] * lead["sigma"], abs=0.02)
    assert product["reorderPoint"] == pytest.approx(lead["mean"] + product["safetyStock"], abs=0.02)
    assert product["onHandSource"].startswith("assumed:")  # Complete Journey has no stock levels
    assert product["eoq"] is not None and product["unitValue"] > 0
    given = client.post(
        "/api/v1/predictions/inventory/optimize",
        json={**body, "onHand": {str(busy): 10_000}},
    ).json()["data"]["products"][0]
    assert given["onHandSource"] == "request" and given["orderQuantity"] == 0
    for bad, text in (
        ({"serviceLevel": 1.2}, "0.999"),
        ({"leadTimeWeeks": 8}, "maximum of 8"),
    ):
        r = client.post("/api/v1/predictions/inventory/optimize", json={**body, **bad})
        assert r.status_code == 422 and text in r.text
    unknown = client.post("/api/v1/predictions/inventory/optimize", json={**body, "storeId": "x"})
    assert unknown.status_code == 404

    reorder = client.post("/api/v1/recommendations/reorder", json={"storeId": store, "limit": 5})
    assert reorder.status_code == 200, reorder.text
    due = reorder.json()["data"]["products"]
    assert 0 < len(due) <= 5 and all(p["reorderNow"] and p["orderQuantity"] > 0 for p in due)
    cover = [p["weeksOfCover"] for p in due if p["weeksOfCover"] is not None]
    assert cover == sorted(cover)  # most urgent first

    actions = client.get(f"/api/v1/recommendations/actions/assoc-1?storeId={store}&limit=3")
    assert actions.status_code == 200, actions.text
    nba = actions.json()["data"]
    assert nba["customers"]["available"] and nba["reorder"]["available"]
    assert nba["models"]["churn"].startswith("default.churn v")
    top = [str(p["productId"]) for p in due[:3]]
    assert [a["subject"] for a in nba["reorder"]["actions"]] == top
    for group in ("customers", "reorder"):
        assert all(a["reason"] and a["modelVersion"] for a in nba[group]["actions"])
    if not nba["promotions"]["available"]:  # until a promotions model is trained and served
        assert "retailpulse train promotions" in nba["promotions"]["reason"]
    assert client.get("/api/v1/recommendations/actions/assoc-1").status_code == 422


def test_pricing_and_promotion_routes_answer_from_their_champions(served) -> None:
    import psycopg

    from core.settings import get_settings

    client, _ = served
    with psycopg.connect(get_settings().database_url) as conn:
        (product,) = conn.execute(
            "SELECT product_id FROM transaction_items WHERE tenant_id = 'default'"
            " GROUP BY product_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    reply = client.post("/api/v1/predictions/pricing/elasticity", json={"productIds": [product]})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["modelVersion"] == client.pricing["version"]
    advice = client.post(
        "/api/v1/recommendations/pricing",
        json={"productIds": [product], "objective": "revenue", "maxChangePct": 10},
    )
    assert advice.status_code == 200, advice.text
    ranked = client.get("/api/v1/recommendations/promotions?limit=3")
    assert ranked.status_code == 200, ranked.text
    assert ranked.json()["data"]["modelVersion"] == client.promotions["version"]
    unknown = client.post("/api/v1/predictions/promotions/impact", json={"campaignId": 9999})
    assert unknown.status_code == 404 and "9999" in unknown.json()["error"]["message"]
    too_many = client.post("/api/v1/predictions/pricing/elasticity", json={"productIds": []})
    assert too_many.status_code == 422
