"""Pricing: `POST /api/v1/predictions/pricing/elasticity` and `POST /api/v1/recommendations/pricing`.

Both read the champion pricing model's precomputed per-category elasticities (log-log, entity
and week fixed effects, CIs clustered by product; training/pricing.py). A category whose shelf
prices moved too little answers status "insufficient variation" and no number.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.errors import ModelNotReady, NotFoundError
from serving import envelope
from serving.deps import PricingDep, TenantDep
from serving.schemas_pricing import (
    ElasticityAnswer,
    ElasticityRequest,
    PricingRecommendationRequest,
    PricingRecommendations,
)
from training.specs import PRICING

router = APIRouter()
TRAIN_HINT = f"no champion pricing model yet: train one with `{PRICING.train_command}`"


def _checked(result: dict | None) -> dict:
    """503 without a model, 404 naming unknown categories or products."""
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": PRICING.key})
    if unknown := result.get("unknownCategories"):
        raise NotFoundError(
            f"unknown product categor{'y' if len(unknown) == 1 else 'ies'} {unknown[:20]} "
            "(no merchandise sales in the pricing model)",
            details={"categories": unknown},
        )
    if unknown := result.get("unknownProducts"):
        raise NotFoundError(
            f"product(s) {unknown[:20]} not found: no merchandise sales in the pricing model",
            details={"productIds": unknown},
        )
    return result


@router.post(
    "/api/v1/predictions/pricing/elasticity",
    tags=["predictions"],
    responses=envelope.errors(_404="Unknown category or product", _503=envelope.UNAVAILABLE),
)
async def price_elasticity(
    request: Request, body: ElasticityRequest, pricing: PricingDep, tenant: TenantDep
) -> envelope.Envelope[ElasticityAnswer]:
    """Per category (named, or of the named products): log-log price elasticity of units with
    its 95% CI, observations, price moves and fit quality, or "insufficient variation".

    `categories` (1..100) and/or `productIds` (1..500); empty or longer lists → 422; an
    unknown category or product → 404 naming it; no trained model → 503.
    """
    result = await pricing.call("elasticity", tenant, body.categories or [], body.productIds or [])
    return envelope.ok(request, ElasticityAnswer(**_checked(result)))


@router.post(
    "/api/v1/recommendations/pricing",
    tags=["recommendations"],
    responses=envelope.errors(_404="Unknown category or product", _503=envelope.UNAVAILABLE),
)
async def price_recommendations(
    request: Request, body: PricingRecommendationRequest, pricing: PricingDep, tenant: TenantDep
) -> envelope.Envelope[PricingRecommendations]:
    """A price move per product from its category's elasticity, within ±`maxChangePct`.

    Under constant elasticity e, revenue ~ price^(1+e): the revenue-maximising move is the
    bound on the side 1+e points to (cut when e < -1, raise when -1 < e < 0); for `units`, a
    cut. "keep price" when e is not significant, positive, or (revenue) its CI spans -1.
    `productIds` (1..500) or `category` (its `limit` best sellers), not both → 422.
    """
    result = await pricing.call(
        "recommend", tenant, body.productIds, body.category, body.objective, body.maxChangePct,
        body.limit,
    )  # fmt: skip
    return envelope.ok(request, PricingRecommendations(**_checked(result)))
