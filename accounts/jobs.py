"""Account jobs the CLI runs (and tests call): the first admin of a tenant, a token."""

from __future__ import annotations

from accounts import auth_flows, users
from accounts.audit import CLI
from accounts.repo import User
from accounts.sessions import sync_redis
from core.db import connect
from core.settings import get_settings


def create_admin(
    *,
    email: str,
    password: str,
    tenant: str | None = None,
    super_admin: bool = False,
    name: str | None = None,
) -> User:
    """Create the bootstrap admin of `tenant` (a tenant admin, or with `super_admin` an admin
    of every tenant). Conflict if the address already has an account there."""
    with connect(autocommit=True) as conn:
        return users.create_admin(
            conn,
            tenant=tenant or get_settings().tenant,
            email=email,
            password=password,
            name=name,
            super_admin=super_admin,
        )


def issue_token(
    *, email: str, password: str, tenant: str | None = None, otp: str | None = None
) -> auth_flows.TokenPair:
    """Sign in as the API does (password, lockout, MFA) and return the token pair."""
    with connect(autocommit=True) as conn:
        return auth_flows.login(
            conn,
            sync_redis(),
            tenant=tenant or get_settings().tenant,
            email=email,
            password=password,
            otp=otp,
            meta=CLI,
        )
