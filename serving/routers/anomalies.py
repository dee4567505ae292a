"""Sales anomalies: `POST /api/v1/predictions/anomalies/detect`.

The anomaly deployment reads the store x day series it needs from the warehouse (the days of
the request plus the history its detectors look back on) and scores them with the champion
ensemble; the route validates the request (range at most `MAX_ANOMALY_DAYS`) and envelopes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core.errors import ModelNotReady, NotFoundError
from serving import envelope
from serving.deps import AnomalyDep, StoreScopeDep, TenantDep, allowed_stores
from serving.schemas_predictions import AnomalyReport, AnomalyRequest
from training.specs import ANOMALY

router = APIRouter(tags=["predictions"])
TRAIN_HINT = f"no champion anomaly detector yet: train one with `{ANOMALY.train_command}`"


@router.post(
    "/api/v1/predictions/anomalies/detect",
    responses=envelope.errors(_404="Unknown store", _503=envelope.UNAVAILABLE),
)
async def detect_anomalies(
    request: Request,
    body: AnomalyRequest,
    detector: AnomalyDep,
    tenant: TenantDep,
    stores: StoreScopeDep,
) -> envelope.Envelope[AnomalyReport]:
    """Flagged store-days between `from` and `to` with score, expected value, the detectors
    that voted, and the model version. A range over 92 days → 422 naming the limit; unknown
    store ids → 404 naming them; no trained detector → 503. A store-scoped caller (store
    manager, sales associate) naming another store → 403; naming none scans their stores."""
    store_ids = allowed_stores(stores, body.storeIds)
    result = await detector.call(
        "detect", tenant, store_ids, body.from_.isoformat(), body.to.isoformat()
    )
    if result is None:
        raise ModelNotReady(TRAIN_HINT, details={"model": ANOMALY.key})
    if result.get("unknownStores"):
        unknown = result["unknownStores"]
        raise NotFoundError(
            f"store(s) {unknown[:20]} not found in the warehouse of tenant {tenant!r}",
            details={"storeIds": unknown},
        )
    return envelope.ok(request, AnomalyReport.model_validate(result))
