"""Access tokens, passwords, MFA codes and the permission table (no services)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pyotp
import pytest

from accounts import mfa
from accounts.permissions import (
    ANALYST,
    AUTHENTICATED,
    PUBLIC,
    ROLE_PERMISSIONS,
    ROLES,
    SALES_ASSOCIATE,
    STORE_MANAGER,
    SUPER_ADMIN,
    TENANT_ADMIN,
    can_grant,
    permission_for,
)
from accounts.ratelimit import current_window
from accounts.tokens import decode_access_token, issue_access_token
from core.errors import Unauthorized, ValidationFailed

SECRET = "unit-test-secret-of-enough-length-0123456789"


def _token(**overrides) -> str:
    args = dict(
        secret=SECRET,
        user_id="u1",
        tenant="acme",
        role=STORE_MANAGER,
        stores=["7", "3"],
        session_id="s1",
        minutes=15,
    )
    args.update(overrides)
    return issue_access_token(**args).token


def test_a_valid_token_gives_the_callers_tenant_role_and_stores() -> None:
    principal = decode_access_token(_token(), secret=SECRET)
    assert (principal.user_id, principal.tenant, principal.role) == ("u1", "acme", STORE_MANAGER)
    assert principal.stores == frozenset({"3", "7"})
    assert principal.session_id == "s1"
    assert principal.can("write:inventory") and not principal.can("manage:users")


def test_an_expired_token_is_rejected_as_expired() -> None:
    old = _token(now=time.time() - 3600)
    with pytest.raises(Unauthorized) as info:
        decode_access_token(old, secret=SECRET)
    assert info.value.code == "TOKEN_EXPIRED"
    assert "invalid_token" in info.value.headers["WWW-Authenticate"]


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    forged = _token(secret="someone-elses-secret-0123456789abcdef")
    with pytest.raises(Unauthorized) as info:
        decode_access_token(forged, secret=SECRET)
    assert info.value.code == "INVALID_TOKEN"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_an_unsigned_alg_none_token_is_rejected() -> None:
    claims = jwt.decode(_token(), SECRET, algorithms=["HS256"])
    claims["role"] = SUPER_ADMIN
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(Unauthorized):
        decode_access_token(unsigned, secret=SECRET)


def test_a_tampered_claim_breaks_the_signature() -> None:
    header, payload, signature = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = SUPER_ADMIN
    with pytest.raises(Unauthorized):
        decode_access_token(f"{header}.{_b64(claims)}.{signature}", secret=SECRET)


def test_a_token_with_an_unknown_role_is_rejected() -> None:
    with pytest.raises(Unauthorized):
        decode_access_token(_token(role="owner"), secret=SECRET)


def test_password_rule_names_what_is_wrong(monkeypatch) -> None:
    from accounts.passwords import check_password_rule
    from core.settings import get_settings

    monkeypatch.setenv("RETAILPULSE_PASSWORD_MIN_LENGTH", "10")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationFailed, match="at least 10"):
            check_password_rule("short")
        with pytest.raises(ValidationFailed, match="different characters"):
            check_password_rule("aaaaaaaaaaaaaa")
        with pytest.raises(ValidationFailed, match="e-mail"):
            check_password_rule("ann@example.com", email="Ann@Example.com")
        check_password_rule("correct horse battery")
    finally:
        get_settings.cache_clear()


def test_totp_accepts_the_current_code_only() -> None:
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    assert mfa.totp_ok(secret, totp.now())
    assert not mfa.totp_ok(secret, totp.at(time.time() - 600))
    assert not mfa.totp_ok(secret, "abcdef")
    codes = mfa.new_recovery_codes()
    assert len(set(codes)) == len(codes) == 10
    assert mfa.normalize_recovery_code(codes[0].upper() + " ") == codes[0]


def test_roles_nest_as_documented() -> None:
    perms = ROLE_PERMISSIONS
    assert perms[TENANT_ADMIN] < perms[SUPER_ADMIN]
    assert "manage:tenants" in perms[SUPER_ADMIN] - perms[TENANT_ADMIN]
    assert perms[SALES_ASSOCIATE] < perms[STORE_MANAGER]
    assert "write:inventory" not in perms[ANALYST]
    assert "manage:users" not in perms[STORE_MANAGER] | perms[ANALYST]
    assert can_grant(TENANT_ADMIN, STORE_MANAGER) and not can_grant(TENANT_ADMIN, SUPER_ADMIN)
    assert not any(can_grant(r, ANALYST) for r in (STORE_MANAGER, ANALYST, SALES_ASSOCIATE))


def test_route_families_map_by_prefix_and_method() -> None:
    assert permission_for("GET", "/api/v1/alerts/anything/new") == "read:alerts"
    assert permission_for("DELETE", "/api/v1/alerts/rules/{ruleId}") == "write:alerts"
    assert permission_for("POST", "/api/v1/reports/generate") == "write:reports"
    assert permission_for("GET", "/api/v1/reports/{id}/download") == "read:reports"
    assert permission_for("GET", "/api/v1/analytics/sales/realtime") == "read:sales"
    assert permission_for("POST", "/api/v1/analytics/basket/analysis") == "read:analytics"
    assert permission_for("HEAD", "/healthz") == PUBLIC
    assert permission_for("POST", "/api/v1/users/logout") == AUTHENTICATED
    assert permission_for("GET", "/api/v1/unknown") is None
    assert set(ROLES) == set(ROLE_PERMISSIONS)


def test_rate_limit_window_says_when_to_retry() -> None:
    window = current_window(60, now=120.0 + 45.5)
    assert window.number == 2
    assert window.retry_after == 15
