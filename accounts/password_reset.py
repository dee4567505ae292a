"""Password reset by e-mail: a one-time token (Redis, `pwreset:{sha256}`, TTL
`password_reset_minutes`) mailed to the address; confirming it sets the new password, unlocks
the account and ends all its sessions."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import redis

from accounts import passwords, repo, sessions
from accounts.audit import RequestMeta, record
from accounts.auth_flows import end_all_sessions
from accounts.ratelimit import check_login_rate
from accounts.secrets import token_hash
from accounts.tokens import new_opaque_token
from core.errors import ValidationFailed
from core.settings import get_settings


def request_password_reset(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    tenant: str,
    email: str,
    meta: RequestMeta,
    send: Any,
) -> None:
    """Mail a one-time reset token to the address if it has an account. The answer is the
    same whether or not it does (no account discovery); `send(to, subject, body)` mails."""
    s = get_settings()
    check_login_rate(r, ip=meta.ip or "unknown", per_minute=s.login_ip_per_minute)
    email = email.strip().lower()
    user = repo.get_user_by_email(conn, tenant=tenant, email=email)
    if user is None or user.disabled:
        record(
            conn,
            tenant=tenant,
            action="password_reset.request",
            outcome="ignored",
            meta=meta,
            target=email,
            details={"reason": "no such active account"},
        )
        return
    token = new_opaque_token()
    ttl = s.password_reset_minutes * 60
    value = json.dumps({"tenant": tenant, "userId": user.user_id})
    r.set(sessions.reset_key(token_hash(token)), value, ex=ttl)
    if s.password_reset_url:
        how = f"Open {s.password_reset_url}?token={token}"
    else:
        how = (
            f"POST it with your new password to /api/v1/users/password-reset/confirm:\n\n"
            f"    token: {token}"
        )
    body = (
        f"Someone asked to reset the RetailPulse password of {email} (tenant {tenant}).\n\n"
        f"{how}\n\nThe token works once, within {s.password_reset_minutes} minutes. If you did "
        "not ask for this, ignore this message: your password stays as it is.\n"
    )
    send(email, "RetailPulse password reset", body)
    record(
        conn,
        tenant=tenant,
        action="password_reset.request",
        outcome="sent",
        meta=meta,
        actor_id=user.user_id,
        target=user.user_id,
    )


def confirm_password_reset(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    token: str,
    new_password: str,
    meta: RequestMeta,
) -> repo.User:
    """Set the new password with a mailed token (once); unlocks the account and ends every
    session of it."""
    key = sessions.reset_key(token_hash(token))
    pending = r.get(key)
    if pending is None:
        raise ValidationFailed(
            "invalid or expired password-reset token: request a new one",
            details={"field": "token"},
        )
    data = json.loads(pending)
    user = repo.get_user(conn, tenant=data["tenant"], user_id=data["userId"])
    if user is None:
        raise ValidationFailed("invalid password-reset token", details={"field": "token"})
    passwords.check_password_rule(new_password, email=user.email)
    if r.getdel(key) is None:  # spent by a concurrent confirm
        raise ValidationFailed(
            "the password-reset token was already used", details={"field": "token"}
        )
    with conn.transaction():
        updated = repo.update_user(
            conn,
            tenant=user.tenant_id,
            user_id=user.user_id,
            hashed_password=passwords.hash_password(new_password),
            failed_logins=0,
            locked_until=None,
        )
        ended = end_all_sessions(
            conn, r, tenant=user.tenant_id, user_id=user.user_id, reason="password_reset"
        )
        record(
            conn,
            tenant=user.tenant_id,
            action="password_reset.confirm",
            outcome="ok",
            meta=meta,
            actor_id=user.user_id,
            target=user.user_id,
            details={"sessionsEnded": ended},
        )
    assert updated is not None
    return updated
