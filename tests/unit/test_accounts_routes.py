"""Every route of the API has an entry in the permission table (no route forgotten)."""

from __future__ import annotations

from functools import cache

from fastapi.routing import iter_route_contexts

from accounts.permissions import PUBLIC, ROUTE_PERMISSIONS, permission_for
from serving.app import create_api
from serving.deps import Backends


@cache
def _routes() -> list[tuple[str, str]]:
    app = create_api(Backends(default_tenant="default"))
    out = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted(ctx.methods or {"WEBSOCKET"}):
            if method != "HEAD":
                out.append((method, ctx.path_format))
    return out


def test_every_route_has_a_permission_entry() -> None:
    routes = _routes()
    assert len(routes) > 30
    missing = [f"{m} {p}" for m, p in routes if permission_for(m, p) is None]
    assert not missing, f"add these to accounts/permissions.py ROUTE_PERMISSIONS: {missing}"


def test_only_sign_in_health_and_docs_are_public() -> None:
    public = {f"{m} {p}" for m, p in _routes() if permission_for(m, p) == PUBLIC}
    assert public == {
        "GET /healthz",
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        "POST /api/v1/users/login",
        "POST /api/v1/users/token",
        "POST /api/v1/users/token/refresh",
        "POST /api/v1/users/password-reset/request",
        "POST /api/v1/users/password-reset/confirm",
    }


def test_no_stale_entries_in_the_table() -> None:
    routes = set(_routes())
    stale = [f"{m} {p}" for (m, p) in ROUTE_PERMISSIONS if (m, p) not in routes]
    assert not stale, f"entries without a route: {stale}"
