"""Customer segments: the overview of the served segmenter and one customer's segment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from core.errors import ModelNotReady, NotFoundError
from features.catalog import CUSTOMER_RFM
from serving import envelope
from serving.deps import OnlineDep, SegmenterDep, TenantDep
from serving.schemas import CustomerSegment, SegmentsOverview
from training.specs import SEGMENTER

router = APIRouter(tags=["customers"])
TRAIN_HINT = f"no champion segmenter yet: train one with `{SEGMENTER.train_command}`"
CustomerId = Annotated[int, Path(alias="customerId", ge=1, description="Household / customer id")]


@router.get(
    "/api/v1/analytics/customers/segments",
    tags=["analytics"],
    responses=envelope.errors(_503=envelope.UNAVAILABLE),
)
async def customer_segments(
    request: Request, segmenter: SegmenterDep, tenant: TenantDep
) -> envelope.Envelope[SegmentsOverview]:
    """Segment sizes and profiles of the champion segmenter."""
    info = await segmenter.call("overview", tenant)
    if info is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": SEGMENTER.key})
    return envelope.ok(request, SegmentsOverview.model_validate(info))


@router.get(
    "/api/v1/customers/{customerId}/segment",
    responses=envelope.errors(
        _404="Unknown customer (no online features)", _503=envelope.UNAVAILABLE
    ),
)
async def customer_segment(
    request: Request,
    customer_id: CustomerId,
    segmenter: SegmenterDep,
    online: OnlineDep,
    tenant: TenantDep,
) -> envelope.Envelope[CustomerSegment]:
    """The segment of one customer, from its online features (Redis, Feast layout)."""
    features = await online.reader(tenant, CUSTOMER_RFM).get(customer_id)
    if features is None:
        raise NotFoundError(
            f"customer {customer_id} not found: no features in the online store "
            "(unknown customer, or features not materialized yet: "
            "`retailpulse features materialize`)",
            details={"customerId": customer_id},
        )
    result = await segmenter.call("assign", tenant, features)
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": SEGMENTER.key})
    return envelope.ok(
        request,
        CustomerSegment(customerId=customer_id, features=features, **result),
    )
