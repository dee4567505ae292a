"""Store recommendations: `POST /api/v1/recommendations/reorder` and
`GET /api/v1/recommendations/actions/{associateId}` (next best actions for a store associate).

Reorder plans the store's best sellers of the last 16 weeks (at most REORDER_CANDIDATES, by
units, from the warehouse) with the inventory route's policy and on-hand rule
(`serving/routers/inventory.py`) and returns those at or below their reorder point, most
urgent first (fewest weeks of cover, then the largest shortfall).

Next best actions has three parts, each answered by its own model and reported on its own:
customers at churn risk (medium or high band, riskiest first) among those whose usual store is
this store — the store of most of their transactions, computed in SQL (at most 1,000 of them,
by customer id, are scored per request); products to reorder
(as above); promotions to push (the `promotions` model's `top_promotions`). A part whose model
is not deployed or not trained says `available: false` with the reason and the command to
run; the other parts still answer. There are no users yet, so `associateId` is any id of 1..64
characters (letters, digits, `_ . @ -`) and `storeId` is required; a later issue ties
associates to their stores.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from core.errors import ModelNotReady, RetailPulseError
from features.catalog import CUSTOMER_CHURN, HISTORY_WEEKS
from serving import envelope
from serving.deps import (
    BackendsDep,
    ForecasterDep,
    ModelClient,
    OnlineDep,
    StoreScopeDep,
    TenantDep,
    WarehouseDep,
    ensure_store_allowed,
)
from serving.routers.inventory import awaited, plan_store, public, store_row
from serving.schemas_inventory import (
    ASSOCIATE_PATTERN,
    MAX_ACTIONS,
    REORDER_CANDIDATES,
    Action,
    ActionGroup,
    NextBestActions,
    ReorderList,
    ReorderRequest,
)
from serving.schemas_predictions import MAX_CHURN_CUSTOMERS
from training.specs import CHURN, FORECASTER

log = logging.getLogger(__name__)
router = APIRouter(tags=["recommendations"])
PROMOTIONS_KEY = "promotions"
PROMOTIONS_HINT = "no promotions model: train one with `retailpulse train promotions`"
CHURN_BANDS = ("medium", "high")


async def _reorder_plan(
    *,
    tenant: str,
    store_id: str,
    store: dict[str, Any],
    params: Any,
    forecaster: ModelClient,
    online: Any,
    warehouse: Any,
) -> dict[str, Any]:
    """The plan of the store's best sellers, reorderNow products only, most urgent first."""
    candidates = await warehouse.top_selling_products(
        tenant=tenant,
        store_id=store_id,
        last_week=int(store["last_week"]),
        weeks=HISTORY_WEEKS,
        limit=REORDER_CANDIDATES,
    )
    if not candidates:
        raise ModelNotReady(  # pragma: no cover - a store in the online store has sales
            f"store {store_id!r} has no sales in its last {HISTORY_WEEKS} weeks to plan from"
        )
    plan = await plan_store(
        tenant=tenant,
        store_id=store_id,
        store=store,
        product_ids=candidates,
        params=params,
        forecaster=forecaster,
        online=online,
        warehouse=warehouse,
        require_known=False,
    )
    due = [p for p in plan["products"] if p["reorderNow"]]
    due.sort(key=lambda p: p["_urgency"])
    plan["products"] = due[: params.limit]
    plan["candidates"] = len(candidates)
    return public(plan)


@router.post(
    "/api/v1/recommendations/reorder",
    responses=envelope.errors(
        _404="Unknown store",
        _422="limit, serviceLevel or weeks outside their range (the message names the limit)",
        _503="No trained forecaster (`retailpulse train forecaster`), or a backing service down",
    ),
)
async def reorder(
    request: Request,
    body: ReorderRequest,
    forecaster: ForecasterDep,
    online: OnlineDep,
    warehouse: WarehouseDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
) -> envelope.Envelope[ReorderList]:
    """Products of one store to reorder now, most urgent first, with the numbers.

    Unknown store → 404; limit outside 1..100 or serviceLevel outside 0.5..0.999 → 422; no
    trained forecaster → 503. On hand: the inventory table, else the flagged assumption.
    """
    ensure_store_allowed(stores, body.storeId)
    store = await store_row(online, tenant, body.storeId)
    plan = await _reorder_plan(
        tenant=tenant,
        store_id=body.storeId,
        store=store,
        params=body,
        forecaster=forecaster,
        online=online,
        warehouse=warehouse,
    )
    return envelope.ok(request, ReorderList.model_validate(plan))


# -- next best actions -----------------------------------------------------------------------


def _unavailable(reason: str) -> ActionGroup:
    return ActionGroup(available=False, reason=reason)


async def _customers(
    tenant: str, store_id: str, limit: int, churn: ModelClient | None, online: Any, warehouse: Any
) -> ActionGroup:
    if churn is None:
        return _unavailable("the churn model is not deployed (configs/serve.yaml `models:`)")
    ids = await warehouse.usual_store_customers(
        tenant=tenant, store_id=store_id, limit=MAX_CHURN_CUSTOMERS
    )
    rows = await awaited(online.reader(tenant, CUSTOMER_CHURN).get_many(ids, with_ts=True))
    known = [(cid, row) for cid, row in zip(ids, rows, strict=True) if row is not None]
    result = await churn.call("analyze", tenant, [c for c, _ in known], [r for _, r in known])
    if result is None:
        return _unavailable(f"no champion churn model yet: train one with `{CHURN.train_command}`")
    at_risk = [c for c in result["customers"] if c["riskBand"] in CHURN_BANDS]
    at_risk.sort(key=lambda c: (-c["probability"], c["customerId"]))
    actions = []
    for c in at_risk[:limit]:
        top = c["drivers"][0] if c["drivers"] else None
        why = f"; top driver {top['feature']} = {top['value']:g}" if top else ""
        actions.append(
            Action(
                kind="contact_customer",
                subject=str(c["customerId"]),
                reason=f"churn risk {c['probability']:.0%} ({c['riskBand']}){why}",
                model=result["model"],
                modelVersion=str(result["modelVersion"]),
                details={"probability": c["probability"], "riskBand": c["riskBand"]},
            )
        )
    return ActionGroup(
        available=True,
        reason=None if actions else f"none of the {len(known)} customers is at medium/high risk",
        model=result["model"],
        modelVersion=str(result["modelVersion"]),
        actions=actions,
    )


async def _reorders(
    tenant: str, store_id: str, store: dict, limit: int, **deps: Any
) -> ActionGroup:
    if deps["forecaster"] is None:
        return _unavailable("the forecaster is not deployed (configs/serve.yaml `models:`)")
    params = ReorderRequest(storeId=store_id, limit=limit)
    try:
        plan = await _reorder_plan(
            tenant=tenant, store_id=store_id, store=store, params=params, **deps
        )
    except ModelNotReady as exc:
        return _unavailable(exc.message)
    actions = [
        Action(
            kind="reorder",
            subject=str(p["productId"]),
            reason=p["reason"],
            model=plan["model"],
            modelVersion=str(plan["modelVersion"]),
            details={k: p[k] for k in ("orderQuantity", "onHand", "onHandSource", "reorderPoint")},
        )
        for p in plan["products"]
    ]
    return ActionGroup(
        available=True,
        reason=None if actions else "every planned product is above its reorder point",
        model=plan["model"],
        modelVersion=str(plan["modelVersion"]),
        actions=actions,
    )


async def _promotions(
    tenant: str, store_id: str, limit: int, client: ModelClient | None
) -> ActionGroup:
    if client is None:
        return _unavailable(f"{PROMOTIONS_HINT} and enable it in configs/serve.yaml `models:`")
    try:
        result = await client.call("top_promotions", tenant, limit, store_id)
    except RetailPulseError:
        raise
    except Exception as exc:  # a part of the answer: never fail the other parts for it
        log.exception("promotions model failed")
        return _unavailable(f"the promotions model did not answer ({type(exc).__name__})")
    if result is None:
        return _unavailable(PROMOTIONS_HINT)
    model, version = result.get("model"), result.get("modelVersion")
    actions = []
    for p in result.get("promotions", [])[:limit]:
        subject = p.get("promotionId") or p.get("campaignId") or p.get("id")
        actions.append(
            Action(
                kind="push_promotion",
                subject=str(subject),
                reason=_promotion_reason(p),
                model=model,
                modelVersion=None if version is None else str(version),
                details=p,
            )
        )
    return ActionGroup(
        available=True,
        reason=None if actions else "no promotion to push for this store",
        model=model,
        modelVersion=None if version is None else str(version),
        actions=actions,
    )


def _promotion_reason(p: dict[str, Any]) -> str:
    """One line from a `top_promotions` record (training/promotions.py's route shape)."""
    spend = p.get("spend") or {}
    if "perHouseholdWeek" in spend:
        kind = f" ({p['campaignType']})" if p.get("campaignType") else ""
        ci = ""
        if spend.get("ciLow") is not None and spend.get("ciHigh") is not None:
            ci = f" (95% CI {spend['ciLow']:+.2f}..{spend['ciHigh']:+.2f})"
        return (
            f"campaign{kind} lifted spend {spend['perHouseholdWeek']:+.2f} per household-week{ci}"
        )
    if p.get("reason"):
        return str(p["reason"])
    if "uplift" in p:
        return f"estimated uplift {p['uplift']:.1%}"
    return "a top promotion of the promotions model"


@router.get(
    "/api/v1/recommendations/actions/{associateId}",
    responses=envelope.errors(
        _404="Unknown store",
        _422="Bad associate id, missing storeId, or limit outside 1..50",
        _503="The warehouse or the online feature store does not answer",
    ),
)
async def next_best_actions(
    request: Request,
    associate_id: Annotated[
        str,
        Path(
            alias="associateId",
            pattern=ASSOCIATE_PATTERN,
            description="Store associate id (1..64 of letters, digits, _ . @ -)",
        ),
    ],
    store_id: Annotated[
        str, Query(alias="storeId", min_length=1, max_length=64, description="The store")
    ],
    online: OnlineDep,
    warehouse: WarehouseDep,
    backends: BackendsDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_ACTIONS, description=f"Actions per part, 1..{MAX_ACTIONS}")
    ] = 5,
) -> envelope.Envelope[NextBestActions]:
    """Customers at churn risk to contact, products to reorder and promotions to push.

    Unknown store → 404; bad associate id, missing storeId or limit outside 1..50 → 422. A
    part whose model is missing answers `available: false` with the reason.
    """
    ensure_store_allowed(stores, store_id)
    store = await store_row(online, tenant, store_id)
    models = backends.models
    customers, reorders, promotions = await asyncio.gather(
        _customers(tenant, store_id, limit, models.get(CHURN.key), online, warehouse),
        _reorders(
            tenant,
            store_id,
            store,
            limit,
            forecaster=models.get(FORECASTER.key),
            online=online,
            warehouse=warehouse,
        ),
        _promotions(tenant, store_id, limit, models.get(PROMOTIONS_KEY)),
    )
    answered = {
        key: f"{group.model} v{group.modelVersion}"
        for key, group in (
            (CHURN.key, customers),
            (FORECASTER.key, reorders),
            (PROMOTIONS_KEY, promotions),
        )
        if group.available and group.model
    }
    return envelope.ok(
        request,
        NextBestActions(
            associateId=associate_id,
            storeId=store_id,
            models=answered,
            customers=customers,
            reorder=reorders,
            promotions=promotions,
        ),
    )
