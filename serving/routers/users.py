"""Accounts (seed §2.6): sign in / out, token refresh, registration, profiles, roles,
permissions, password reset by e-mail, TOTP MFA, and the audit log.

Who may do what is in accounts/permissions.py (`ROUTE_PERMISSIONS`) and accounts/users.py
(registration: the first admin of a tenant comes from `retailpulse users create-admin`;
afterwards `manage:users`). The work runs in accounts/ on a worker thread (argon2 hashing and
psycopg are blocking); these handlers validate, call, and envelope.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, unquote

import anyio
import redis
from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError

from accounts import auth_flows, mfa, password_reset, repo, users
from accounts.mail import send_mail
from accounts.sessions import sync_redis
from core.db import connect
from core.errors import ServiceUnavailable, ValidationFailed
from core.settings import get_settings
from core.tenants import validate_tenant
from core.values import Text
from serving import envelope
from serving.auth import CurrentUser, request_meta
from serving.deps import TenantDep
from serving.schemas_users import (
    Accepted,
    AuditPage,
    LoggedOut,
    LoginRequest,
    LogoutRequest,
    MfaCode,
    MfaDisable,
    MfaEnrolment,
    OAuth2Token,
    PasswordResetConfirm,
    PasswordResetRequest,
    PermissionsOut,
    ProfileUpdate,
    RecoveryCodes,
    RefreshRequest,
    RegisterRequest,
    RoleChange,
    TokenPairOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])
T = TypeVar("T")
UserId = Annotated[str, Path(alias="userId", min_length=1, max_length=64, description="User id")]
DOWN = "The warehouse or the session store (Redis) is not reachable"
FORM_LIMIT = 8192  # bytes of an OAuth2 form body


async def _run(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`fn(conn, r, **kwargs)` on a worker thread: an autocommit warehouse connection (each
    statement commits unless `fn` opens a transaction) and the blocking Redis client."""

    def work() -> T:
        try:
            with connect(autocommit=True) as conn:
                return fn(conn, sync_redis(), **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ServiceUnavailable(
                f"the session store (Redis) did not answer: {type(exc).__name__}",
                details={"service": "session store"},
                retry_after=1,
            ) from None

    return await anyio.to_thread.run_sync(work)


def _no_redis(fn: Callable[..., T]) -> Callable[..., T]:
    def call(conn: Any, _r: Any, **kwargs: Any) -> T:
        return fn(conn, **kwargs)

    return call


def _user(user: repo.User) -> UserOut:
    return UserOut.model_validate(user.public())


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
    pair = await _run(
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
    pair = await _run(
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
    pair = await _run(
        auth_flows.refresh, refresh_token=body.refreshToken, meta=request_meta(request)
    )
    return envelope.ok(request, TokenPairOut.model_validate(pair.public()))


@router.post("/logout", responses=envelope.errors(_503=DOWN))
async def logout(
    request: Request, principal: CurrentUser, body: LogoutRequest | None = None
) -> envelope.Envelope[LoggedOut]:
    """End this session (or, with `everywhere`, every session of the account): its refresh
    tokens are revoked and its access tokens stop working at once."""
    closed = await _run(
        auth_flows.logout,
        principal=principal,
        everywhere=bool(body and body.everywhere),
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, LoggedOut(sessionsEnded=len(closed)))


@router.get("/me", responses=envelope.errors(_503=DOWN))
async def me(request: Request, principal: CurrentUser) -> envelope.Envelope[UserOut]:
    """The signed-in account."""
    user = await _run(_no_redis(repo.get_user), tenant=principal.tenant, user_id=principal.user_id)
    if user is None:
        raise ServiceUnavailable("the account of this token is gone", details={})
    return envelope.ok(request, _user(user))


# ----------------------------------------------------------------------------- accounts


@router.post(
    "/register",
    responses=envelope.errors(
        _409="The tenant already has an account with this e-mail address", _503=DOWN
    ),
)
async def register(
    request: Request, body: RegisterRequest, principal: CurrentUser, tenant: TenantDep
) -> envelope.Envelope[UserOut]:
    """Create an account in the caller's tenant (a super admin: the X-Tenant-ID one). Needs
    `manage:users`; a tenant admin cannot create super admins. Store managers and sales
    associates need `storeIds`."""
    user = await _run(
        _no_redis(users.register),
        actor=principal,
        tenant=tenant,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
        store_ids=body.storeIds,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, _user(user))


@router.put(
    "/{userId}/profile",
    responses=envelope.errors(
        _404="No such user in the tenant", _409="E-mail address taken", _503=DOWN
    ),
)
async def update_profile(
    request: Request,
    user_id: UserId,
    body: ProfileUpdate,
    principal: CurrentUser,
    tenant: TenantDep,
) -> envelope.Envelope[UserOut]:
    """Change name, e-mail or password: your own (a password change needs `currentPassword`
    and ends your other sessions), or anyone's of the tenant with `manage:users`."""
    user = await _run(
        users.update_profile,
        actor=principal,
        tenant=tenant,
        user_id=user_id,
        name=body.name,
        email=body.email,
        password=body.password,
        current_password=body.currentPassword,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, _user(user))


@router.get(
    "/{userId}/permissions",
    responses=envelope.errors(_404="No such user in the tenant", _503=DOWN),
)
async def user_permissions(
    request: Request, user_id: UserId, principal: CurrentUser, tenant: TenantDep
) -> envelope.Envelope[PermissionsOut]:
    """A user's role, permissions and stores (your own, or anyone's with `manage:users`)."""
    out = await _run(
        _no_redis(users.view_permissions), actor=principal, tenant=tenant, user_id=user_id
    )
    return envelope.ok(request, PermissionsOut.model_validate(out))


@router.post(
    "/{userId}/roles",
    responses=envelope.errors(_404="No such user in the tenant", _503=DOWN),
)
async def change_role(
    request: Request,
    user_id: UserId,
    body: RoleChange,
    principal: CurrentUser,
    tenant: TenantDep,
) -> envelope.Envelope[UserOut]:
    """Give a user another role (and stores). Needs `manage:users` and the right to grant both
    the old and the new role; nobody changes their own. The user's sessions end."""
    user = await _run(
        users.change_role,
        actor=principal,
        tenant=tenant,
        user_id=user_id,
        role=body.role,
        store_ids=body.storeIds,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, _user(user))


@router.get("/audit", responses=envelope.errors(_503=DOWN))
async def audit_log(
    request: Request,
    principal: CurrentUser,
    tenant: TenantDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    action: Annotated[Text | None, Query(max_length=64, description="e.g. login")] = None,
    actorId: Annotated[str | None, Query(max_length=64)] = None,
) -> envelope.Envelope[AuditPage]:
    """The tenant's audit log, newest first (needs `read:audit`: admins)."""
    rows, total = await _run(
        _no_redis(repo.list_audit),
        tenant=tenant,
        limit=limit,
        offset=(page - 1) * limit,
        action=action,
        actor_id=actorId,
    )
    return envelope.ok(
        request,
        AuditPage.model_validate({"items": rows, "page": page, "limit": limit, "total": total}),
    )


# ----------------------------------------------------------------------------- password reset


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
    await _run(
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
    user = await _run(
        password_reset.confirm_password_reset,
        token=body.token,
        new_password=body.newPassword,
        meta=request_meta(request),
    )
    return envelope.ok(request, _user(user))


# ----------------------------------------------------------------------------- MFA


@router.post(
    "/mfa/enrol",
    responses=envelope.errors(_409="MFA is already on", _503=DOWN),
)
async def mfa_enrol(request: Request, principal: CurrentUser) -> envelope.Envelope[MfaEnrolment]:
    """Start TOTP enrolment: a secret for an authenticator app; confirm with /mfa/verify."""
    out = await _run(_no_redis(mfa.enrol), actor=principal, meta=request_meta(request))
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
    codes = await _run(
        _no_redis(mfa.enable), actor=principal, code=body.code, meta=request_meta(request)
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
    await _run(
        _no_redis(mfa.disable),
        actor=principal,
        password=body.password,
        code=body.code,
        meta=request_meta(request),
    )
    request.state.audited = True
    user = await _run(_no_redis(repo.get_user), tenant=principal.tenant, user_id=principal.user_id)
    assert user is not None
    return envelope.ok(request, _user(user))
