"""Sales analytics (seed §2.2): realtime sales, product performance, store comparison, basket
analysis and trends, from the rollup tables (analytics/), cached in Redis.

Every answer is looked up in the cache first (`analytics:{tenant}:{generation}:{route}:{digest}`,
one round trip) and otherwise computed in a worker thread on the warehouse connection, then
cached with the route's TTL; the `X-Cache` header says HIT, MISS or BYPASS (Redis down or not
configured: the answer is computed, not cached). The store scope of the caller filters every
query; naming a store outside it is a 403.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from analytics import service
from analytics.cache import AnalyticsCache, digest
from analytics.queries import COMPARISON_SORTS
from core.errors import ValidationFailed
from core.values import Text
from serving import envelope
from serving.deps import StoreScopeDep, TenantDep, WarehouseDep, allowed_stores
from serving.schemas_analytics import (
    BasketAnalysis,
    BasketRequest,
    BusinessDate,
    ProductPerformance,
    RealtimeSales,
    StoreComparison,
    Trends,
)

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

StartDate = Annotated[
    BusinessDate | None, Query(alias="startDate", description="First business day (YYYY-MM-DD)")
]
EndDate = Annotated[
    BusinessDate | None,
    Query(alias="endDate", description="Last business day (default: the latest with sales)"),
]
StoreIds = Annotated[
    list[Text] | None,
    Query(alias="storeIds", max_length=1000, description="Only these stores (repeat the param)"),
]
SCOPED = "A store outside the caller's stores"


def _cache(request: Request) -> AnalyticsCache | None:
    state = request.app.state
    if not hasattr(state, "analytics_cache"):
        from core.services import get_endpoints

        url = get_endpoints(start=False).redis_url
        state.analytics_cache = AnalyticsCache(url) if url else None
    return state.analytics_cache


def _respond(request: Request, body: bytes, status: str) -> Response:
    meta = json.dumps(envelope.ok(request, None)["metadata"]).encode()
    content = b'{"success":true,"data":' + body + b',"metadata":' + meta + b"}"
    return Response(content, media_type="application/json", headers={"X-Cache": status})


async def _answer(
    request: Request,
    *,
    tenant: str,
    scope: frozenset[str] | None,
    route: str,
    params: dict[str, Any],
    compute: Callable[[], Awaitable[Any]],
) -> Response:
    cache = _cache(request)
    key = digest(params, scope)
    generation = None
    if cache is not None:
        generation, hit = await cache.lookup(tenant, route, key)
        if hit is not None:
            return _respond(request, hit, "HIT")
    body = (await compute()).model_dump_json().encode()
    if cache is None or generation is None:
        return _respond(request, body, "BYPASS")
    await cache.store(tenant, generation, route, key, body)
    return _respond(request, body, "MISS")


def _check_range(start: date | None, end: date | None) -> None:
    if start and end and start > end:
        raise ValidationFailed(
            "invalid request: startDate: must not be after endDate",
            details={"errors": [{"field": "startDate", "reason": "must not be after endDate"}]},
        )


async def _run(warehouse: Any, model: Any, fn: Callable[..., dict], **kwargs: Any) -> Any:
    return model.model_validate(await warehouse.run(fn, **kwargs))


@router.get(
    "/sales/realtime",
    responses=envelope.errors(_403=SCOPED, _503="The warehouse does not answer"),
)
async def sales_realtime(
    request: Request,
    tenant: TenantDep,
    scope: StoreScopeDep,
    warehouse: WarehouseDep,
    as_of: Annotated[
        BusinessDate | None,
        Query(alias="asOf", description="Business day (default: the tenant's latest sale day)"),
    ] = None,
    by: Annotated[Literal["hour", "store"], Query(description="Breakdown")] = "hour",
    until_hour: Annotated[
        int | None, Query(alias="untilHour", ge=0, le=23, description="Running totals to hour")
    ] = None,
    store_ids: StoreIds = None,
) -> envelope.Envelope[RealtimeSales]:
    """The day's running totals against the same weekday last week, by hour or by store."""
    stores = allowed_stores(scope, store_ids)
    params = {"asOf": as_of, "by": by, "untilHour": until_hour, "stores": stores}
    compute = partial(_run, warehouse, RealtimeSales, service.realtime, tenant=tenant,
                      as_of=as_of, by=by, stores=stores, until_hour=until_hour)  # fmt: skip
    return await _answer(request, tenant=tenant, scope=scope, route="realtime",
                         params=params, compute=compute)  # fmt: skip


@router.get(
    "/products/{productId}/performance",
    responses=envelope.errors(
        _403=SCOPED, _404="Unknown product", _503="The warehouse does not answer"
    ),
)
async def product_performance(
    request: Request,
    tenant: TenantDep,
    scope: StoreScopeDep,
    warehouse: WarehouseDep,
    product_id: Annotated[int, Path(alias="productId", ge=1, description="Product id")],
    start_date: StartDate = None,
    end_date: EndDate = None,
    store_ids: StoreIds = None,
) -> envelope.Envelope[ProductPerformance]:
    """Volume, revenue, discounts, turnover and weekly trend of one product (13 weeks default)."""
    _check_range(start_date, end_date)
    stores = allowed_stores(scope, store_ids)
    params = {"product": product_id, "start": start_date, "end": end_date, "stores": stores}
    compute = partial(_run, warehouse, ProductPerformance, service.product_performance,
                      tenant=tenant, product_id=product_id, start=start_date, end=end_date,
                      stores=stores)  # fmt: skip
    return await _answer(request, tenant=tenant, scope=scope, route="product",
                         params=params, compute=compute)  # fmt: skip


@router.get(
    "/stores/comparison",
    responses=envelope.errors(_403=SCOPED, _503="The warehouse does not answer"),
)
async def stores_comparison(
    request: Request,
    tenant: TenantDep,
    scope: StoreScopeDep,
    warehouse: WarehouseDep,
    start_date: StartDate = None,
    end_date: EndDate = None,
    store_ids: StoreIds = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    sort: Annotated[
        Literal["revenue", "baskets", "units", "basketSize", "growth", "storeId"], Query()
    ] = "revenue",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> envelope.Envelope[StoreComparison]:
    """Stores' revenue, baskets, basket size and growth vs the previous period (28 days default)."""
    _check_range(start_date, end_date)
    assert sort in COMPARISON_SORTS
    stores = allowed_stores(scope, store_ids)
    params = {"start": start_date, "end": end_date, "stores": stores, "page": page,
              "limit": limit, "sort": sort, "order": order}  # fmt: skip
    compute = partial(_run, warehouse, StoreComparison, service.store_comparison, tenant=tenant,
                      start=start_date, end=end_date, stores=stores, sort=sort, order=order,
                      page=page, limit=limit)  # fmt: skip
    return await _answer(request, tenant=tenant, scope=scope, route="comparison",
                         params=params, compute=compute)  # fmt: skip


@router.post(
    "/basket/analysis",
    responses=envelope.errors(_403=SCOPED, _503="The warehouse does not answer"),
)
async def basket_analysis(
    request: Request,
    body: BasketRequest,
    tenant: TenantDep,
    scope: StoreScopeDep,
    warehouse: WarehouseDep,
) -> envelope.Envelope[BasketAnalysis]:
    """Association rules (support, confidence, lift) between categories or departments bought
    in the same basket (28 days default)."""
    stores = allowed_stores(scope, body.storeIds)
    params = {**body.model_dump(mode="json"), "storeIds": stores}
    compute = partial(_run, warehouse, BasketAnalysis, service.basket_analysis, tenant=tenant,
                      start=body.startDate, end=body.endDate, stores=stores, level=body.level,
                      min_support=body.minSupport, min_confidence=body.minConfidence,
                      max_rules=body.maxRules)  # fmt: skip
    return await _answer(request, tenant=tenant, scope=scope, route="basket",
                         params=params, compute=compute)  # fmt: skip


@router.get(
    "/trends",
    responses=envelope.errors(
        _403=SCOPED, _404="Unknown department or category", _503="The warehouse does not answer"
    ),
)
async def sales_trends(
    request: Request,
    tenant: TenantDep,
    scope: StoreScopeDep,
    warehouse: WarehouseDep,
    start_date: StartDate = None,
    end_date: EndDate = None,
    interval: Annotated[Literal["day", "week"], Query()] = "day",
    window: Annotated[
        int | None, Query(ge=2, le=52, description="Moving-average periods (7 days / 4 weeks)")
    ] = None,
    department: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    store_ids: StoreIds = None,
) -> envelope.Envelope[Trends]:
    """Daily or weekly revenue, units and baskets with a moving average and week-over-week
    change, optionally for one department or category (91 days default)."""
    _check_range(start_date, end_date)
    stores = allowed_stores(scope, store_ids)
    params = {"start": start_date, "end": end_date, "interval": interval, "window": window,
              "department": department, "category": category, "stores": stores}  # fmt: skip
    compute = partial(_run, warehouse, Trends, service.trends, tenant=tenant, start=start_date,
                      end=end_date, interval=interval, window=window, stores=stores,
                      department=department, category=category)  # fmt: skip
    return await _answer(request, tenant=tenant, scope=scope, route="trends",
                         params=params, compute=compute)  # fmt: skip
