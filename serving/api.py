"""The FastAPI application behind the Serve ingress: routes, validation, envelope."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, Path, Request

from core.errors import ModelNotReady, NotFoundError
from serving import envelope
from serving.schemas import CustomerSegment, Health, SegmentsOverview

MODEL_NAME = "retailpulse-segmenter"
TRAIN_HINT = "no champion segmenter yet: train one with `retailpulse train segmenter`"


class SegmentBackend(Protocol):
    """What the routes need; the Serve ingress implements it with a DeploymentHandle."""

    def online_features(self, customer_id: int) -> dict[str, float] | None: ...

    async def assign(self, features: dict[str, float]) -> dict[str, Any] | None: ...

    async def overview(self) -> dict[str, Any] | None: ...


CustomerId = Annotated[int, Path(alias="customerId", ge=1, description="Household / customer id")]


def create_api(backend: SegmentBackend) -> FastAPI:
    """Build the HTTP app around `backend` (the same function serves tests and Ray Serve)."""
    app = FastAPI(
        title="RetailPulse API",
        version="0.1.0",
        description="Customer segments, analytics and model serving for retail data.",
    )
    envelope.install(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> envelope.Envelope[Health]:
        info = await backend.overview()
        version = info["modelVersion"] if info else None
        status = "ok" if info else "degraded: " + TRAIN_HINT
        return envelope.ok(request, Health(status=status, model=MODEL_NAME, modelVersion=version))

    analytics = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

    @analytics.get("/customers/segments")
    async def customer_segments(request: Request) -> envelope.Envelope[SegmentsOverview]:
        """Segment sizes and profiles of the champion segmenter."""
        info = await backend.overview()
        if info is None:
            raise ModelNotReady(TRAIN_HINT)
        return envelope.ok(request, SegmentsOverview.model_validate(info))

    customers = APIRouter(prefix="/api/v1/customers", tags=["customers"])

    @customers.get("/{customerId}/segment")
    async def customer_segment(
        request: Request, customer_id: CustomerId
    ) -> envelope.Envelope[CustomerSegment]:
        """The segment of one customer, from its online features (Redis, Feast layout)."""
        features = backend.online_features(customer_id)
        if features is None:
            raise NotFoundError(
                f"customer {customer_id} not found: no features in the online store "
                "(unknown customer, or features not materialized yet: "
                "`retailpulse features materialize`)",
                details={"customerId": customer_id},
            )
        result = await backend.assign(features)
        if result is None:
            raise ModelNotReady(TRAIN_HINT)
        return envelope.ok(
            request,
            CustomerSegment(
                customerId=customer_id,
                segmentId=result["segmentId"],
                label=result["label"],
                modelVersion=result["modelVersion"],
                features=features,
            ),
        )

    app.include_router(analytics)
    app.include_router(customers)
    return app
