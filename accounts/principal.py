"""Who is calling: the authenticated user a request acts as."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: their tenant, role, permissions and the stores they may see."""

    user_id: str
    tenant: str
    role: str
    permissions: frozenset[str]
    stores: frozenset[str] | None = None  # None: every store of the tenant
    session_id: str | None = None
    email: str | None = None
    expires_at: float | None = None  # the access token's `exp` (seconds since the epoch)

    def can(self, permission: str) -> bool:
        return permission in self.permissions
