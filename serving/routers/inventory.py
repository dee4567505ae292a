"""Inventory optimisation: `POST /api/v1/predictions/inventory/optimize`.

The graph is forecast → safety stock → reorder point and order quantity. The ingress reads
the store's, products' and pairs' online features, makes one call to the forecaster for weekly
p10/p50/p90 over lead time + review period (the same `forecast` method the demand forecast
route calls; the forecaster is hosted in the ingress replica unless `configs/serve.yaml` gives
it a deployment of its own), and does the policy arithmetic (`training/inventory.py`) right
there. There is no inventory deployment and no extra hop on purpose: the arithmetic costs
microseconds per product, while each `DeploymentHandle` hop costs 5–9 CPU-ms here (DESIGN §6),
and it has no model of its own that would want separate scaling, batching or isolation.

On hand: Complete Journey has no inventory levels (the `inventory` table stays empty, see
pipelines/ingest.py), so per product the route takes, in order, the request's `onHand`, the
`inventory` table's row, or the documented assumption ASSUMED_ON_HAND — one week of cover
at the last observed week's rate (the units the store sold in the forecast origin week) —
and says which in `onHandSource`.

A product the forecaster has no usable series for (fewer than 4 weeks with sales in the last
16 at this store, or never sold there) gets the forecaster's flagged fallback (mean of its
last 4 weeks) as weekly demand and the standard deviation of its last 16 weeks as weekly
sigma, flagged `fallback: true`; a product absent from the catalog is a 404.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from fastapi import APIRouter, Request

from core.errors import ModelNotReady, NotFoundError
from features.catalog import PRODUCT_ATTRIBUTES, STORE_ATTRIBUTES, STORE_PRODUCT_WEEKLY
from serving import envelope
from serving.deployments.forecaster import history_of
from serving.deps import (
    ForecasterDep,
    ModelClient,
    OnlineDep,
    StoreScopeDep,
    TenantDep,
    WarehouseDep,
    ensure_store_allowed,
)
from serving.schemas_inventory import InventoryPlan, InventoryRequest
from training import inventory as inv
from training.specs import FORECASTER

router = APIRouter(tags=["predictions"])


TRAIN_HINT = f"no champion forecaster yet: train one with `{FORECASTER.train_command}`"
ASSUMED_ON_HAND = "assumed: units sold in the origin week (one week of cover; no inventory data)"
POLICY = (
    "periodic review (R, s, S): weekly demand ~ normal(p50, (p90 - p10) / 2.563), weeks "
    "independent; safety stock = z * sigma(lead time); reorder point = mean(lead time) + safety "
    "stock; order-up-to = mean(L + R) + z * sigma(L + R); reorder when on hand <= reorder point, "
    "order max(order-up-to - on hand, EOQ)"
)


async def awaited(value: Any) -> Any:
    """Online readers may be sync or async (redis.asyncio): accept both."""
    return await value if inspect.isawaitable(value) else value


async def store_row(online: Any, tenant: str, store_id: str) -> dict[str, Any]:
    """The store's online attributes, or 404 naming it."""
    store = await awaited(online.reader(tenant, STORE_ATTRIBUTES).get(store_id))
    if store is None:
        raise NotFoundError(
            f"store {store_id!r} not found: no store features in the online store "
            "(unknown store, or features not materialized: `retailpulse features materialize`)",
            details={"storeId": store_id},
        )
    return store


async def plan_store(
    *,
    tenant: str,
    store_id: str,
    store: dict[str, Any],
    product_ids: list[int],
    params: Any,
    forecaster: ModelClient,
    online: Any,
    warehouse: Any | None,
    on_hand: dict[int, float] | None = None,
    costs: tuple[float, float] | None = None,
    require_known: bool = True,
) -> dict[str, Any]:
    """An InventoryPlan payload for `product_ids` at one store (404 / 503 raised here)."""
    attrs = await awaited(online.reader(tenant, PRODUCT_ATTRIBUTES).get_many(product_ids))
    unknown = [pid for pid, row in zip(product_ids, attrs, strict=True) if row is None]
    if unknown and require_known:
        raise NotFoundError(
            f"product(s) {unknown} not found in the online store", details={"productIds": unknown}
        )
    weekly = await awaited(
        online.reader(tenant, STORE_PRODUCT_WEEKLY).get_many(
            [(store_id, pid) for pid in product_ids], with_ts=True
        )
    )
    lead, review = params.leadTimeWeeks, params.reviewPeriodWeeks
    items = [
        {"productId": pid, "attributes": a or {}, "weekly": w}
        for pid, a, w in zip(product_ids, attrs, weekly, strict=True)
    ]
    result = await forecaster.call(
        "forecast",
        tenant,
        {"storeId": store_id, "store": store, "horizon": lead + review, "items": items},
    )
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": FORECASTER.key})
    origin = int(result["originWeek"])
    sources = await _on_hand_sources(tenant, store_id, product_ids, on_hand, warehouse)
    z = inv.z_value(params.serviceLevel)
    rows = {pid: w for pid, w in zip(product_ids, weekly, strict=True)}
    products = []
    for forecast in result["forecasts"]:
        pid = int(forecast["productId"])
        history = history_of(rows[pid], origin)
        means, sigmas = inv.quantile_weeks(
            [(w["p10"], w["p50"], w["p90"]) for w in forecast["weeks"]]
        )
        if forecast["fallback"]:  # flat quantiles: take the spread of the last 16 weeks
            sigmas = [inv.history_sigma(history.tolist())] * len(means)
        units, source = sources.get(pid) or (float(history[-1]), ASSUMED_ON_HAND)
        unit_value = _positive((rows[pid] or {}).get("shelf_price"))
        eoq = None
        if costs is not None and unit_value is not None:
            eoq = inv.eoq(sum(means[:lead]) / lead, costs[0], costs[1] * unit_value)
        lead_d = inv.period_demand(means, sigmas, lead)
        prot_d = inv.period_demand(means, sigmas, lead + review)
        policy = inv.inventory_policy(
            lead=lead_d, protection=prot_d, lead_weeks=lead, z=z, on_hand=units, eoq_units=eoq
        )
        products.append(
            {
                "productId": pid,
                "demandSource": forecast["method"],
                "fallback": forecast["fallback"],
                "fallbackReason": forecast.get("reason"),
                "leadTimeDemand": _demand(lead, lead_d),
                "protectionDemand": _demand(lead + review, prot_d),
                "safetyStock": round(policy.safety_stock, 2),
                "reorderPoint": round(policy.reorder_point, 2),
                "orderUpToLevel": round(policy.order_up_to, 2),
                "onHand": units,
                "onHandSource": source,
                "reorderNow": policy.reorder_now,
                "orderQuantity": policy.order_quantity,
                "eoq": None if eoq is None else round(eoq, 2),
                "unitValue": unit_value,
                "weeksOfCover": _round(policy.weeks_of_cover),
                "reason": _reason(policy),
                "_urgency": inv.urgency_key(policy),
            }
        )
    return {
        "storeId": store_id,
        "model": result["model"],
        "modelVersion": result["modelVersion"],
        "modelKind": result["modelKind"],
        "originWeek": origin,
        "serviceLevel": params.serviceLevel,
        "z": round(z, 4),
        "leadTimeWeeks": lead,
        "reviewPeriodWeeks": review,
        "policy": POLICY,
        "products": products,
    }


async def _on_hand_sources(
    tenant: str,
    store_id: str,
    product_ids: list[int],
    on_hand: dict[int, float] | None,
    warehouse: Any | None,
) -> dict[int, tuple[float, str]]:
    """(units, source) per product from the request, then the inventory table."""
    given = {pid: (float(u), "request") for pid, u in (on_hand or {}).items()}
    missing = [pid for pid in product_ids if pid not in given]
    if missing and warehouse is not None:
        recorded = await warehouse.on_hand_levels(
            tenant=tenant, store_id=store_id, product_ids=missing
        )
        for pid, (units, rule) in recorded.items():
            given[pid] = (float(units), f"inventory table: {rule}")
    return given


def _demand(weeks: int, d: inv.Demand) -> dict[str, Any]:
    return {"weeks": weeks, "mean": round(d.mean, 2), "sigma": round(d.sigma, 2)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _positive(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or float(value) <= 0:
        return None
    return round(float(value), 2)


def _reason(p: inv.Policy) -> str:
    if p.reorder_point <= 0:
        return "no demand expected over the lead time: nothing to order"
    cover = "" if p.weeks_of_cover is None else f", {p.weeks_of_cover:.1f} weeks of cover"
    if p.reorder_now:
        return (
            f"on hand {p.on_hand:g} at or below the reorder point {p.reorder_point:.1f}{cover}: "
            f"order {p.order_quantity} to reach {p.order_up_to:.1f}"
        )
    return f"on hand {p.on_hand:g} above the reorder point {p.reorder_point:.1f}{cover}: no order"


def public(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan without internal keys (the urgency sort key)."""
    for product in plan["products"]:
        product.pop("_urgency", None)
    return plan


@router.post(
    "/api/v1/predictions/inventory/optimize",
    responses=envelope.errors(
        _404="Unknown store or product",
        _422="A parameter outside its documented range (the message names the limit)",
        _503="No trained forecaster (`retailpulse train forecaster`), or a backing service down",
    ),
)
async def optimize_inventory(
    request: Request,
    body: InventoryRequest,
    forecaster: ForecasterDep,
    online: OnlineDep,
    warehouse: WarehouseDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
) -> envelope.Envelope[InventoryPlan]:
    """Safety stock, reorder point and order quantity per product of one store.

    Demand over lead time (+ review period) comes from the served forecaster's quantiles.
    Unknown store or product → 404; serviceLevel outside 0.5..0.999, leadTimeWeeks +
    reviewPeriodWeeks over 8 or more than 100 products → 422; no trained forecaster → 503.
    On hand comes from the request, the inventory table, or a flagged assumption.
    """
    ensure_store_allowed(stores, body.storeId)
    store = await store_row(online, tenant, body.storeId)
    costs = None
    if body.orderingCost is not None and body.holdingCostRate is not None:
        costs = (body.orderingCost, body.holdingCostRate)
    plan = await plan_store(
        tenant=tenant,
        store_id=body.storeId,
        store=store,
        product_ids=body.productIds,
        params=body,
        forecaster=forecaster,
        online=online,
        warehouse=warehouse,
        on_hand=body.onHand,
        costs=costs,
    )
    return envelope.ok(request, InventoryPlan.model_validate(public(plan)))
