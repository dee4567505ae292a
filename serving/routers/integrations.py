"""The integration API (seed §2.8): `/api/v1/integrations/{pos,inventory,crm}/sync`,
`/status` and `/webhooks` (docs/integrations.md).

A sync takes a batch of records, validates each on its own and writes the valid ones in one
transaction through the stream's idempotent writer; the reply is the batch's report (accepted,
rejected, duplicate and stale counts, and per rejected record its index, field, value, rule
and message). A body past `RETAILPULSE_INTEGRATION_MAX_BYTES` (checked against Content-Length
before reading, and counted while reading) or a batch of more than
`RETAILPULSE_INTEGRATION_MAX_RECORDS` records is refused with 413, the limit in the message.
A store-scoped caller may sync only its stores (403, nothing written) and cannot sync CRM
records or manage webhooks (they concern the whole tenant).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute

from core.db import connect
from core.errors import Forbidden, NotFoundError, PayloadTooLarge, ValidationFailed
from core.settings import get_settings
from integrations import sync, webhooks
from integrations.sync_status import sync_status
from serving import envelope
from serving.deps import ActorDep, StoreScopeDep, TenantDep
from serving.schemas_integrations import (
    CreatedWebhook,
    CrmSyncRequest,
    DeletedWebhook,
    DeliveryAttempt,
    DeliveryList,
    IntegrationStatus,
    InventorySyncRequest,
    PosSyncRequest,
    RecordProblem,
    SourceStatus,
    SyncReport,
    WebhookId,
    WebhookIn,
    WebhookList,
    WebhookOut,
)

WAREHOUSE_DOWN = "The warehouse (PostgreSQL) does not answer"
TOO_LARGE = "The body or the batch is past the documented size (the message names the limit)"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def read_limited(request: Request, limit: int) -> None:
    """Read the body, refusing it (413) past `limit` bytes: first by its Content-Length, then
    by counting what arrives (a missing or understated Content-Length changes nothing)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(f"{int(declared):,} bytes declared", limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(f"more than {limit:,} bytes sent", limit)
    request._body = bytes(body)  # what FastAPI's own `request.body()` returns from now on


def _too_large(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body too large: {what}; the limit is {limit:,} bytes "
        "(RETAILPULSE_INTEGRATION_MAX_BYTES): split the batch",
        details={"limitBytes": limit},
    )


class LimitedBodyRoute(APIRoute):
    """A route whose request body is read under the integration API's byte limit."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method in BODY_METHODS:
                await read_limited(request, get_settings().integration_max_bytes)
            return await handler(request)

        return limited


router = APIRouter(
    prefix="/api/v1/integrations", tags=["integrations"], route_class=LimitedBodyRoute
)


def _report(r: sync.SyncReport) -> SyncReport:
    return SyncReport(
        syncId=r.sync_id, batchId=r.batch_id, source=r.source, status=r.status,
        atomic=r.atomic, committed=r.committed, receivedAt=r.received_at, received=r.received,
        valid=r.valid, accepted=r.accepted, rejected=r.rejected, duplicates=r.duplicates,
        stale=r.stale, rules=r.rules, errors=[RecordProblem(**p) for p in r.errors],
        details=r.details, webhooksQueued=r.webhooks,
    )  # fmt: skip


def _check_count(records: list[Any]) -> None:
    limit = get_settings().integration_max_records
    if len(records) > limit:
        raise PayloadTooLarge(
            f"batch too large: {len(records):,} records; the limit is {limit:,} per request "
            "(RETAILPULSE_INTEGRATION_MAX_RECORDS): split the batch",
            details={"records": len(records), "limitRecords": limit},
        )


def _answer(request: Request, r: sync.SyncReport) -> dict:
    report = _report(r)
    if r.atomic and not r.committed:
        raise ValidationFailed(
            f"atomic batch rejected: {r.rejected} of {r.received} records are invalid "
            f"(first: record {r.errors[0]['index']}, {r.errors[0]['field']}: "
            f"{r.errors[0]['message']}); nothing was written",
            details={"report": report.model_dump(mode="json")},
        )
    return envelope.ok(request, report)


SYNC_ERRORS = envelope.errors(
    _403="A store-scoped caller sent records of other stores (nothing written)",
    _413=TOO_LARGE,
    _503=WAREHOUSE_DOWN,
)


@router.post("/pos/sync", responses=SYNC_ERRORS)
def pos_sync(
    request: Request,
    body: PosSyncRequest,
    tenant: TenantDep,
    stores: StoreScopeDep,
    actor: ActorDep,
) -> envelope.Envelope[SyncReport]:
    """Write a batch of POS baskets (the stream's `BasketMessage`); re-sending a batch or a
    basket changes nothing (counted as duplicates). `atomic` rejected batch: 422 with the
    report in `error.details.report`."""
    _check_count(body.records)
    url, bootstrap = sync.targets()
    r = sync.sync_pos(
        database_url=url, tenant=tenant, records=body.records, atomic=body.atomic,
        batch_id=body.batchId, actor=actor, stores=stores, bootstrap=bootstrap,
    )  # fmt: skip
    return _answer(request, r)


@router.post("/inventory/sync", responses=SYNC_ERRORS)
def inventory_sync(
    request: Request,
    body: InventorySyncRequest,
    tenant: TenantDep,
    stores: StoreScopeDep,
    actor: ActorDep,
) -> envelope.Envelope[SyncReport]:
    """Upsert stock levels (the stream's `InventoryMessage`): the newest timestamp of a
    (store, product) wins; an older level is counted as stale."""
    _check_count(body.records)
    url, bootstrap = sync.targets()
    r = sync.sync_inventory(
        database_url=url, tenant=tenant, records=body.records, atomic=body.atomic,
        batch_id=body.batchId, actor=actor, stores=stores, bootstrap=bootstrap,
    )  # fmt: skip
    return _answer(request, r)


def _tenant_wide(stores: frozenset[str] | None, what: str) -> None:
    if stores is not None:
        raise Forbidden(
            f"{what} concerns the whole tenant: a store-scoped account cannot do it",
            details={"stores": sorted(stores)},
        )


@router.post(
    "/crm/sync",
    responses=envelope.errors(
        _403="Store-scoped callers cannot sync customers", _413=TOO_LARGE, _503=WAREHOUSE_DOWN
    ),
)
def crm_sync(
    request: Request,
    body: CrmSyncRequest,
    tenant: TenantDep,
    stores: StoreScopeDep,
    actor: ActorDep,
) -> envelope.Envelope[SyncReport]:
    """Upsert customers from a CRM (contact, loyalty tier, demographics)."""
    _tenant_wide(stores, "a CRM sync")
    _check_count(body.records)
    r = sync.sync_crm(
        database_url=sync.targets()[0], tenant=tenant, records=body.records,
        atomic=body.atomic, batch_id=body.batchId, actor=actor,
    )  # fmt: skip
    return _answer(request, r)


# ----------------------------------------------------------------------------- status


def _connect() -> AbstractContextManager[psycopg.Connection]:
    return connect(sync.targets()[0])


@router.get("/status", responses=envelope.errors(_503=WAREHOUSE_DOWN))
def integration_status(request: Request, tenant: TenantDep) -> envelope.Envelope[IntegrationStatus]:
    """Per source (pos, inventory, crm): batches and record totals, the last sync, and the
    errors of the latest batch that had any."""
    with _connect() as conn:
        rows = sync_status(conn, tenant=tenant)
    return envelope.ok(request, IntegrationStatus(sources=[SourceStatus(**r) for r in rows]))


# ----------------------------------------------------------------------------- webhooks


def _webhook(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "webhookId": row["webhook_id"], "url": row["url"], "events": row["events"],
        "description": row["description"], "createdBy": row["created_by"],
        "createdAt": row["created_at"], "lastDelivery": row["last_delivery"],
    }  # fmt: skip


@router.post(
    "/webhooks",
    responses=envelope.errors(
        _403="Store-scoped callers cannot register webhooks", _503=WAREHOUSE_DOWN
    ),
)
def create_webhook(
    request: Request, body: WebhookIn, tenant: TenantDep, stores: StoreScopeDep, actor: ActorDep
) -> envelope.Envelope[CreatedWebhook]:
    """Register a webhook for `events`; the answer carries its signing secret, shown only here.

    Each delivery is a signed JSON POST (`X-RetailPulse-Signature: sha256=<hex HMAC-SHA256(
    secret, "<X-RetailPulse-Timestamp>." + body)>`), retried with exponential backoff on a
    timeout, a connection error, 429 or 5xx; every attempt is recorded."""
    _tenant_wide(stores, "a webhook")
    with _connect() as conn:
        row, secret = webhooks.create_webhook(
            conn, tenant=tenant, url=str(body.url), events=list(body.events), secret=body.secret,
            description=body.description, created_by=actor,
        )  # fmt: skip
    return envelope.ok(request, CreatedWebhook(**_webhook(row), secret=secret))


@router.get("/webhooks", responses=envelope.errors(_503=WAREHOUSE_DOWN))
def list_webhooks(
    request: Request, tenant: TenantDep, stores: StoreScopeDep
) -> envelope.Envelope[WebhookList]:
    """The tenant's webhooks with their latest delivery (secrets are never shown again)."""
    _tenant_wide(stores, "a webhook")
    with _connect() as conn:
        rows = webhooks.list_webhooks(conn, tenant=tenant)
    data = WebhookList(items=[WebhookOut(**_webhook(r)) for r in rows], events=webhooks.EVENTS)
    return envelope.ok(request, data)


@router.get(
    "/webhooks/{webhookId}/deliveries",
    responses=envelope.errors(_404="No such webhook for this tenant", _503=WAREHOUSE_DOWN),
)
def webhook_deliveries(
    request: Request,
    webhookId: WebhookId,
    tenant: TenantDep,
    stores: StoreScopeDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Attempts to show")] = 50,
) -> envelope.Envelope[DeliveryList]:
    """A webhook's latest delivery attempts, newest first."""
    _tenant_wide(stores, "a webhook")
    with _connect() as conn:
        rows = webhooks.deliveries(conn, tenant=tenant, webhook_id=webhookId, limit=limit)
    if rows is None:
        raise NotFoundError(f"no webhook {webhookId}", details={"webhookId": webhookId})
    items = [
        DeliveryAttempt(
            deliveryId=r["delivery_id"],
            event=r["event"],
            attempt=r["attempt"],
            status=r["status"],
            responseCode=r["response_code"],
            error=r["error"],
            durationMs=r["duration_ms"],
            at=r["at"],
        )  # fmt: skip
        for r in rows
    ]
    return envelope.ok(request, DeliveryList(items=items))


@router.delete(
    "/webhooks/{webhookId}",
    responses=envelope.errors(_404="No such webhook for this tenant", _503=WAREHOUSE_DOWN),
)
def delete_webhook(
    request: Request, webhookId: WebhookId, tenant: TenantDep, stores: StoreScopeDep
) -> envelope.Envelope[DeletedWebhook]:
    """Stop a webhook: no more deliveries (its delivery history is kept)."""
    _tenant_wide(stores, "a webhook")
    with _connect() as conn:
        deleted = webhooks.delete_webhook(conn, tenant=tenant, webhook_id=webhookId)
    if not deleted:
        raise NotFoundError(f"no webhook {webhookId}", details={"webhookId": webhookId})
    return envelope.ok(request, DeletedWebhook(webhookId=webhookId))
