"""Accounts over HTTP with real PostgreSQL and Redis: registration, roles, profiles, MFA,
password reset over SMTP, the audit log, the /docs Authorize flow and the CLI's first admin."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.integration.conftest import PASSWORD, Accounts, bearer

pytestmark = pytest.mark.integration


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
