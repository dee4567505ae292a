"""Rollup tables at each analytics query's grain, refreshed from the warehouse."""

from __future__ import annotations

import psycopg

from core.events import Landed


def refresh(conn: psycopg.Connection, landed: Landed) -> None:
    """Recompute the rollups `landed` touched, inside the caller's transaction."""
    return None
