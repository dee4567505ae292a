"""The FastAPI application behind the Serve ingress (the same function serves tests)."""

from __future__ import annotations

from fastapi import FastAPI

from serving import envelope
from serving.deps import Backends
from serving.routers import (
    actions,
    alerts,
    analytics,
    anomalies,
    churn,
    forecast,
    health,
    inventory,
    live,
    pricing,
    promotions,
    recommendations,
    reports,
    segments,
    users,
)

ROUTERS = (
    health.router,
    segments.router,
    forecast.router,
    recommendations.router,
    anomalies.router,
    churn.router,
    inventory.router,
    actions.router,
    pricing.router,
    promotions.router,
    users.router,
    analytics.router,
    alerts.router,
    reports.router,
    live.router,
)


def create_api(backends: Backends) -> FastAPI:
    """The HTTP app: every domain router, the envelope, and `backends` on `app.state`."""
    app = FastAPI(
        title="RetailPulse API",
        version="0.2.0",
        description=(
            "Demand forecasts, product recommendations, customer segments, churn risk and "
            "sales-anomaly alerts for retail data."
        ),
    )
    envelope.install(app)
    app.state.backends = backends
    for router in ROUTERS:
        app.include_router(router)
    return app
