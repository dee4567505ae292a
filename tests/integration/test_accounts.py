"""Accounts over HTTP with real PostgreSQL and Redis: sign-in, tokens, sessions, roles,
tenants, stores, rate limits, MFA, password reset over SMTP, and the audit log."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyotp
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


# ----------------------------------------------------------------------------- roles, tenants, stores


def test_a_role_beyond_its_permissions_gets_403(accounts: Accounts) -> None:
    client = accounts.app()
    analyst = accounts.tokens(client, accounts.user("analyst"))["accessToken"]
    associate = accounts.tokens(client, accounts.user("sales_associate", stores=["1"]))[
        "accessToken"
    ]
    register = client.post(
        "/api/v1/users/register",
        json={"email": "x@example.com", "password": PASSWORD, "role": "analyst"},
        headers=bearer(analyst),
    )
    assert register.status_code == 403
    assert register.json()["error"]["details"]["permission"] == "manage:users"
    forecast = client.post(
        "/api/v1/predictions/demand/forecast",
        json={"storeId": "1", "productIds": [1]},
        headers=bearer(associate),
    )
    assert forecast.status_code == 403
    delete = client.delete("/api/v1/alerts/rules/1", headers=bearer(analyst))
    assert delete.status_code == 403


def test_a_tenant_cannot_reach_another_tenant_but_a_super_admin_can(accounts: Accounts) -> None:
    client = accounts.app()
    admin = accounts.tokens(client, accounts.user("tenant_admin"))["accessToken"]
    root = accounts.tokens(client, accounts.user("super_admin"))["accessToken"]
    body = {"email": "new@example.com", "password": PASSWORD, "role": "analyst"}
    other = {"X-Tenant-ID": accounts.other_tenant}
    denied = client.post("/api/v1/users/register", json=body, headers=bearer(admin, **other))
    assert denied.status_code == 403
    assert denied.json()["error"]["details"]["tenant"] == accounts.other_tenant
    data_route = client.post(
        "/api/v1/predictions/anomalies/detect",
        json={"from": "2017-01-01", "to": "2017-01-02"},
        headers=bearer(admin, **other),
    )
    assert data_route.status_code == 403
    made = client.post("/api/v1/users/register", json=body, headers=bearer(root, **other))
    assert made.status_code == 200, made.text
    assert made.json()["data"]["tenant"] == accounts.other_tenant
    assert accounts.audit(tenant=accounts.other_tenant, action="user.register")


class _Detector:
    """A stand-in anomaly model that records which stores it was asked about."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def detect(self, tenant: str, store_ids: Any, start: str, end: str) -> None:
        self.asked.append(store_ids)
        return None  # "no champion yet" → 503


def test_a_store_manager_sees_only_their_stores(accounts: Accounts) -> None:
    from core.services import get_endpoints
    from serving.deps import Backends, ModelClient, OnlineFeatures

    detector = _Detector()
    backends = Backends(
        models={
            "anomaly": ModelClient.local("anomaly", detector),
            "forecaster": ModelClient.local("forecaster", object()),
        },
        features=OnlineFeatures.from_url(get_endpoints().redis_url, "rpnone", accounts.tenant),
        default_tenant=accounts.tenant,
    )
    client = accounts.app(backends)
    manager = accounts.tokens(client, accounts.user("store_manager", stores=["3", "7"]))
    token = manager["accessToken"]
    route = "/api/v1/predictions/anomalies/detect"
    days = {"from": "2017-01-01", "to": "2017-01-31"}
    other = client.post(route, json={**days, "storeIds": ["3", "9"]}, headers=bearer(token))
    assert other.status_code == 403 and other.json()["error"]["details"]["storeId"] == "9"
    assert detector.asked == []
    own = client.post(route, json={**days, "storeIds": ["7"]}, headers=bearer(token))
    assert own.status_code == 503
    every = client.post(route, json=days, headers=bearer(token))
    assert every.status_code == 503
    assert detector.asked == [["7"], ["3", "7"]]
    forecast = client.post(
        "/api/v1/predictions/demand/forecast",
        json={"storeId": "9", "productIds": [1]},
        headers=bearer(token),
    )
    assert forecast.status_code == 403
    mine = client.post(
        "/api/v1/predictions/demand/forecast",
        json={"storeId": "3", "productIds": [1]},
        headers=bearer(token),
    )
    assert mine.status_code == 404  # past the store check: no such store online


def test_per_user_rate_limit_answers_429_with_retry_after(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, rate_limit_user="3", rate_limit_window_s="60")
    client = accounts.app()
    token = accounts.tokens(client, accounts.user("analyst"))["accessToken"]
    codes = [client.get("/api/v1/users/me", headers=bearer(token)) for _ in range(4)]
    statuses = [r.status_code for r in codes]
    if statuses[:3] != [200, 200, 200]:  # a window boundary fell inside the loop
        codes = [client.get("/api/v1/users/me", headers=bearer(token)) for _ in range(4)]
        statuses = [r.status_code for r in codes]
    assert statuses == [200, 200, 200, 429]
    assert codes[-1].json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
    # another user is not affected
    other = accounts.tokens(client, accounts.user("analyst"))["accessToken"]
    assert client.get("/api/v1/users/me", headers=bearer(other)).status_code == 200


def test_by_default_anonymous_calls_get_401(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped default (no RETAILPULSE_AUTH_REQUIRED: the suite's conftest turns it off
    for route-logic tests) requires a bearer token on every non-public route."""
    from core.settings import Settings, get_settings

    monkeypatch.delenv("RETAILPULSE_AUTH_REQUIRED", raising=False)
    get_settings.cache_clear()
    assert Settings().auth_required is True
    client = accounts.app()
    anonymous = client.post(
        "/api/v1/predictions/anomalies/detect", json={"from": "2017-01-01", "to": "2017-01-02"}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="retailpulse"'
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    token = accounts.tokens(client, accounts.user("analyst"))["accessToken"]
    signed_in = client.post(
        "/api/v1/predictions/anomalies/detect",
        json={"from": "2017-01-01", "to": "2017-01-02"},
        headers=bearer(token),
    )
    assert signed_in.status_code == 503  # past authentication: no model deployed here


def test_account_routes_need_a_token_even_with_auth_off(accounts: Accounts) -> None:
    client = accounts.app()
    assert client.get("/api/v1/users/me").status_code == 401
    register = client.post(
        "/api/v1/users/register",
        json={"email": "a@example.com", "password": PASSWORD, "role": "tenant_admin"},
    )
    assert register.status_code == 401


# ----------------------------------------------------------------------------- accounts


def test_registration_and_role_changes_follow_the_rules(accounts: Accounts) -> None:
    client = accounts.app()
    admin_user = accounts.user("tenant_admin")
    admin = bearer(accounts.tokens(client, admin_user)["accessToken"])
    new = {"email": "Sam@Example.com", "password": PASSWORD, "role": "store_manager"}
    no_stores = client.post("/api/v1/users/register", json=new, headers=admin)
    assert no_stores.status_code == 422
    made = client.post("/api/v1/users/register", json={**new, "storeIds": ["5"]}, headers=admin)
    assert made.status_code == 200
    sam = made.json()["data"]
    assert sam["email"] == "sam@example.com" and sam["storeIds"] == ["5"]
    twice = client.post("/api/v1/users/register", json={**new, "storeIds": ["5"]}, headers=admin)
    assert twice.status_code == 409
    root = client.post(
        "/api/v1/users/register",
        json={**new, "email": "r@example.com", "role": "super_admin"},
        headers=admin,
    )
    assert root.status_code == 403
    weak = client.post(
        "/api/v1/users/register",
        json={**new, "email": "w@example.com", "password": "short", "storeIds": ["5"]},
        headers=admin,
    )
    assert weak.status_code == 422 and "password" in weak.json()["error"]["message"]

    sam_login = client.post(
        "/api/v1/users/login",
        json={"email": "sam@example.com", "password": PASSWORD},
        headers={"X-Tenant-ID": accounts.tenant},
    ).json()["data"]
    promoted = client.post(
        f"/api/v1/users/{sam['userId']}/roles", json={"role": "analyst"}, headers=admin
    )
    assert promoted.status_code == 200 and promoted.json()["data"]["role"] == "analyst"
    # the old token carried the old role: its session ended with the change
    assert (
        client.get("/api/v1/users/me", headers=bearer(sam_login["accessToken"])).status_code == 401
    )
    own = client.post(
        f"/api/v1/users/{admin_user.user_id}/roles", json={"role": "analyst"}, headers=admin
    )
    assert own.status_code == 403
    rows = accounts.audit(action="user.role", target=sam["userId"])
    assert rows and rows[0]["details"]["from"]["role"] == "store_manager"


def test_profile_changes_need_the_current_password_for_your_own(accounts: Accounts) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    token = bearer(accounts.tokens(client, user)["accessToken"])
    url = f"/api/v1/users/{user.user_id}/profile"
    renamed = client.put(url, json={"name": "Ann Analyst"}, headers=token)
    assert renamed.status_code == 200 and renamed.json()["data"]["name"] == "Ann Analyst"
    new_password = "a new long passphrase"
    refused = client.put(url, json={"password": new_password}, headers=token)
    assert refused.status_code == 403
    changed = client.put(
        url, json={"password": new_password, "currentPassword": PASSWORD}, headers=token
    )
    assert changed.status_code == 200
    assert accounts.login(client, user).status_code == 401
    assert accounts.login(client, user, password=new_password).status_code == 200
    someone = accounts.user("analyst")
    other = client.put(
        f"/api/v1/users/{someone.user_id}/profile", json={"name": "x"}, headers=token
    )
    assert other.status_code == 403


def test_mfa_enrol_then_login_with_totp_and_single_use_recovery_codes(
    accounts: Accounts,
) -> None:
    client = accounts.app()
    user = accounts.user("store_manager", stores=["1"])
    token = bearer(accounts.tokens(client, user)["accessToken"])
    enrol = client.post("/api/v1/users/mfa/enrol", headers=token)
    assert enrol.status_code == 200
    secret = enrol.json()["data"]["secret"]
    assert enrol.json()["data"]["otpauthUri"].startswith("otpauth://totp/")
    wrong = client.post("/api/v1/users/mfa/verify", json={"code": "000000"}, headers=token)
    assert wrong.status_code == 422
    totp = pyotp.TOTP(secret)
    verified = client.post("/api/v1/users/mfa/verify", json={"code": totp.now()}, headers=token)
    assert verified.status_code == 200
    codes = verified.json()["data"]["recoveryCodes"]
    assert len(codes) == 10

    missing = accounts.login(client, user)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "MFA_REQUIRED"
    code = totp.now()
    assert accounts.login(client, user, otp=code).status_code == 200
    assert accounts.login(client, user, otp=code).status_code == 401  # no replay
    assert accounts.login(client, user, recoveryCode=codes[0]).status_code == 200
    assert accounts.login(client, user, recoveryCode=codes[0]).status_code == 401  # once
    with_code = accounts.login(client, user, recoveryCode=codes[1])
    assert with_code.status_code == 200
    token = bearer(with_code.json()["data"]["accessToken"])
    off = client.post(
        "/api/v1/users/mfa/disable", json={"password": PASSWORD, "code": codes[2]}, headers=token
    )
    assert off.status_code == 200 and off.json()["data"]["mfaEnabled"] is False
    assert accounts.login(client, user).status_code == 200
    actions = {(r["action"], r["outcome"]) for r in accounts.audit(actor_id=user.user_id)}
    assert {("mfa.enrol", "ok"), ("mfa.enable", "ok"), ("mfa.disable", "ok")} <= actions


# ----------------------------------------------------------------------------- password reset


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Mailbox]:
    """A local SMTP server (aiosmtpd) on a free port, configured as the platform's."""
    from aiosmtpd.controller import Controller

    from core.services import free_port
    from core.settings import get_settings

    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("RETAILPULSE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RETAILPULSE_SMTP_PORT", str(port))
    get_settings.cache_clear()
    yield box
    controller.stop()


def test_password_reset_by_mail_unlocks_and_works_once(accounts: Accounts, smtp: _Mailbox) -> None:
    client = accounts.app()
    user = accounts.user("analyst")
    session = accounts.tokens(client, user)["accessToken"]
    for _ in range(5):
        accounts.login(client, user, password="wrong wrong wrong")
    assert accounts.login(client, user).status_code == 429

    tenant = {"X-Tenant-ID": accounts.tenant}
    nobody = client.post(
        "/api/v1/users/password-reset/request", json={"email": "nobody@x.org"}, headers=tenant
    )
    asked = client.post(
        "/api/v1/users/password-reset/request", json={"email": user.email}, headers=tenant
    )
    assert nobody.status_code == asked.status_code == 200
    assert nobody.json()["data"]["accepted"] and asked.json()["data"]["accepted"]
    assert len(smtp.messages) == 1
    to, content = smtp.messages[0]
    assert to == [user.email]
    token = re.search(r"token: (\S+)", content).group(1)

    weak = client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "newPassword": "x"}
    )
    assert weak.status_code == 422  # the token is not spent by a refused password
    new_password = "a brand new passphrase"
    done = client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "newPassword": new_password}
    )
    assert done.status_code == 200
    again = client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "newPassword": new_password}
    )
    assert again.status_code == 422
    assert accounts.login(client, user, password=new_password).status_code == 200  # unlocked
    assert client.get("/api/v1/users/me", headers=bearer(session)).status_code == 401
    assert accounts.audit(action="password_reset.confirm", target=user.user_id)


def test_password_reset_without_a_mail_server_says_so(accounts: Accounts) -> None:
    client = accounts.app()
    response = client.post("/api/v1/users/password-reset/request", json={"email": "a@b.cd"})
    assert response.status_code == 503
    assert "RETAILPULSE_SMTP_HOST" in response.json()["error"]["message"]


# ----------------------------------------------------------------------------- audit, docs, CLI


def test_every_authenticated_write_lands_in_the_audit_log(accounts: Accounts) -> None:
    client = accounts.app()
    admin = accounts.user("tenant_admin")
    token = accounts.tokens(client, admin)["accessToken"]
    # a POST that only reads (a prediction) is not a write: no audit row
    read = client.post(
        "/api/v1/predictions/anomalies/detect",
        json={"from": "2017-01-01", "to": "2017-01-02"},
        headers=bearer(token),
    )
    assert read.status_code == 503
    assert not accounts.audit(action="http.POST", actor_id=admin.user_id)
    rule = {"kind": "threshold", "name": "audited", "scope": {"storeIds": ["1"]},
            "params": {"metric": "baskets", "operator": ">=", "value": 5}}  # fmt: skip
    response = client.post(
        "/api/v1/alerts/rules",
        json=rule,
        headers=bearer(token, **{"User-Agent": "audit-test/1.0"}),
    )
    assert response.status_code == 200, response.text
    rows = accounts.audit(action="http.POST", actor_id=admin.user_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["target"] == "/api/v1/alerts/rules"
    assert row["details"]["status"] == 200 and row["outcome"] == "ok"
    assert row["ip"] == "testclient" and row["user_agent"] == "audit-test/1.0"
    assert row["actor_role"] == "tenant_admin" and row["request_id"]
    logins = accounts.audit(action="login", outcome="ok", actor_id=admin.user_id)
    assert logins and logins[0]["ip"] == "testclient"
    reads = client.get("/api/v1/users/me", headers=bearer(token))
    assert reads.status_code == 200
    assert not accounts.audit(action="http.GET")
    audit = client.get("/api/v1/users/audit?action=login", headers=bearer(token))
    assert audit.status_code == 200 and audit.json()["data"]["total"] >= 1


def test_docs_authorize_flow_issues_a_working_token(accounts: Accounts) -> None:
    client = accounts.app()
    spec = client.get("/openapi.json").json()
    scheme = next(iter(spec["components"]["securitySchemes"].values()))
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/users/token"
    user = accounts.user("analyst")
    form = {"username": user.email, "password": PASSWORD, "client_id": accounts.tenant}
    token = client.post("/api/v1/users/token", data=form)
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    me = client.get("/api/v1/users/me", headers=bearer(token.json()["access_token"]))
    assert me.status_code == 200
    empty = client.post("/api/v1/users/token", data={})
    assert empty.status_code == 422
    # Swagger UI sends client_id (here: the tenant) as HTTP Basic by default
    basic = base64.b64encode(f"{accounts.tenant}:".encode()).decode()
    from serving.deps import Backends

    elsewhere = accounts.app(Backends(default_tenant="default"))  # the tenant must come along
    swagger = elsewhere.post(
        "/api/v1/users/token",
        data={"grant_type": "password", "username": user.email, "password": PASSWORD},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert swagger.status_code == 200, swagger.text


def test_cli_creates_the_first_admin_and_prints_how_to_get_a_token(accounts: Accounts) -> None:
    from typer.testing import CliRunner

    from accounts.jobs import issue_token
    from accounts.tokens import decode_access_token
    from pipelines.cli import app

    runner = CliRunner()
    email = f"boss-{uuid.uuid4().hex[:6]}@example.com"
    result = runner.invoke(
        app,
        [
            "users",
            "create-admin",
            "--email",
            email,
            "--tenant",
            accounts.tenant,
            "--password-stdin",
        ],  # fmt: skip
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "retailpulse users token" in result.output and "/api/v1/users/login" in result.output
    pair = issue_token(email=email, password=PASSWORD, tenant=accounts.tenant)
    from accounts.secrets import jwt_secret

    principal = decode_access_token(pair.access_token, secret=jwt_secret())
    assert principal.role == "tenant_admin" and principal.tenant == accounts.tenant
    printed = runner.invoke(
        app,
        ["users", "token", "--email", email, "--tenant", accounts.tenant, "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert printed.exit_code == 0
    token = printed.output.strip().splitlines()[-1]
    client = accounts.app()
    assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
    assert accounts.audit(action="user.bootstrap")
