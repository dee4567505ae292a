"""Managing accounts: the first admin (CLI), registration, profiles, roles (MFA enrolment:
accounts/mfa.py).

Who may register whom: a tenant's first account comes from `retailpulse users create-admin`
(no HTTP route creates an account without a caller); afterwards `POST /api/v1/users/register`
needs `manage:users` — a tenant admin creates tenant admins, store managers, analysts and
sales associates of its own tenant, a super admin any role in any tenant. The same rule
governs role changes, and nobody changes their own role.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import redis

from accounts import passwords, repo
from accounts.audit import CLI, RequestMeta, record
from accounts.auth_flows import end_all_sessions
from accounts.permissions import (
    MANAGE_USERS,
    ROLES,
    STORE_SCOPED_ROLES,
    SUPER_ADMIN,
    TENANT_ADMIN,
    can_grant,
    permissions_of,
)
from accounts.principal import Principal
from core.errors import Forbidden, NotFoundError, ValidationFailed
from core.tenants import validate_tenant
from core.values import EMAIL_PATTERN


def check_email(email: str) -> str:
    """`email` without surrounding blanks, or ValidationFailed: an account whose address the
    API refuses (e.g. `--email admin`) could never sign in."""
    email = email.strip()
    if len(email) > 320 or not re.fullmatch(EMAIL_PATTERN, email):
        raise ValidationFailed(
            f"not an e-mail address: {email!r} (expected name@domain, e.g. admin@example.com)",
            details={"field": "email"},
        )
    return email


def check_role_and_stores(role: str, store_ids: list[str] | None) -> list[str] | None:
    """Store managers and sales associates need their stores; other roles see every store."""
    if role not in ROLES:
        raise ValidationFailed(
            f"unknown role {role!r}: one of {', '.join(ROLES)}", details={"field": "role"}
        )
    if role in STORE_SCOPED_ROLES:
        if not store_ids:
            raise ValidationFailed(
                f"a {role} needs `storeIds`: the stores they work in",
                details={"field": "storeIds"},
            )
        return sorted(set(store_ids))
    if store_ids:
        raise ValidationFailed(
            f"a {role} sees every store of the tenant: leave `storeIds` out",
            details={"field": "storeIds"},
        )
    return None


def _grant_check(actor: Principal, role: str) -> None:
    if not can_grant(actor.role, role):
        raise Forbidden(
            f"a {actor.role} may not create or assign the role {role}",
            details={"role": role},
        )


def create_admin(
    conn: psycopg.Connection,
    *,
    tenant: str,
    email: str,
    password: str,
    name: str | None = None,
    super_admin: bool = False,
) -> repo.User:
    """The bootstrap account of a tenant (CLI only): a tenant admin, or a super admin."""
    validate_tenant(tenant)
    email = check_email(email)
    passwords.check_password_rule(password, email=email)
    role = SUPER_ADMIN if super_admin else TENANT_ADMIN
    with conn.transaction():
        user = repo.insert_user(
            conn,
            tenant=tenant,
            user_id=uuid.uuid4().hex,
            email=email,
            name=name,
            role=role,
            store_ids=None,
            hashed_password=passwords.hash_password(password),
        )
        record(
            conn,
            tenant=tenant,
            action="user.bootstrap",
            outcome="ok",
            meta=CLI,
            actor_id="cli",
            target=user.user_id,
            details={"role": role, "email": user.email},
        )
    return user


def register(
    conn: psycopg.Connection,
    *,
    actor: Principal,
    tenant: str,
    email: str,
    password: str,
    role: str,
    name: str | None,
    store_ids: list[str] | None,
    meta: RequestMeta,
) -> repo.User:
    """A new account in `tenant` created by `actor` (who holds manage:users there)."""
    stores = check_role_and_stores(role, store_ids)
    _grant_check(actor, role)
    passwords.check_password_rule(password, email=email)
    with conn.transaction():
        user = repo.insert_user(
            conn,
            tenant=tenant,
            user_id=uuid.uuid4().hex,
            email=email,
            name=name,
            role=role,
            store_ids=stores,
            hashed_password=passwords.hash_password(password),
        )
        record(
            conn,
            tenant=tenant,
            action="user.register",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user.user_id,
            details={"role": role, "email": user.email, "storeIds": stores},
        )
    return user


def _target(conn: psycopg.Connection, tenant: str, user_id: str) -> repo.User:
    user = repo.get_user(conn, tenant=tenant, user_id=user_id)
    if user is None:
        raise NotFoundError(
            f"no user {user_id!r} in tenant {tenant!r}", details={"userId": user_id}
        )
    return user


def _self_or_manager(actor: Principal, tenant: str, user_id: str) -> bool:
    """True when acting on oneself; raises Forbidden unless the actor manages users."""
    if actor.user_id == user_id and actor.tenant == tenant:
        return True
    if not actor.can(MANAGE_USERS):
        raise Forbidden(
            "only your own account, unless you hold manage:users",
            details={"permission": MANAGE_USERS},
        )
    return False


def view_permissions(
    conn: psycopg.Connection, *, actor: Principal, tenant: str, user_id: str
) -> dict[str, Any]:
    _self_or_manager(actor, tenant, user_id)
    user = _target(conn, tenant, user_id)
    return {
        "userId": user.user_id,
        "tenant": user.tenant_id,
        "role": user.role,
        "permissions": sorted(permissions_of(user.role)),
        "storeIds": user.store_ids,
        "allTenants": user.role == SUPER_ADMIN,
    }


def update_profile(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    actor: Principal,
    tenant: str,
    user_id: str,
    meta: RequestMeta,
    name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    current_password: str | None = None,
) -> repo.User:
    """Change name, e-mail or password. Your own password change needs the current one and
    ends your other sessions; an admin (manage:users, may grant the user's role) may set
    another's password, which ends all of theirs."""
    own = _self_or_manager(actor, tenant, user_id)
    user = _target(conn, tenant, user_id)
    if not own:
        _grant_check(actor, user.role)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if email is not None and email.strip().lower() != user.email:
        changes["email"] = email
    if password is not None:
        if own and not (
            current_password and passwords.verify_password(user.hashed_password, current_password)
        ):
            raise Forbidden(
                "changing your password needs `currentPassword`, the one you sign in with",
                details={"field": "currentPassword"},
            )
        passwords.check_password_rule(password, email=changes.get("email", user.email))
        changes["hashed_password"] = passwords.hash_password(password)
    if not changes:
        return user
    with conn.transaction():
        updated = repo.update_user(conn, tenant=tenant, user_id=user_id, **changes)
        ended = 0
        if "hashed_password" in changes:
            ended = end_all_sessions(
                conn,
                r,
                tenant=tenant,
                user_id=user_id,
                reason="password_change",
                keep=actor.session_id if own else None,
            )
        record(
            conn,
            tenant=tenant,
            action="user.profile",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user_id,
            details={
                "fields": sorted(k.replace("hashed_password", "password") for k in changes),
                "sessionsEnded": ended,
            },
        )
    assert updated is not None
    return updated


def change_role(
    conn: psycopg.Connection,
    r: redis.Redis,
    *,
    actor: Principal,
    tenant: str,
    user_id: str,
    role: str,
    store_ids: list[str] | None,
    meta: RequestMeta,
) -> repo.User:
    """Give a user another role (and stores). Their sessions end, so the change applies at
    once rather than when their access token expires."""
    if actor.user_id == user_id and actor.tenant == tenant:
        raise Forbidden("you cannot change your own role", details={"userId": user_id})
    stores = check_role_and_stores(role, store_ids)
    user = _target(conn, tenant, user_id)
    _grant_check(actor, role)
    _grant_check(actor, user.role)
    with conn.transaction():
        updated = repo.update_user(
            conn, tenant=tenant, user_id=user_id, role=role, store_ids=stores
        )
        ended = end_all_sessions(conn, r, tenant=tenant, user_id=user_id, reason="role_change")
        record(
            conn,
            tenant=tenant,
            action="user.role",
            outcome="ok",
            meta=meta,
            actor=actor,
            target=user_id,
            details={
                "from": {"role": user.role, "storeIds": user.store_ids},
                "to": {"role": role, "storeIds": stores},
                "sessionsEnded": ended,
            },
        )
    assert updated is not None
    return updated
