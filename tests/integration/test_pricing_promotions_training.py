"""`train pricing` and `train promotions` on the 100-household sample: campaign exposure is
ingested with the baskets, both models register and their served bundles answer."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import SAMPLE_HOUSEHOLDS

pytestmark = pytest.mark.integration


def test_ingest_loads_campaign_exposure_of_the_sampled_households_only(sample_warehouse):
    import numpy as np

    from core.db import connect
    from core.settings import get_settings
    from pipelines.ingest_campaigns import campaign_exposure, load_campaign_households

    tenant = get_settings().tenant
    with connect() as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT customer_id), bool_and(customer_id IN "
            "(SELECT customer_id FROM customers c WHERE c.tenant_id = h.tenant_id)) "
            "FROM campaign_households h WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
        households = np.array([r[0] for r in conn.execute(
            "SELECT customer_id FROM customers WHERE tenant_id = %s", (tenant,))])  # fmt: skip
    count, distinct, all_loaded = rows
    assert count == len(campaign_exposure(households, tenant)) > 0
    assert distinct <= SAMPLE_HOUSEHOLDS and all_loaded
    with psycopg.connect(get_settings().database_url) as conn:  # re-running adds nothing
        assert load_campaign_households(conn, households, tenant) == 0
        conn.rollback()


def test_pricing_and_promotions_train_register_and_answer(sample_warehouse):
    from core.settings import get_settings
    from pipelines.jobs.train import train_pricing, train_promotions
    from serving.deployments.pricing import Pricing
    from serving.deployments.promotions import Promotions
    from training.promotions import top_promotions
    from training.registry import load_champion
    from training.specs import PRICING, PROMOTIONS

    # Another test (the e2e fixture) may have trained this tenant's models first: a version
    # is promoted only when nothing was, or when it beats the champion (lower is better).
    tenant = get_settings().tenant
    before = {spec.key: load_champion(spec, tenant) for spec in (PRICING, PROMOTIONS)}
    pricing = train_pricing()
    h = pricing["holdout"]
    assert h["rows"] > 0 and h["rmse_baseline"] > 0
    assert h["rmse_model"] == pricing["rmse_log_units"]
    promos = train_promotions(quick=True)
    assert promos["table"]["estimated"] >= 1
    for spec, summary in ((PRICING, pricing), (PROMOTIONS, promos)):
        if before[spec.key] is None:
            assert summary["promoted"], summary["reason"]
        champion = load_champion(spec, summary["tenant"]).version
        assert champion == (summary["version"] if summary["promoted"] else before[spec.key].version)

    loaded = load_champion(PRICING, pricing["tenant"])
    bundle = loaded.model
    cats = bundle.categories
    assert set(cats["status"]) <= {"estimated", "insufficient variation"}
    est = cats[cats["status"] == "estimated"]
    assert len(est) >= 1 and (est["ci_low"] <= est["elasticity"]).all()
    dep = Pricing(pricing["tenant"])
    dep._loaded = {pricing["tenant"]: loaded}
    product = int(bundle.products.index[0])
    answer = dep.elasticity(pricing["tenant"], [], [product])
    assert answer["modelVersion"] == loaded.version
    assert answer["categories"][0]["productIds"] == [product]
    rec = dep.recommend(pricing["tenant"], [product], None, "revenue", 10.0, 10)
    assert rec["recommendations"][0]["action"] in ("keep price", "raise price", "cut price")

    promo = load_champion(PROMOTIONS, promos["tenant"])
    campaigns = promo.model.campaigns
    assert len(campaigns) == 27  # every Complete Journey campaign has a record, with a status
    dep = Promotions(promos["tenant"])
    dep._loaded = {promos["tenant"]: promo}
    impact = dep.impact(promos["tenant"], sorted(campaigns)[:3])
    assert [c["campaignId"] for c in impact["campaigns"]] == sorted(campaigns)[:3]
    ranked = top_promotions(promo.model, limit=5)
    assert all(r["campaignId"] in campaigns for r in ranked)
    lower = [r["ciLow"] for r in ranked]
    assert lower == sorted(lower, reverse=True)
