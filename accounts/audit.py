"""The audit log: who did what, when, from where, and how it ended (table `audit_log`).

Actions recorded by `accounts/` itself: `login` (outcomes ok / failed / locked / throttled /
mfa_required), `logout`, `token.refresh` (ok / rejected / reuse_detected), `user.register`,
`user.bootstrap`, `user.profile`, `user.role`, `password_reset.request` / `.confirm`,
`mfa.enrol` / `.enable` / `.disable`. Every other write through the API by an authenticated
caller is recorded by `serving/auth.py` as `http.<METHOD>` with the path and status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from accounts import repo
from accounts.principal import Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from, for the audit log."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


CLI = RequestMeta(ip=None, user_agent="retailpulse-cli")


def record(
    conn: psycopg.Connection,
    *,
    tenant: str,
    action: str,
    outcome: str,
    meta: RequestMeta,
    actor: Principal | None = None,
    actor_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit row (in the caller's transaction, or at once on an autocommit one)."""
    repo.insert_audit(
        conn,
        tenant=tenant,
        action=action,
        outcome=outcome,
        target=target,
        actor_id=actor.user_id if actor else actor_id,
        actor_role=actor.role if actor else None,
        ip=meta.ip,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
        details=details,
    )
