"""Alert rule evaluation: on every ingested batch, stream batch and batch scoring."""

from __future__ import annotations

from core.events import Landed


def on_landed(landed: Landed) -> list:
    """Evaluate the tenant's alert rules against what `landed` changed; returns new alerts."""
    return []
