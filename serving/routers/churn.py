"""Churn risk: `POST /api/v1/predictions/churn/analyze`.

The ingress reads the customers' churn features from the online store in one round trip (for a
segment, the segmenter names its members first) and the churn deployment returns calibrated
probabilities, risk bands and each customer's top three drivers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.errors import ModelNotReady, NotFoundError
from features.catalog import CUSTOMER_CHURN
from serving import envelope
from serving.deps import BackendsDep, ChurnDep, OnlineDep, TenantDep
from serving.schemas_predictions import ChurnAnalysis, ChurnRequest
from training.specs import CHURN, SEGMENTER

router = APIRouter(tags=["predictions"])
TRAIN_HINT = f"no champion churn model yet: train one with `{CHURN.train_command}`"


@router.post(
    "/api/v1/predictions/churn/analyze",
    responses=envelope.errors(_404="Unknown customer or segment", _503=envelope.UNAVAILABLE),
)
async def analyze_churn(
    request: Request,
    body: ChurnRequest,
    churn: ChurnDep,
    online: OnlineDep,
    tenant: TenantDep,
    backends: BackendsDep,
) -> envelope.Envelope[ChurnAnalysis]:
    """Per customer: churn probability, risk band, top 3 drivers, and the model version.

    `customerIds` (1..1000) or `segmentId` (every member of that segment of the champion
    segmenter), not both → 422; unknown customers or segment → 404 naming them.
    """
    ids = body.customerIds
    if body.segmentId is not None:
        segmenter = backends.models.get(SEGMENTER.key)
        ids = None if segmenter is None else await segmenter.call("members", tenant, body.segmentId)
        if ids is None:
            raise ModelNotReady(
                f"no champion segmenter to resolve segments: `{SEGMENTER.train_command}`",
                details={"model": SEGMENTER.key},
            )
        if not ids:
            raise NotFoundError(
                f"segment {body.segmentId} has no members in the served segmenter",
                details={"segmentId": body.segmentId},
            )
    rows = await online.reader(tenant, CUSTOMER_CHURN).get_many(ids, with_ts=True)
    unknown = [cid for cid, row in zip(ids, rows, strict=True) if row is None]
    if unknown and body.segmentId is None:
        raise NotFoundError(
            f"customer(s) {unknown[:20]} not found: no churn features in the online store "
            "(unknown customer, or features not materialized: `retailpulse features materialize`)",
            details={"customerIds": unknown},
        )
    known = [(cid, row) for cid, row in zip(ids, rows, strict=True) if row is not None]
    result = await churn.call(
        "analyze", tenant, [cid for cid, _ in known], [row for _, row in known]
    )
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": CHURN.key})
    if body.segmentId is not None:  # a segment's members, riskiest first
        result["customers"].sort(key=lambda c: -c["probability"])
    return envelope.ok(request, ChurnAnalysis(segmentId=body.segmentId, **result))
