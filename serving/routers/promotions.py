"""Promotions: `POST /api/v1/predictions/promotions/impact` and
`GET /api/v1/recommendations/promotions`.

Both read the champion promotion-impact model: per campaign, the difference-in-differences of
spend and baskets per household-week against propensity-matched unexposed households, with
bootstrap CIs, matched counts, balance (standardized mean differences before and after
matching) and a placebo estimate (training/promotions.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from core.errors import ModelNotReady, NotFoundError
from serving import envelope
from serving.deps import PromotionsDep, StoreScopeDep, TenantDep, ensure_store_allowed
from serving.schemas_pricing import (
    MAX_PROMOTIONS,
    ImpactRequest,
    PromotionImpacts,
    PromotionRecommendations,
)
from training.specs import PROMOTIONS

router = APIRouter()
TRAIN_HINT = f"no champion promotions model yet: train one with `{PROMOTIONS.train_command}`"


@router.post(
    "/api/v1/predictions/promotions/impact",
    tags=["predictions"],
    responses=envelope.errors(_404="Unknown campaign", _503=envelope.UNAVAILABLE),
)
async def promotion_impact(
    request: Request, body: ImpactRequest, promotions: PromotionsDep, tenant: TenantDep
) -> envelope.Envelope[PromotionImpacts]:
    """Uplift of a campaign (or 1..50) per household-week, over its window and in total, with
    95% CIs, matched counts, balance and a placebo; a campaign that could not be measured says
    why in `status`. Unknown campaign → 404 naming it; no trained model → 503."""
    result = await promotions.call("impact", tenant, body.ids)
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": PROMOTIONS.key})
    if unknown := result.get("unknownCampaigns"):
        raise NotFoundError(
            f"campaign(s) {unknown[:20]} not found (known: {result.get('known')})",
            details={"campaignIds": unknown},
        )
    return envelope.ok(request, PromotionImpacts(**result))


@router.get(
    "/api/v1/recommendations/promotions",
    tags=["recommendations"],
    responses=envelope.errors(_404="Unknown store", _503=envelope.UNAVAILABLE),
)
async def promotions_to_run(
    request: Request,
    promotions: PromotionsDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_PROMOTIONS, description=f"Campaigns to return (1..{MAX_PROMOTIONS})"),
    ] = 10,
    store_id: Annotated[
        str | None,
        Query(
            alias="storeId",
            min_length=1,
            max_length=64,
            description="Rank by this store's households",
        ),
    ] = None,
) -> envelope.Envelope[PromotionRecommendations]:
    """Campaigns worth running again, ranked by the lower end of the 95% CI of their spend
    uplift per household (a store's own households when `storeId` has enough of them), with
    the evidence. Unknown store → 404; no trained model → 503."""
    if store_id is not None:
        ensure_store_allowed(stores, store_id)
    result = await promotions.call("top_promotions", tenant, limit, store_id)
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": PROMOTIONS.key})
    if unknown := result.get("unknownStore"):
        raise NotFoundError(
            f"store {unknown!r} not found in the promotions model", details={"storeId": unknown}
        )
    return envelope.ok(request, PromotionRecommendations(**result))
