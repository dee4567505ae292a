"""Sign-in over HTTP with real PostgreSQL and Redis: passwords, lockout, throttling, and the
access and refresh tokens (expiry, forgery, logout, rotation and reuse)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import PASSWORD, Accounts, _clear_redis_keys, bearer

pytestmark = pytest.mark.integration


def _setting(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    from core.settings import get_settings

    for key, value in values.items():
        monkeypatch.setenv(f"RETAILPULSE_{key.upper()}", value)
    get_settings.cache_clear()


# ----------------------------------------------------------------------------- sign in


def test_login_returns_tokens_that_open_the_api(accounts: Accounts) -> None:
    client = accounts.app()
    admin = accounts.user("tenant_admin")
    data = accounts.tokens(client, admin)
    assert data["tokenType"] == "bearer" and data["expiresIn"] == 15 * 60
    me = client.get("/api/v1/users/me", headers=bearer(data["accessToken"]))
    assert me.status_code == 200
    assert me.json()["data"]["email"] == admin.email
    assert "hashed_password" not in me.text and "mfa_secret" not in me.text
    perms = client.get(
        f"/api/v1/users/{admin.user_id}/permissions", headers=bearer(data["accessToken"])
    ).json()["data"]
    assert "manage:users" in perms["permissions"] and "manage:tenants" not in perms["permissions"]


def test_wrong_password_and_unknown_address_get_the_same_401(accounts: Accounts) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    wrong = client.post(
        "/api/v1/users/login",
        json={"email": user.email, "password": "not the password"},
        headers={"X-Tenant-ID": accounts.tenant},
    )
    unknown = client.post(
        "/api/v1/users/login",
        json={"email": "nobody@example.com", "password": PASSWORD},
        headers={"X-Tenant-ID": accounts.tenant},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    failed = accounts.audit(action="login", outcome="failed")
    assert {r["target"] for r in failed} >= {user.user_id, "nobody@example.com"}


def test_five_failures_lock_the_account_even_for_the_right_password(
    accounts: Accounts,
) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    for attempt in range(5):
        response = accounts.login(client, user, password=f"wrong password {attempt}")
        assert response.status_code == 401
    assert "locked" in response.json()["error"]["message"]
    locked = accounts.login(client, user)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "ACCOUNT_LOCKED"
    assert 800 < int(locked.headers["Retry-After"]) <= 15 * 60 + 1
    assert accounts.audit(action="login", outcome="locked", target=user.user_id)


def test_too_many_logins_from_one_address_are_throttled(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, login_ip_per_minute="3")
    _clear_redis_keys(("rl:*:login:*",))
    client = accounts.app()
    user = accounts.user("analyst")
    codes = [accounts.login(client, user).status_code for _ in range(4)]
    if codes[:3] != [200, 200, 200]:  # a minute boundary fell inside the loop: retry once
        _clear_redis_keys(("rl:*:login:*",))
        codes = [accounts.login(client, user).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    again = accounts.login(client, user)
    assert again.json()["error"]["code"] == "LOGIN_THROTTLED"
    assert int(again.headers["Retry-After"]) >= 1


# ----------------------------------------------------------------------------- tokens


def _minted(user: Any, *, session_id: str, now: float | None = None, secret: str | None = None):
    from accounts.secrets import jwt_secret
    from accounts.tokens import issue_access_token

    return issue_access_token(
        secret=secret or jwt_secret(),
        user_id=user.user_id,
        tenant=user.tenant_id,
        role=user.role,
        stores=user.store_ids,
        session_id=session_id,
        minutes=15,
        now=now,
    ).token


def test_expired_forged_and_garbage_tokens_get_401_never_anonymous(accounts: Accounts) -> None:
    client = accounts.app()
    admin = accounts.user("tenant_admin")
    session = accounts.tokens(client, admin)["sessionId"]
    expired = _minted(admin, session_id=session, now=time.time() - 3600)
    forged = _minted(admin, session_id=session, secret="an attacker's guess at the secret!!")
    header, payload, _ = forged.split(".")
    alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
    route = "/api/v1/predictions/anomalies/detect"  # anonymous callers reach it (auth off)
    body = {"from": "2017-01-01", "to": "2017-01-31"}
    assert client.post(route, json=body).status_code == 503  # anonymous: acts as before
    for token, code in (
        (expired, "TOKEN_EXPIRED"),
        (forged, "INVALID_TOKEN"),
        (alg_none, "INVALID_TOKEN"),
        ("garbage", "INVALID_TOKEN"),
    ):
        response = client.post(route, json=body, headers=bearer(token))
        assert response.status_code == 401, (code, response.text)
        assert response.json()["error"]["code"] == code
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    basic = client.post(route, json=body, headers={"Authorization": "Basic dTpw"})
    assert basic.status_code == 401


def test_a_token_accepted_before_is_refused_once_it_expires(accounts: Accounts) -> None:
    """Replicas keep verified tokens to skip re-decoding them: expiry must still hold."""
    from accounts.tokens import LEEWAY_S

    client = accounts.app()
    admin = accounts.user("tenant_admin")
    session = accounts.tokens(client, admin)["sessionId"]
    expires = time.time() + 1.0
    soon = _minted(admin, session_id=session, now=expires - 15 * 60)
    assert client.get("/api/v1/users/me", headers=bearer(soon)).status_code == 200
    assert client.get("/api/v1/users/me", headers=bearer(soon)).status_code == 200  # cached
    time.sleep(max(0.0, expires + LEEWAY_S + 0.5 - time.time()))
    late = client.get("/api/v1/users/me", headers=bearer(soon))
    assert late.status_code == 401 and late.json()["error"]["code"] == "TOKEN_EXPIRED"


def test_logout_revokes_the_access_and_the_refresh_token(accounts: Accounts) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    data = accounts.tokens(client, user)
    other = accounts.tokens(client, user)  # a second session stays alive
    out = client.post("/api/v1/users/logout", headers=bearer(data["accessToken"]))
    assert out.status_code == 200 and out.json()["data"]["sessionsEnded"] == 1
    gone = client.get("/api/v1/users/me", headers=bearer(data["accessToken"]))
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "SESSION_ENDED"
    refresh = client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": data["refreshToken"]}
    )
    assert refresh.status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(other["accessToken"])).status_code == 200
    assert accounts.audit(action="logout", actor_id=user.user_id)


def test_refresh_rotates_and_reuse_revokes_the_whole_family(accounts: Accounts) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    first = accounts.tokens(client, user)
    second = client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": first["refreshToken"]}
    )
    assert second.status_code == 200
    second = second.json()["data"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["sessionId"] == first["sessionId"]
    assert client.get("/api/v1/users/me", headers=bearer(second["accessToken"])).status_code == 200

    reused = client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": first["refreshToken"]}
    )
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "REFRESH_TOKEN_REUSED"
    # the thief's copy and the rightful owner's newer tokens are all dead now
    latest = client.post(
        "/api/v1/users/token/refresh", json={"refreshToken": second["refreshToken"]}
    )
    assert latest.status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(second["accessToken"])).status_code == 401
    assert accounts.audit(action="token.refresh", outcome="reuse_detected")
