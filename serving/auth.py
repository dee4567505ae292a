"""Authentication and authorization of every request: one app-wide dependency, one table.

`authorize` runs before every route (FastAPI(dependencies=...) in serving/app.py, and as a
sub-dependency of `TenantDep` / `PrincipalDep`, cached per request). It finds the matched
route's permission in `accounts.permissions` (method + path template; families by prefix):

- a bearer token, when sent, is always verified: signature and expiry (PyJWT, HS256 only),
  then ONE Redis command (a Lua script) checks that the token's session still exists and counts
  the per-user and per-IP rate limits (429 + Retry-After past them). Any failure is 401 with
  `WWW-Authenticate: Bearer` — never a silent fall-back to anonymous. Public routes (login,
  refresh, password reset, health, docs) ignore the header, so a client that attaches an
  expired token to every call can still refresh.
- no token: public routes pass; with `auth_required` off (this slice's default) every data
  route acts as before (the X-Tenant-ID / default tenant, no rate limit); account routes
  (logout, profile, roles, register, MFA, audit) always need a token; with `auth_required`
  on every non-public route answers 401.
- with a principal: a role without the route's permission gets 403, and a non-super-admin
  naming another tenant in X-Tenant-ID gets 403.
- WebSocket connections pass through: `/ws` verifies its `?token=` with the same runtime's
  `verify_token` (browsers cannot send headers on a WebSocket) and closes with its own codes.

`AuditMiddleware` records every non-GET request of an authenticated caller in `audit_log`
(method, path, status, who, from where), unless the route recorded its own richer row.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import anyio
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts import ratelimit
from accounts.audit import RequestMeta
from accounts.permissions import (
    AUTHENTICATED,
    MANAGE_TENANTS,
    MANAGE_USERS,
    PUBLIC,
    READ_AUDIT,
    SUPER_ADMIN,
    permission_for,
)
from accounts.principal import Principal
from accounts.sessions import STORE_DOWN, session_key, store_down
from accounts.tokens import LEEWAY_S, decode_access_token
from core.aioredis_clients import LoopClients
from core.errors import Forbidden, TooManyRequests, Unauthorized
from core.settings import Settings, get_settings
from core.tenants import validate_tenant

log = logging.getLogger(__name__)

TOKEN_URL = "/api/v1/users/token"
# Routes that never act anonymously, whatever `auth_required` says: they act on an account.
ALWAYS_AUTH = frozenset({AUTHENTICATED, MANAGE_USERS, MANAGE_TENANTS, READ_AUDIT})
UNMAPPED = MANAGE_TENANTS  # fail closed: a route missing from the table is super-admin only
REDIS_TIMEOUT_S = 0.5
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DECODED_TOKENS = 10_000  # verified tokens kept per replica


class BearerScheme(OAuth2PasswordBearer):
    """OAuth2 password flow for /docs' Authorize button; hands over the raw Authorization
    header (any scheme) so that `authorize` can reject what it cannot use instead of
    treating it as anonymous."""

    async def __call__(self, conn: HTTPConnection) -> str | None:  # type: ignore[override]
        return conn.headers.get("authorization")


bearer = BearerScheme(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    description="Sign in with e-mail (username) and password; `client_id` = tenant (optional), "
    "`client_secret` = the authenticator's code when the account uses MFA.",
)


def _sessions_redis_url() -> str:
    from accounts.sessions import redis_url

    return redis_url()


class AuthRuntime:
    """Per-app state of the auth layer: settings snapshot, Redis clients, the route table."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth_required = settings.auth_required
        self._redis = LoopClients(_sessions_redis_url, timeout_s=REDIS_TIMEOUT_S)
        self._paths: dict[int, str] = {}
        self._permissions: dict[tuple[int, str], str] = {}
        # Verified tokens (signature and claims; ~0.3 ms each with PyJWT): a client sends the
        # same token for its 15 minutes, so each is decoded once per replica. Expiry is still
        # checked on every request, and the session (logout, revocation) in Redis.
        self._decoded: dict[tuple[str, str], Principal] = {}

    # ------------------------------------------------------------------ routes
    def permission(self, conn: HTTPConnection) -> str:
        """The permission the matched route needs (the table's; UNMAPPED if missing)."""
        route = conn.scope.get("route")
        method = (
            conn.scope.get("method", "WEBSOCKET") if conn.scope["type"] == "http" else "WEBSOCKET"
        )
        key = (id(route), method)
        found = self._permissions.get(key)
        if found is None:
            path = self.path_of(conn.app, route)
            found = (permission_for(method, path) if path else None) or UNMAPPED
            self._permissions[key] = found
        return found

    def path_of(self, app: Any, route: Any) -> str | None:
        """The full path template of a matched route (a router's prefix included)."""
        if route is None:
            return None
        found = self._paths.get(id(route))
        if found is None:
            for ctx in iter_route_contexts(app.routes):
                self._paths[id(ctx.original_route)] = ctx.path_format or ""
                self._paths[id(ctx.route)] = ctx.path_format or ""
            found = self._paths.get(id(route)) or getattr(route, "path_format", None)
        return found

    # ------------------------------------------------------------------ redis
    def _client(self) -> aioredis.Redis:
        return self._redis.get()

    # ------------------------------------------------------------------ tokens
    async def verify(self, conn: HTTPConnection, header: str) -> Principal:
        """The principal of an `Authorization: Bearer …` header; 401 / 429 / 503 otherwise."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "send the access token as `Authorization: Bearer <token>`",
                code="INVALID_TOKEN",
                invalid_token=True,
            )
        ip = conn.client.host if conn.client else "unknown"
        return await self.verify_token(token, ip=ip)

    def _decode(self, token: str) -> Principal:
        """The token's principal: from the replica's cache of verified tokens while it has
        not expired (with the same leeway as a full decode), else verified by PyJWT."""
        from accounts.secrets import jwt_secret

        secret = jwt_secret()
        key = (secret, token)
        principal = self._decoded.get(key)
        if principal is not None and time.time() <= (principal.expires_at or 0) + LEEWAY_S:
            return principal
        self._decoded.pop(key, None)
        principal = decode_access_token(token, secret=secret)  # raises 401 on a bad one
        if len(self._decoded) >= DECODED_TOKENS:
            self._decoded.clear()  # bounded: a flood of distinct tokens only costs decodes
        self._decoded[key] = principal
        return principal

    async def verify_token(self, token: str, *, ip: str | None = None) -> Principal:
        """Signature and claims, then one Redis command (`ratelimit.REQUEST_CHECK`): the
        session still exists and (with `ip`) the per-user and per-IP counters are within
        their limits."""
        principal = self._decode(token)
        s = self.settings
        window = ratelimit.current_window(s.rate_limit_window_s)
        keys = [session_key(principal.session_id or "")]
        if ip is not None:
            keys.append(ratelimit.user_key(window, principal.tenant, principal.user_id))
            keys.append(ratelimit.ip_key(window, ip))
        expiry = 2 * s.rate_limit_window_s
        try:
            client = self._client()
            try:
                results = await client.evalsha(
                    ratelimit.REQUEST_CHECK_SHA, len(keys), *keys, expiry
                )
            except redis.exceptions.NoScriptError:  # first call on this server (or flushed)
                results = await client.eval(ratelimit.REQUEST_CHECK, len(keys), *keys, expiry)
        except STORE_DOWN as exc:
            raise store_down(exc) from None
        if not results[0]:
            raise Unauthorized(
                "the session of this token has ended (signed out or revoked): sign in again",
                code="SESSION_ENDED",
                invalid_token=True,
            )
        if ip is not None:
            user_count, ip_count = results[1], results[2]
            if user_count > s.rate_limit_user or ip_count > s.rate_limit_ip:
                which = "user" if user_count > s.rate_limit_user else "client address"
                limit = s.rate_limit_user if which == "user" else s.rate_limit_ip
                raise TooManyRequests(
                    f"rate limit of this {which}: {limit} requests per "
                    f"{s.rate_limit_window_s} s; retry in {window.retry_after} s",
                    retry_after=window.retry_after,
                    details={"limit": limit, "window_s": s.rate_limit_window_s, "per": which},
                )
        return principal


def runtime(app: Any) -> AuthRuntime:
    """The app's auth runtime (made on first use from the settings of that moment)."""
    rt = getattr(app.state, "auth", None)
    if rt is None:
        rt = AuthRuntime(get_settings())
        app.state.auth = rt
    return rt


def request_meta(conn: HTTPConnection) -> RequestMeta:
    return RequestMeta(
        ip=conn.client.host if conn.client else None,
        user_agent=conn.headers.get("user-agent"),
        request_id=getattr(conn.state, "request_id", None),
    )


def _check_tenant(conn: HTTPConnection, principal: Principal) -> str:
    """The tenant the caller acts on: theirs, or for a super admin the X-Tenant-ID one."""
    named = conn.headers.get("x-tenant-id")
    if not named or named == principal.tenant:
        return principal.tenant
    if principal.role == SUPER_ADMIN:
        return validate_tenant(named)
    raise Forbidden(
        f"your account belongs to tenant {principal.tenant!r}: it cannot act on tenant {named!r}",
        details={"tenant": named},
    )


async def authorize(
    conn: HTTPConnection, authorization: Annotated[str | None, Depends(bearer)] = None
) -> Principal | None:
    """The app-wide check (see the module docstring); returns the caller, None if anonymous."""
    state = conn.state
    if getattr(state, "authorized", False):
        return getattr(state, "principal", None)
    if conn.scope["type"] == "websocket":
        return None  # /ws authenticates its `?token=` itself (serving/routers/live.py)
    rt = runtime(conn.app)
    permission = rt.permission(conn)
    principal = None
    if authorization and permission != PUBLIC:
        principal = await rt.verify(conn, authorization)
    elif permission != PUBLIC and (rt.auth_required or permission in ALWAYS_AUTH):
        raise Unauthorized(
            "sign in first: this route needs `Authorization: Bearer <token>` "
            "(POST /api/v1/users/login)",
            code="UNAUTHENTICATED",
        )
    if principal is not None:
        state.principal = principal  # a denied write is audited too
        state.tenant = _check_tenant(conn, principal)
        if permission not in (PUBLIC, AUTHENTICATED) and not principal.can(permission):
            raise Forbidden(
                f"the role {principal.role} lacks the permission {permission} this route needs",
                details={"permission": permission, "role": principal.role},
            )
    state.principal = principal
    state.authorized = True
    return principal


AuthDep = Annotated[Principal | None, Depends(authorize)]


async def require_principal(principal: AuthDep) -> Principal:
    """The signed-in caller (for account routes: `authorize` already answered 401 if none)."""
    if principal is None:  # pragma: no cover - authorize raises first for these routes
        raise Unauthorized("sign in first", code="UNAUTHENTICATED")
    return principal


CurrentUser = Annotated[Principal, Depends(require_principal)]


# ----------------------------------------------------------------------------- audit of writes


class AuditMiddleware:
    """Writes an `http.<METHOD>` audit row for every write of a signed-in caller: a non-GET
    request whose route needs more than a `read:` permission (after the response went out; a
    failing audit write is logged, the request unaffected)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        code = 500

        async def send_and_see(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            if principal is not None and not state.get("audited") and _writes(scope):
                await _audit_write(scope, state, principal, code)


def _writes(scope: Scope) -> bool:
    """Whether the request's route changes something: a POST that only reads (a prediction,
    a basket analysis) needs a `read:` permission and is not a write to audit."""
    conn = HTTPConnection(scope)
    runtime = getattr(conn.app.state, "auth", None)
    if runtime is None or scope.get("route") is None:
        return True
    return not runtime.permission(conn).startswith("read:")


async def _audit_write(scope: Scope, state: dict, principal: Principal, code: int) -> None:
    from accounts.audit import record
    from core.db import connect

    conn = HTTPConnection(scope)
    meta = request_meta(conn)
    route = scope.get("route")
    template = getattr(route, "path_format", None)

    def write() -> None:
        with connect(autocommit=True) as db:
            record(
                db,
                tenant=state.get("tenant") or principal.tenant,
                action=f"http.{scope['method']}",
                outcome="ok" if code < 400 else "denied" if code in (401, 403) else "error",
                meta=meta,
                actor=principal,
                target=scope.get("path"),
                details={"status": code, "route": template},
            )

    try:
        await anyio.to_thread.run_sync(write)
    except Exception as exc:  # the request already answered: log and keep serving
        log.warning("audit row not written (%s): %s %s", exc, scope["method"], scope["path"])


def install(app: FastAPI) -> None:
    """The auth runtime and the audit middleware (the dependency is given to FastAPI())."""
    app.state.auth = AuthRuntime(get_settings())
    app.add_middleware(AuditMiddleware)
