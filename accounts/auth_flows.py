"""Signing in and out: login (password, lockout, MFA), refresh-token rotation with reuse
detection, logout (password reset by mail: accounts/password_reset.py).

Functions run in a worker thread on an autocommit psycopg connection (so a failed login's
counter and audit row persist although the call then raises) and a blocking Redis client.
Multi-row writes are wrapped in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from accounts import mfa, passwords, repo, sessions
from accounts.audit import RequestMeta, record
from accounts.principal import Principal
from accounts.ratelimit import check_login_rate
from accounts.secrets import decrypt, jwt_secret, token_hash
from accounts.tokens import issue_access_token, new_opaque_token
from core.errors import TooManyRequests, Unauthorized
from core.settings import get_settings

WRONG_CREDENTIALS = "wrong e-mail address or password"


@dataclass(frozen=True)
class TokenPair:
    """What a successful login or refresh hands back."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    session_id: str
    user: repo.User

    def public(self) -> dict[str, Any]:
        return {
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "tokenType": "bearer",
            "expiresIn": self.expires_in,
            "sessionId": self.session_id,
            "user": self.user.public(),
        }


def _issue(
    conn: psycopg.Connection,
    r: redis.Redis,
    user: repo.User,
    *,
    session_id: str,
    new_session: bool,
    meta: RequestMeta,
) -> TokenPair:
    """A refresh token in the session's family, the session key, and an access token."""
    s = get_settings()
    refresh = new_opaque_token()
    ttl = s.refresh_token_days * 86400
    repo.insert_refresh_token(
        conn,
        token_hash=token_hash(refresh),
        tenant=user.tenant_id,
        user_id=user.user_id,
        family_id=session_id,
        days=s.refresh_token_days,
    )
    if new_session:
        sessions.open_session(
            r,
            session_id=session_id,
            tenant=user.tenant_id,
            user_id=user.user_id,
            role=user.role,
            ttl_s=ttl,
            ip=meta.ip,
            user_agent=meta.user_agent,
        )
    elif not sessions.renew_session(r, session_id=session_id, ttl_s=ttl):
        raise Unauthorized("the session has ended: sign in again", code="SESSION_ENDED")
    access = issue_access_token(
        secret=jwt_secret(),
        user_id=user.user_id,
        tenant=user.tenant_id,
        role=user.role,
        stores=user.store_ids,
        session_id=session_id,
        minutes=s.access_token_minutes,
        email=user.email,
    )
    return TokenPair(access.token, refresh, s.access_token_minutes * 60, session_id, user)


def _second_factor_ok(
    conn: psycopg.Connection,
    r: redis.Redis,
    user: repo.User,
    *,
    otp: str | None,
    recovery_code: str | None,
) -> bool:
    secret = decrypt(user.mfa_secret) if user.mfa_secret else None
    if otp and secret and mfa.totp_ok(secret, otp):
        return sessions.mark_code_used(
            r, tenant=user.tenant_id, user_id=user.user_id, code=otp.strip()
        )
    if recovery_code:
        return repo.use_recovery_code(
            conn,
            tenant=user.tenant_id,
            user_id=user.user_id,
            code_hash=mfa.recovery_hash(recovery_code),
        )
    return False


def login(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    tenant: str,
    email: str,
    password: str,
    meta: RequestMeta,
    otp: str | None = None,
    recovery_code: str | None = None,
) -> TokenPair:
    """Check the password (and second factor), then open a session.

    Per client IP at most `login_ip_per_minute` attempts (429). `login_max_failures` wrong
    passwords or codes in a row lock the account for `login_lockout_minutes` (429
    `ACCOUNT_LOCKED` with Retry-After, even with the right password). An account with MFA and
    no code → 401 `MFA_REQUIRED` (not counted as a failure)."""
    s = get_settings()
    email = email.strip().lower()
    try:
        check_login_rate(r, ip=meta.ip or "unknown", per_minute=s.login_ip_per_minute)
    except TooManyRequests:
        record(conn, tenant=tenant, action="login", outcome="throttled", meta=meta, target=email)
        raise
    user = repo.get_user_by_email(conn, tenant=tenant, email=email)
    if user is None:
        passwords.verify_password(None, password)  # same cost as a wrong password
        record(
            conn,
            tenant=tenant,
            action="login",
            outcome="failed",
            meta=meta,
            target=email,
            details={"reason": "unknown user"},
        )
        raise Unauthorized(WRONG_CREDENTIALS, code="INVALID_CREDENTIALS")
    now = datetime.now(UTC)
    if user.locked_until and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        record(
            conn,
            tenant=tenant,
            action="login",
            outcome="locked",
            meta=meta,
            actor_id=user.user_id,
            target=user.user_id,
        )
        raise TooManyRequests(
            f"the account is locked after {s.login_max_failures} failed sign-ins; retry in "
            f"{wait} s or reset the password",
            retry_after=wait,
            code="ACCOUNT_LOCKED",
        )
    if not passwords.verify_password(user.hashed_password, password):
        _fail(conn, user, meta, reason="wrong password")
    if user.mfa_enabled:
        if not otp and not recovery_code:
            record(
                conn,
                tenant=tenant,
                action="login",
                outcome="mfa_required",
                meta=meta,
                actor_id=user.user_id,
                target=user.user_id,
            )
            raise Unauthorized(
                "this account uses two-factor sign-in: send `otp` (the authenticator's code) "
                "or a `recoveryCode` with the password",
                code="MFA_REQUIRED",
                details={"mfa": True},
            )
        if not _second_factor_ok(conn, r, user, otp=otp, recovery_code=recovery_code):
            _fail(conn, user, meta, reason="wrong second factor")
    if user.disabled:
        record(
            conn,
            tenant=tenant,
            action="login",
            outcome="failed",
            meta=meta,
            actor_id=user.user_id,
            target=user.user_id,
            details={"reason": "disabled"},
        )
        raise Unauthorized("the account is disabled", code="ACCOUNT_DISABLED")
    with conn.transaction():
        repo.record_login_success(conn, tenant=tenant, user_id=user.user_id)
        if passwords.needs_rehash(user.hashed_password):
            repo.update_user(
                conn,
                tenant=tenant,
                user_id=user.user_id,
                hashed_password=passwords.hash_password(password),
            )
        pair = _issue(conn, r, user, session_id=uuid.uuid4().hex, new_session=True, meta=meta)
        record(
            conn,
            tenant=tenant,
            action="login",
            outcome="ok",
            meta=meta,
            actor_id=user.user_id,
            target=user.user_id,
            details={
                "sessionId": pair.session_id,
                "mfa": user.mfa_enabled,
                **({"recoveryCode": True} if recovery_code and not otp else {}),
            },
        )
    return pair


def _fail(conn: psycopg.Connection, user: repo.User, meta: RequestMeta, *, reason: str) -> None:
    s = get_settings()
    locked = repo.record_login_failure(
        conn,
        tenant=user.tenant_id,
        user_id=user.user_id,
        max_failures=s.login_max_failures,
        lockout_minutes=s.login_lockout_minutes,
    )
    record(
        conn,
        tenant=user.tenant_id,
        action="login",
        outcome="locked" if locked else "failed",
        meta=meta,
        actor_id=user.user_id,
        target=user.user_id,
        details={"reason": reason, **({"lockedUntil": locked.isoformat()} if locked else {})},
    )
    message = WRONG_CREDENTIALS if reason == "wrong password" else "wrong one-time code"
    if locked:
        message += f"; the account is now locked for {s.login_lockout_minutes} minutes"
    raise Unauthorized(message, code="INVALID_CREDENTIALS")


def refresh(
    conn: psycopg.Connection, r: redis.Redis, *, refresh_token: str, meta: RequestMeta
) -> TokenPair:
    """Rotate: the presented refresh token is spent and a new one (same family) comes back
    with a fresh access token carrying the user's current role and stores. Presenting a
    token that was already rotated means it leaked: the whole family (session) is revoked."""
    hashed = token_hash(refresh_token)
    row = repo.get_refresh_token(conn, token_hash=hashed)
    if row is None:
        raise Unauthorized("unknown refresh token", code="INVALID_REFRESH_TOKEN")

    def reject(outcome: str, message: str, code: str, *, revoke: bool) -> Unauthorized:
        if revoke:
            with conn.transaction():
                repo.revoke_family(conn, family_id=row.family_id, reason=outcome)
            sessions.close_sessions(r, [row.family_id])
        record(
            conn,
            tenant=row.tenant_id,
            action="token.refresh",
            outcome=outcome,
            meta=meta,
            actor_id=row.user_id,
            target=row.family_id,
        )
        return Unauthorized(message, code=code)

    if row.revoked_at is not None:
        raise reject(
            "rejected", "the refresh token was revoked", "REFRESH_TOKEN_REVOKED", revoke=False
        )
    if row.rotated_at is not None or not repo.mark_rotated(conn, token_hash=hashed):
        if row.expires_at <= datetime.now(UTC) and row.rotated_at is None:
            raise reject(
                "rejected", "the refresh token has expired", "REFRESH_TOKEN_EXPIRED", revoke=True
            )
        raise reject(
            "reuse_detected",
            "this refresh token was already used: the session is revoked, sign in again",
            "REFRESH_TOKEN_REUSED",
            revoke=True,
        )
    user = repo.get_user(conn, tenant=row.tenant_id, user_id=row.user_id)
    if user is None or user.disabled:
        raise reject("rejected", "the account is disabled", "ACCOUNT_DISABLED", revoke=True)
    try:
        with conn.transaction():
            pair = _issue(conn, r, user, session_id=row.family_id, new_session=False, meta=meta)
    except Unauthorized as exc:  # the session key is gone (logged out, expired)
        raise reject("rejected", exc.message, exc.code, revoke=True) from None
    record(
        conn,
        tenant=row.tenant_id,
        action="token.refresh",
        outcome="ok",
        meta=meta,
        actor_id=row.user_id,
        target=row.family_id,
    )
    return pair


def logout(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    principal: Principal,
    meta: RequestMeta,
    everywhere: bool = False,
) -> list[str]:
    """End the caller's session (or every session of theirs): its refresh tokens are revoked
    and its Redis key deleted, so its access tokens stop working at once."""
    with conn.transaction():
        if everywhere:
            closed = repo.revoke_user_families(
                conn, tenant=principal.tenant, user_id=principal.user_id, reason="logout"
            )
        else:
            closed = []
        if principal.session_id:
            repo.revoke_family(conn, family_id=principal.session_id, reason="logout")
            closed = sorted({*closed, principal.session_id})
        record(
            conn,
            tenant=principal.tenant,
            action="logout",
            outcome="ok",
            meta=meta,
            actor=principal,
            target=principal.user_id,
            details={"sessions": len(closed), "everywhere": everywhere},
        )
    sessions.close_sessions(r, closed)
    return closed


def end_all_sessions(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    tenant: str,
    user_id: str,
    reason: str,
    keep: str | None = None,
) -> int:
    """Revoke every session of a user but `keep` (role change, password change or reset)."""
    families = repo.revoke_user_families(
        conn, tenant=tenant, user_id=user_id, reason=reason, keep=keep
    )
    sessions.close_sessions(r, families)
    return len(families)
