"""Tenant ids: one rule, checked at every edge (they end up in SQL literals and key names)."""

from __future__ import annotations

import re

from core.errors import ValidationFailed

TENANT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def validate_tenant(tenant: str) -> str:
    """Return `tenant` if it is a valid id, else raise ValidationFailed saying why."""
    if not TENANT_RE.fullmatch(tenant):
        raise ValidationFailed(
            f"invalid tenant id {tenant!r}: use 1-64 letters, digits, '_', '.' or '-'",
            details={"tenant": tenant},
        )
    return tenant
