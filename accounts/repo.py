"""SQL of the accounts tables (users, refresh_tokens, audit_log): keyword-only functions on a
psycopg connection. Every statement names the tenant; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.errors import Conflict

_USER_COLUMNS = (
    "tenant_id, user_id, email, name, role, store_ids, hashed_password, mfa_secret, "
    "mfa_enabled, recovery_code_hashes, failed_logins, locked_until, disabled, last_login_at, "
    "created_at, updated_at"
)


@dataclass(frozen=True)
class User:
    """One account row (the password hash and MFA secret never leave `accounts/`)."""

    tenant_id: str
    user_id: str
    email: str
    name: str | None
    role: str
    store_ids: list[str] | None
    hashed_password: str
    mfa_secret: str | None
    mfa_enabled: bool
    recovery_code_hashes: list[str]
    failed_logins: int
    locked_until: datetime | None
    disabled: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """What the API may show about the account."""
        return {
            "userId": self.user_id,
            "tenant": self.tenant_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "storeIds": self.store_ids,
            "mfaEnabled": self.mfa_enabled,
            "disabled": self.disabled,
            "createdAt": self.created_at,
            "lastLoginAt": self.last_login_at,
        }


def _user(row: dict[str, Any] | None) -> User | None:
    return None if row is None else User(**row)


def get_user(conn: psycopg.Connection, *, tenant: str, user_id: str) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = %s AND user_id = %s",
            (tenant, user_id),
        )
        return _user(cur.fetchone())


def get_user_by_email(conn: psycopg.Connection, *, tenant: str, email: str) -> User | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = %s AND email = %s",
            (tenant, email.strip().lower()),
        )
        return _user(cur.fetchone())


def find_users_by_email(conn: psycopg.Connection, *, email: str) -> list[User]:
    """Accounts with this address in any tenant (the CLI's `users token`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE email = %s ORDER BY tenant_id",
            (email.strip().lower(),),
        )
        return [User(**row) for row in cur.fetchall()]


def count_users(conn: psycopg.Connection, *, tenant: str) -> int:
    row = conn.execute("SELECT count(*) FROM users WHERE tenant_id = %s", (tenant,)).fetchone()
    return int(row[0]) if row else 0


def insert_user(
    conn: psycopg.Connection,
    *,
    tenant: str,
    user_id: str,
    email: str,
    name: str | None,
    role: str,
    store_ids: list[str] | None,
    hashed_password: str,
) -> User:
    """Add an account; Conflict (409) if the tenant already has this address."""
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "INSERT INTO users (tenant_id, user_id, email, name, role, store_ids, "
                "hashed_password, password_changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
                f"RETURNING {_USER_COLUMNS}",
                (tenant, user_id, email.strip().lower(), name, role, store_ids, hashed_password),
            )
            return User(**cur.fetchone())
    except psycopg.errors.UniqueViolation:
        raise Conflict(
            f"tenant {tenant!r} already has a user with e-mail {email.strip().lower()!r}",
            details={"email": email.strip().lower()},
        ) from None


def update_user(
    conn: psycopg.Connection, *, tenant: str, user_id: str, **changes: Any
) -> User | None:
    """Set columns of one account (`name`, `email`, `hashed_password`, `role`, `store_ids`,
    `mfa_secret`, `mfa_enabled`, `recovery_code_hashes`, `disabled`, ...)."""
    allowed = {
        "name",
        "email",
        "hashed_password",
        "role",
        "store_ids",
        "mfa_secret",
        "mfa_enabled",
        "recovery_code_hashes",
        "disabled",
        "failed_logins",
        "locked_until",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if "email" in changes:
        changes["email"] = changes["email"].strip().lower()
    sets = [f"{column} = %s" for column in changes]
    if "hashed_password" in changes:
        sets.append("password_changed_at = now()")
    sets.append("updated_at = now()")
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"UPDATE users SET {', '.join(sets)} WHERE tenant_id = %s AND user_id = %s "
                f"RETURNING {_USER_COLUMNS}",
                (*changes.values(), tenant, user_id),
            )
            return _user(cur.fetchone())
    except psycopg.errors.UniqueViolation:
        raise Conflict(
            f"tenant {tenant!r} already has a user with e-mail {changes.get('email')!r}",
            details={"email": changes.get("email")},
        ) from None


def record_login_failure(
    conn: psycopg.Connection,
    *,
    tenant: str,
    user_id: str,
    max_failures: int,
    lockout_minutes: int,
) -> datetime | None:
    """Count a failed login (atomically); the `max_failures`-th in a row locks the account for
    `lockout_minutes`. Returns the lock's end when this failure locked it."""
    row = conn.execute(
        "UPDATE users SET "
        "locked_until = CASE WHEN failed_logins + 1 >= %(max)s "
        "  THEN now() + make_interval(mins => %(mins)s) ELSE locked_until END, "
        "failed_logins = CASE WHEN failed_logins + 1 >= %(max)s THEN 0 "
        "  ELSE failed_logins + 1 END "
        "WHERE tenant_id = %(tenant)s AND user_id = %(user)s "
        "RETURNING failed_logins = 0 AS locked, locked_until",
        {"max": max_failures, "mins": lockout_minutes, "tenant": tenant, "user": user_id},
    ).fetchone()
    return row[1] if row and row[0] else None


def record_login_success(conn: psycopg.Connection, *, tenant: str, user_id: str) -> None:
    conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() "
        "WHERE tenant_id = %s AND user_id = %s",
        (tenant, user_id),
    )


def use_recovery_code(
    conn: psycopg.Connection, *, tenant: str, user_id: str, code_hash: str
) -> bool:
    """Remove one recovery code (atomically): True if it was there, so each works once."""
    row = conn.execute(
        "UPDATE users SET recovery_code_hashes = array_remove(recovery_code_hashes, %s), "
        "updated_at = now() WHERE tenant_id = %s AND user_id = %s "
        "AND %s = ANY(recovery_code_hashes) RETURNING 1",
        (code_hash, tenant, user_id, code_hash),
    ).fetchone()
    return row is not None


# ----------------------------------------------------------------------------- refresh tokens


@dataclass(frozen=True)
class RefreshToken:
    token_hash: str
    tenant_id: str
    user_id: str
    family_id: str
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


_REFRESH_COLUMNS = "token_hash, tenant_id, user_id, family_id, expires_at, rotated_at, revoked_at"


def insert_refresh_token(
    conn: psycopg.Connection,
    *,
    token_hash: str,
    tenant: str,
    user_id: str,
    family_id: str,
    days: int,
) -> datetime:
    row = conn.execute(
        "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, family_id, expires_at) "
        "VALUES (%s, %s, %s, %s, now() + make_interval(days => %s)) RETURNING expires_at",
        (token_hash, tenant, user_id, family_id, days),
    ).fetchone()
    return row[0]


def get_refresh_token(conn: psycopg.Connection, *, token_hash: str) -> RefreshToken | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = %s", (token_hash,)
        )
        row = cur.fetchone()
    return None if row is None else RefreshToken(**row)


def mark_rotated(conn: psycopg.Connection, *, token_hash: str) -> bool:
    """Mark a live token used (atomically): False if it was already used, revoked or expired
    — two concurrent refreshes with one token cannot both win."""
    row = conn.execute(
        "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = %s "
        "AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now() RETURNING 1",
        (token_hash,),
    ).fetchone()
    return row is not None


def revoke_family(conn: psycopg.Connection, *, family_id: str, reason: str) -> None:
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = %s "
        "WHERE family_id = %s AND revoked_at IS NULL",
        (reason, family_id),
    )


def revoke_user_families(
    conn: psycopg.Connection,
    *,
    tenant: str,
    user_id: str,
    reason: str,
    keep: str | None = None,
) -> list[str]:
    """Revoke every live refresh token of a user but family `keep`; returns the families
    (= session ids) revoked."""
    rows = conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = %s "
        "WHERE tenant_id = %s AND user_id = %s AND revoked_at IS NULL "
        "AND family_id IS DISTINCT FROM %s RETURNING family_id",
        (reason, tenant, user_id, keep),
    ).fetchall()
    return sorted({r[0] for r in rows})


# ----------------------------------------------------------------------------- audit log


def insert_audit(
    conn: psycopg.Connection,
    *,
    tenant: str,
    action: str,
    outcome: str,
    target: str | None = None,
    actor_id: str | None = None,
    actor_role: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (tenant_id, kind, subject_id, payload, actor_id, actor_role, "
        "outcome, ip, user_agent, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            tenant,
            action,
            target,
            Jsonb(details or {}),
            actor_id,
            actor_role,
            outcome,
            ip,
            (user_agent or "")[:512] or None,
            request_id,
        ),
    )


def list_audit(
    conn: psycopg.Connection,
    *,
    tenant: str,
    limit: int,
    offset: int,
    action: str | None = None,
    actor_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the tenant's audit rows, newest first, and how many match in all."""
    where = ["tenant_id = %s"]
    params: list[Any] = [tenant]
    if action:
        where.append("kind = %s")
        params.append(action)
    if actor_id:
        where.append("actor_id = %s")
        params.append(actor_id)
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM audit_log WHERE {clause}", params).fetchone()[0]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, kind AS action, subject_id AS target, outcome, actor_id, actor_role, ip, "
            "user_agent, request_id, payload AS details, created_at FROM audit_log "
            f"WHERE {clause} ORDER BY id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return cur.fetchall(), int(total)
