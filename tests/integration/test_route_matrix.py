"""Route × role matrix: for every route of the API and every role, a role without the route's
permission gets 403 and a role with it gets past authorization (any status but 401 / 403:
models are not trained here, so 404 / 422 / 503 are expected). With `auth_required` on, every
non-public route answers 401 to an anonymous caller."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from accounts.permissions import AUTHENTICATED, PUBLIC, ROLES, permission_for, roles_allowed
from tests.integration.conftest import Accounts

pytestmark = pytest.mark.integration
STORE = "1"


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted(ctx.methods or ()):
            if method != "HEAD":  # HEAD answers like GET; WebSockets authenticate themselves
                out.append((method, ctx.path_format))
    return out


def _path(template: str, user_id: str) -> str:
    """Fill path parameters: the caller's own id for `userId`, a plausible id otherwise."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: user_id if m.group(1) == "userId" else "a1" if "associate" in m.group(1) else "1",
        template,
    )


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.request(method, path, **kwargs).status_code


def _token_for(user: Any) -> str:
    """A fresh session and access token of `user` (no password round trip: fast)."""
    from accounts import sessions
    from accounts.secrets import jwt_secret
    from accounts.tokens import issue_access_token

    session_id = uuid.uuid4().hex
    sessions.open_session(
        sessions.sync_redis(),
        session_id=session_id,
        tenant=user.tenant_id,
        user_id=user.user_id,
        role=user.role,
        ttl_s=600,
        ip=None,
        user_agent=None,
    )
    return issue_access_token(
        secret=jwt_secret(),
        user_id=user.user_id,
        tenant=user.tenant_id,
        role=user.role,
        stores=user.store_ids,
        session_id=session_id,
        minutes=15,
    ).token


def test_every_route_against_every_role(accounts: Accounts) -> None:  # noqa: F811
    client = accounts.app()
    users = {
        role: accounts.user(
            role, stores=[STORE] if role in ("store_manager", "sales_associate") else None
        )
        for role in ROLES
    }
    routes = _routes(client.app)
    assert len(routes) > 30
    wrong: list[str] = []
    for method, template in routes:
        permission = permission_for(method, template)
        allowed = roles_allowed(permission)
        for role, user in users.items():
            status = _call(
                client,
                method,
                _path(template, user.user_id),
                {"Authorization": f"Bearer {_token_for(user)}"},
            )
            expected_forbidden = role not in allowed
            if expected_forbidden and status != 403:
                wrong.append(f"{method} {template} as {role}: {status}, expected 403")
            if not expected_forbidden and status in (401, 403):
                wrong.append(f"{method} {template} as {role}: {status}, expected access")
    assert not wrong, "\n".join(wrong)


def test_every_non_public_route_needs_a_token_when_auth_is_required(
    accounts: Accounts,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("RETAILPULSE_AUTH_REQUIRED", "true")
    get_settings.cache_clear()
    client = accounts.app()
    wrong = []
    for method, template in _routes(client.app):
        status = _call(client, method, _path(template, "u1"), {})
        public = permission_for(method, template) == PUBLIC
        if public and status == 401:
            wrong.append(f"{method} {template}: 401 on a public route")
        if not public and status != 401:
            wrong.append(f"{method} {template}: {status}, expected 401")
    assert not wrong, "\n".join(wrong)


def test_authenticated_only_routes_are_open_to_every_role() -> None:
    assert roles_allowed(AUTHENTICATED) == frozenset(ROLES)
