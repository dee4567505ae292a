"""Product recommendations: `GET /api/v1/recommendations/products/{customerId}`.

The recommender deployment holds the champion's precomputed candidates and scores per
household; it also knows which customers exist (the warehouse) and what they bought lately, so
the route only validates and wraps the answer in the envelope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from core.errors import ModelNotReady, NotFoundError
from serving import envelope
from serving.deployments.recommender import DEFAULT_PER_CATEGORY
from serving.deps import RecommenderDep, TenantDep
from serving.schemas_predictions import (
    MAX_EXCLUDE_DAYS,
    MAX_RECOMMENDATIONS,
    ProductRecommendations,
)
from training.specs import RECOMMENDER

router = APIRouter(tags=["recommendations"])
TRAIN_HINT = f"no champion recommender yet: train one with `{RECOMMENDER.train_command}`"
CustomerId = Annotated[int, Path(alias="customerId", ge=1, description="Household / customer id")]


@router.get(
    "/api/v1/recommendations/products/{customerId}",
    responses=envelope.errors(_404="Unknown customer", _503=envelope.UNAVAILABLE),
)
async def recommend_products(
    request: Request,
    customer_id: CustomerId,
    recommender: RecommenderDep,
    tenant: TenantDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_RECOMMENDATIONS, description="How many products, 1..100")
    ] = 10,
    exclude_purchased_days: Annotated[
        int | None,
        Query(
            alias="excludePurchasedDays",
            ge=0,
            le=MAX_EXCLUDE_DAYS,
            description="Leave out products the customer bought in the last N days "
            "(counted back from the data's newest day), except staples bought every week",
        ),
    ] = None,
    max_per_category: Annotated[
        int,
        Query(
            alias="maxPerCategory",
            ge=1,
            le=MAX_RECOMMENDATIONS,
            description="Diversity: at most this many products of one product category",
        ),
    ] = DEFAULT_PER_CATEGORY,
) -> envelope.Envelope[ProductRecommendations]:
    """Ranked products for one customer with a one-line reason each and the model version.

    Unknown customer → 404; `limit` outside 1..100 → 422; a customer without purchase history
    gets the most popular products of their store, flagged `fallback: true`.
    """
    result = await recommender.call(
        "recommend", tenant, customer_id, limit, exclude_purchased_days, max_per_category
    )
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": RECOMMENDER.key})
    if result.get("notFound"):
        raise NotFoundError(
            f"customer {customer_id} not found in the warehouse of tenant {tenant!r}",
            details={"customerId": customer_id},
        )
    return envelope.ok(request, ProductRecommendations.model_validate(result))
