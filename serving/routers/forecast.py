"""Demand forecasts: `POST /api/v1/predictions/demand/forecast`.

The ingress reads the online features of the store, the products and each store × product
pair in one Redis round trip (one Lua call over the three views), together with the pairs'
batch-scored forecasts (`retailpulse score forecasts`), answers unknown ids with a 404 naming
them, and hands the rows to the forecaster deployment, which answers a pair from its batch
score when that is still what the served model would say (same version, same inputs), and
otherwise reconstructs its weekly history and runs the served model (or the documented
fallback).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.errors import ModelNotReady, NotFoundError
from core.predictions import meta_key, redis_key
from features.catalog import PRODUCT_ATTRIBUTES, STORE_ATTRIBUTES, STORE_PRODUCT_WEEKLY
from serving import envelope
from serving.deps import (
    ForecasterDep,
    OnlineDep,
    StoreScopeDep,
    TenantDep,
    ensure_store_allowed,
)
from serving.schemas import ALLOWED_QUANTILES, DemandForecast, ForecastRequest
from training.specs import FORECASTER

router = APIRouter(tags=["predictions"])
TRAIN_HINT = f"no champion forecaster yet: train one with `{FORECASTER.train_command}`"


@router.post(
    "/api/v1/predictions/demand/forecast",
    responses=envelope.errors(_404="Unknown store or product", _503=envelope.UNAVAILABLE),
)
async def demand_forecast(
    request: Request,
    body: ForecastRequest,
    forecaster: ForecasterDep,
    online: OnlineDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
) -> envelope.Envelope[DemandForecast]:
    """Weekly p10 / p50 / p90 units for products of one store, 1..8 weeks ahead.

    Unknown store or product → 404 naming it; horizon outside 1..8 → 422; no trained
    forecaster → 503. A product with too little recent history in the store is answered by
    the fallback (mean of its last 4 weeks) and flagged `fallback: true` with the reason.
    """
    ensure_store_allowed(stores, body.storeId)
    pairs = [(body.storeId, pid) for pid in body.productIds]
    scored = [meta_key(tenant, FORECASTER.key)]
    scored.extend(redis_key(tenant, FORECASTER.key, f"{s}:{p}") for s, p in pairs)
    (store,), products, weekly, batch = await online.get_many_views(
        tenant,
        [
            (STORE_ATTRIBUTES, [body.storeId], False),
            (PRODUCT_ATTRIBUTES, body.productIds, False),
            (STORE_PRODUCT_WEEKLY, pairs, True),
        ],
        scored,
    )
    if store is None:
        raise NotFoundError(
            f"store {body.storeId!r} not found: no store features in the online store "
            "(unknown store, or features not materialized: `retailpulse features materialize`)",
            details={"storeId": body.storeId},
        )
    unknown = [pid for pid, row in zip(body.productIds, products, strict=True) if row is None]
    if unknown:
        raise NotFoundError(
            f"product(s) {unknown} not found in the online store",
            details={"productIds": unknown},
        )
    items = [
        {"productId": pid, "attributes": attrs, "weekly": row}
        for pid, attrs, row in zip(body.productIds, products, weekly, strict=True)
    ]
    result = await forecaster.call(
        "forecast",
        tenant,
        {
            "storeId": body.storeId,
            "store": store,
            "horizon": body.horizon,
            "items": items,
            "scored": batch,  # [meta, one per product]: raw batch scores, None when absent
        },
    )
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": FORECASTER.key})
    quantiles = body.quantiles or list(ALLOWED_QUANTILES)
    names = {0.1: "p10", 0.5: "p50", 0.9: "p90"}
    dropped = [names[q] for q in ALLOWED_QUANTILES if q not in quantiles]
    for product in result["forecasts"]:
        for week in product["weeks"]:
            for name in dropped:
                week[name] = None
    return envelope.ok(request, DemandForecast(quantiles=quantiles, **result))
