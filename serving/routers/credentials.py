"""Credentials (seed §2.6): sign in (JSON, or the OAuth2 form behind /docs' Authorize
button), token refresh, sign out, password reset by e-mail and TOTP MFA, under /api/v1/users.

The work runs in accounts/ on a worker thread (argon2 hashing and psycopg are blocking); these
handlers validate, call, and envelope.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from pydantic import ValidationError

from accounts import auth_flows, mfa, password_reset, repo
from accounts.mail import send_mail
from core.errors import ServiceUnavailable, ValidationFailed
from core.settings import get_settings
from core.tenants import validate_tenant
from serving import envelope
from serving.account_calls import DOWN, run_account, user_out, without_redis
from serving.auth import CurrentUser, request_meta
from serving.deps import TenantDep
from serving.schemas_users import (
    Accepted,
    LoggedOut,
    LoginRequest,
    LogoutRequest,
    MfaCode,
    MfaDisable,
    MfaEnrolment,
    OAuth2Token,
    PasswordResetConfirm,
    PasswordResetRequest,
    RecoveryCodes,
    RefreshRequest,
    TokenPairOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])
FORM_LIMIT = 8192  # bytes of an OAuth2 form body


# ----------------------------------------------------------------------------- sign in / out


@router.post(
    "/login",
    responses=envelope.errors(
        _401="Wrong e-mail or password, wrong or missing MFA code (code MFA_REQUIRED)",
        _429="Account locked after repeated failures, or too many attempts from this address",
        _503=DOWN,
    ),
)
async def login(
    request: Request, body: LoginRequest, tenant: TenantDep
) -> envelope.Envelope[TokenPairOut]:
    """Sign in to the tenant of `X-Tenant-ID` (default: the app's tenant). Returns a 15-minute
    access token (send it as `Authorization: Bearer …`) and a 7-day refresh token."""
    pair = await run_account(
        auth_flows.login,
        tenant=tenant,
        email=body.email,
        password=body.password,
        otp=body.otp,
        recovery_code=body.recoveryCode,
        meta=request_meta(request),
    )
    return envelope.ok(request, TokenPairOut.model_validate(pair.public()))


def _basic_client(header: str | None) -> dict[str, str]:
    """client_id / client_secret sent as HTTP Basic (Swagger UI's default for OAuth2)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return {}
    return {k: unquote(v) for k, v in (("client_id", client_id), ("client_secret", secret)) if v}


@router.post(
    "/token",
    response_model=OAuth2Token,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["password"]},
                            "username": {"type": "string", "description": "E-mail address"},
                            "password": {"type": "string"},
                            "client_id": {"type": "string", "description": "Tenant (optional)"},
                            "client_secret": {
                                "type": "string",
                                "description": "Authenticator code (accounts with MFA)",
                            },
                        },
                    }
                }
            },
        }
    },
    responses=envelope.errors(
        _401="Wrong e-mail, password or MFA code", _429="Locked or throttled", _503=DOWN
    ),
)
async def token(request: Request, tenant: TenantDep) -> dict[str, Any]:
    """OAuth2 password grant (form-encoded) for /docs' **Authorize** button: `username` =
    e-mail, `client_id` = tenant, `client_secret` = MFA code. Answers in OAuth2's own shape
    (not the envelope), as OAuth2 clients expect."""
    raw = await request.body()
    if len(raw) > FORM_LIMIT:
        raise ValidationFailed("form body too large", details={"limit": FORM_LIMIT})
    try:
        form = {k: v[0] for k, v in parse_qs(raw.decode(), strict_parsing=False).items()}
    except (UnicodeDecodeError, ValueError):
        form = {}
    form = {**_basic_client(request.headers.get("authorization")), **form}
    missing = [f for f in ("username", "password") if not form.get(f)]
    if missing:
        raise ValidationFailed(
            f"form fields missing: {', '.join(missing)} (application/x-www-form-urlencoded)",
            details={"errors": [{"field": f, "reason": "required"} for f in missing]},
        )
    if form.get("grant_type", "password") != "password":
        raise ValidationFailed("grant_type must be 'password'", details={"field": "grant_type"})
    try:  # the same limits as /login, named by the form's fields
        LoginRequest(email=form["username"], password=form["password"])
    except ValidationError as exc:
        problems = [
            {
                "field": {"email": "username"}.get(str(e["loc"][0]), str(e["loc"][0])),
                "reason": e["msg"],
            }
            for e in exc.errors(include_url=False)
        ]
        text = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise ValidationFailed(f"invalid request: {text}", details={"errors": problems}) from None
    pair = await run_account(
        auth_flows.login,
        tenant=validate_tenant(form["client_id"]) if form.get("client_id") else tenant,
        email=form["username"],
        password=form["password"],
        otp=form.get("client_secret") or None,
        meta=request_meta(request),
    )
    return {
        "access_token": pair.access_token,
        "token_type": "bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    }


@router.post(
    "/token/refresh",
    responses=envelope.errors(
        _401="Unknown, expired, revoked or already used refresh token (reuse revokes the session)",
        _503=DOWN,
    ),
)
async def refresh_token(request: Request, body: RefreshRequest) -> envelope.Envelope[TokenPairOut]:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a used
    one again revokes its whole session (it was copied)."""
    pair = await run_account(
        auth_flows.refresh, refresh_token=body.refreshToken, meta=request_meta(request)
    )
    return envelope.ok(request, TokenPairOut.model_validate(pair.public()))


@router.post("/logout", responses=envelope.errors(_503=DOWN))
async def logout(
    request: Request, principal: CurrentUser, body: LogoutRequest | None = None
) -> envelope.Envelope[LoggedOut]:
    """End this session (or, with `everywhere`, every session of the account): its refresh
    tokens are revoked and its access tokens stop working at once."""
    closed = await run_account(
        auth_flows.logout,
        principal=principal,
        everywhere=bool(body and body.everywhere),
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, LoggedOut(sessionsEnded=len(closed)))


@router.post(
    "/password-reset/request",
    responses=envelope.errors(
        _429="Too many attempts from this address", _503="No mail server configured, or down"
    ),
)
async def password_reset_request(
    request: Request, body: PasswordResetRequest, tenant: TenantDep
) -> envelope.Envelope[Accepted]:
    """Mail a one-time reset token to the address (tenant of `X-Tenant-ID`). The answer is the
    same whether or not the address has an account."""
    settings = get_settings()
    if not settings.smtp_host:
        raise ServiceUnavailable(
            "password reset mails need a mail server: set RETAILPULSE_SMTP_HOST",
            details={"service": "smtp"},
        )
    await run_account(
        password_reset.request_password_reset,
        tenant=tenant,
        email=body.email,
        meta=request_meta(request),
        send=send_mail,
    )
    message = (
        f"if {body.email.strip().lower()} has an account, a reset token is on its way "
        f"(valid {settings.password_reset_minutes} minutes)"
    )
    return envelope.ok(request, Accepted(message=message))


@router.post(
    "/password-reset/confirm",
    responses=envelope.errors(_503=DOWN),
)
async def password_reset_confirm(
    request: Request, body: PasswordResetConfirm
) -> envelope.Envelope[UserOut]:
    """Set a new password with the mailed token (once). Unlocks the account and ends all its
    sessions. A bad or spent token, or a password breaking the rule → 422."""
    user = await run_account(
        password_reset.confirm_password_reset,
        token=body.token,
        new_password=body.newPassword,
        meta=request_meta(request),
    )
    return envelope.ok(request, user_out(user))


# ----------------------------------------------------------------------------- MFA


@router.post(
    "/mfa/enrol",
    responses=envelope.errors(_409="MFA is already on", _503=DOWN),
)
async def mfa_enrol(request: Request, principal: CurrentUser) -> envelope.Envelope[MfaEnrolment]:
    """Start TOTP enrolment: a secret for an authenticator app; confirm with /mfa/verify."""
    out = await run_account(without_redis(mfa.enrol), actor=principal, meta=request_meta(request))
    request.state.audited = True
    return envelope.ok(request, MfaEnrolment.model_validate(out))


@router.post(
    "/mfa/verify",
    responses=envelope.errors(_409="Nothing to verify (enrol first)", _503=DOWN),
)
async def mfa_verify(
    request: Request, body: MfaCode, principal: CurrentUser
) -> envelope.Envelope[RecoveryCodes]:
    """Switch MFA on with a current code; returns 10 one-time recovery codes (shown once)."""
    codes = await run_account(
        without_redis(mfa.enable), actor=principal, code=body.code, meta=request_meta(request)
    )
    request.state.audited = True
    return envelope.ok(request, RecoveryCodes(recoveryCodes=codes))


@router.post(
    "/mfa/disable",
    responses=envelope.errors(_409="MFA is not on", _503=DOWN),
)
async def mfa_disable(
    request: Request, body: MfaDisable, principal: CurrentUser
) -> envelope.Envelope[UserOut]:
    """Switch MFA off: needs the password and a current or recovery code."""
    await run_account(
        without_redis(mfa.disable),
        actor=principal,
        password=body.password,
        code=body.code,
        meta=request_meta(request),
    )
    request.state.audited = True
    user = await run_account(
        without_redis(repo.get_user), tenant=principal.tenant, user_id=principal.user_id
    )
    assert user is not None
    return envelope.ok(request, user_out(user))
