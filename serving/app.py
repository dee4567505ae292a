"""The FastAPI application behind the Serve ingress (the same function serves tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from serving import auth, envelope, limits
from serving.deps import Backends
from serving.routers import (
    actions,
    alerts,
    analytics,
    anomalies,
    churn,
    credentials,
    forecast,
    health,
    integrations,
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
    credentials.router,
    users.router,
    analytics.router,
    alerts.router,
    reports.router,
    live.router,
    integrations.router,
)


# Every route may answer these once authentication is involved (serving/auth.py).
AUTH_RESPONSES = envelope.errors(
    _401="No valid bearer token (missing when required, expired, forged or revoked)",
    _403="The caller's role, tenant or stores do not allow this",
    _429="Rate limit or sign-in throttle: retry after `Retry-After` seconds",
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Work the app owns beside requests (the report scheduler and workers, the live hub),
    stopped on exit."""
    try:
        async with reports.lifespan(app):
            yield
    finally:
        hub = getattr(app.state, "live_hub", None)
        if hub is not None:  # started by the first WebSocket connection
            hub.stop()


def create_api(backends: Backends) -> FastAPI:
    """The HTTP app: every domain router, the envelope, authentication (one app-wide check of
    the route table in accounts/permissions.py), and `backends` on `app.state`."""
    app = FastAPI(
        title="RetailPulse API",
        version="0.2.0",
        description=(
            "Demand forecasts, product recommendations, customer segments, churn risk and "
            "sales-anomaly alerts for retail data.\n\nSign in with **Authorize** (e-mail and "
            "password; `client_id` = tenant, `client_secret` = MFA code) or POST "
            "/api/v1/users/login and send `Authorization: Bearer <accessToken>`."
        ),
        dependencies=[Depends(auth.authorize)],
        swagger_ui_parameters={"persistAuthorization": True},
        lifespan=_lifespan,
    )
    limits.install(app)  # innermost of the three: its 413 is stamped and audited
    envelope.install(app)
    auth.install(app)
    app.state.backends = backends
    for router in ROUTERS:
        app.include_router(router, responses=AUTH_RESPONSES)
    return app
