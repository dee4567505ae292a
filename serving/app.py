"""The FastAPI application behind the Serve ingress (the same function serves tests)."""

from __future__ import annotations

from fastapi import FastAPI

from serving import envelope
from serving.deps import Backends
from serving.routers import forecast, health, segments

ROUTERS = (health.router, segments.router, forecast.router)


def create_api(backends: Backends) -> FastAPI:
    """The HTTP app: every domain router, the envelope, and `backends` on `app.state`."""
    app = FastAPI(
        title="RetailPulse API",
        version="0.2.0",
        description="Demand forecasts, customer segments and analytics for retail data.",
    )
    envelope.install(app)
    app.state.backends = backends
    for router in ROUTERS:
        app.include_router(router)
    return app
