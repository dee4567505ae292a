"""Request and response bodies of the integration API (serving/routers/integrations.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SkipValidation, field_validator

from core.values import Text
from integrations import webhooks
from integrations.messages import BasketMessage, InventoryMessage
from integrations.records import CustomerRecord

BatchId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Your id for this batch (default: generated); shown in the status",
    ),
]
ATOMIC = "true: one rejected record rejects the whole batch (422) and nothing is written"


class _SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batchId: BatchId | None = None
    atomic: bool = Field(default=False, description=ATOMIC)


class PosSyncRequest(_SyncRequest):
    records: list[SkipValidation[BasketMessage]] = Field(
        min_length=1,
        description="Baskets in the `transactions.new` message schema; each one is validated "
        "on its own (an invalid one is reported, the others still written)",
    )


class InventorySyncRequest(_SyncRequest):
    records: list[SkipValidation[InventoryMessage]] = Field(
        min_length=1, description="Stock levels in the `inventory.updates` message schema"
    )


class CrmSyncRequest(_SyncRequest):
    records: list[SkipValidation[CustomerRecord]] = Field(
        min_length=1, description="Customers; a field left out or null keeps its stored value"
    )


class RecordProblem(BaseModel):
    index: int = Field(description="Position of the record in `records`, from 0")
    field: str = Field(description="Where in the record, e.g. `lines.0.quantity`")
    value: Any = Field(description="The value found (null when missing; long ones cut)")
    rule: str = Field(description="The rule it broke (pydantic error type), e.g. `missing`")
    message: str


class SyncReport(BaseModel):
    syncId: int | None
    batchId: str
    source: Literal["pos", "inventory", "crm"]
    status: Literal["complete", "partial", "rejected"]
    atomic: bool
    committed: bool = Field(description="false: nothing was written")
    receivedAt: datetime
    received: int
    valid: int
    accepted: int = Field(description="Records written (new, or moving the stored value)")
    rejected: int
    duplicates: int = Field(description="Valid, but already stored unchanged or repeated")
    stale: int = Field(description="Valid, but older than what is stored (or later in batch)")
    rules: dict[str, int] = Field(description="Records per rule, rejected and skipped")
    errors: list[RecordProblem]
    details: dict[str, Any] = Field(description="pos: days, stores, revenue; crm: created…")
    webhooksQueued: int = Field(description="Webhook deliveries started for this sync")


class Counts(BaseModel):
    received: int
    accepted: int
    rejected: int
    duplicates: int
    stale: int


class LastSync(Counts):
    batchId: str
    status: str
    at: datetime


class LastErrors(BaseModel):
    batchId: str
    at: datetime
    rejected: int
    errors: list[RecordProblem] = Field(description="The first ones of that batch")


class SourceStatus(BaseModel):
    source: Literal["pos", "inventory", "crm"]
    batches: int
    totals: Counts
    lastSync: LastSync | None
    lastErrors: LastErrors | None = Field(description="The latest batch that had rejects")


class IntegrationStatus(BaseModel):
    sources: list[SourceStatus]


Event = Literal["sales.synced", "inventory.synced", "crm.synced", "alert.triggered"]
WebhookId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="http(s) URL that receives the POSTs")
    events: list[Event] = Field(
        min_length=1,
        max_length=len(webhooks.EVENTS),
        description="; ".join(f"`{k}`: {v}" for k, v in webhooks.EVENTS.items()),
    )
    secret: Text | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="HMAC-SHA256 key of the signatures (default: generated)",
    )
    description: Text | None = Field(default=None, max_length=500)

    @field_validator("url")
    @classmethod
    def _sized(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2000:
            raise ValueError("URL longer than 2000 characters")
        return url


class LastDelivery(BaseModel):
    event: str
    status: Literal["sent", "failed"]
    at: datetime
    responseCode: int | None
    attempt: int
    error: str | None


class WebhookOut(BaseModel):
    webhookId: int
    url: str
    events: list[str]
    description: str | None
    createdBy: str | None
    createdAt: datetime
    lastDelivery: LastDelivery | None = Field(description="The latest attempt, if any")


class CreatedWebhook(WebhookOut):
    secret: str = Field(description="The signing secret: shown only in this answer")


class WebhookList(BaseModel):
    items: list[WebhookOut]
    events: dict[str, str] = Field(description="Every event a webhook may subscribe to")


class DeletedWebhook(BaseModel):
    webhookId: int
    deleted: bool = True


class DeliveryAttempt(BaseModel):
    deliveryId: str = Field(description="Sent as X-RetailPulse-Delivery; same on each retry")
    event: str
    attempt: int
    status: Literal["sent", "failed"]
    responseCode: int | None
    error: str | None
    durationMs: float | None
    at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryAttempt]
