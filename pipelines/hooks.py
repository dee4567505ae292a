"""After data lands: keep the analytics rollups current and evaluate the alert rules.

`in_transaction` runs inside the writer's transaction (rollups change with the data or not at
all); `after_commit` runs once the data is committed (cache invalidation, alert evaluation and
notifications) and never fails the write that called it: its errors are logged.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import psycopg

from core.events import Landed

log = logging.getLogger(__name__)


def in_transaction(conn: psycopg.Connection, landed: Landed) -> None:
    """Bring the tenant's rollups up to date with what `landed` changed (caller's transaction)."""
    if landed.source == "score":
        return
    from analytics.rollups import refresh

    refresh(conn, landed)


def after_commit(landed: Landed) -> None:
    """Invalidate cached analytics and evaluate alert rules for `landed` (errors are logged)."""
    from alerts.engine import on_landed
    from analytics.cache import invalidate

    for name, hook in (("analytics cache", invalidate), ("alert evaluation", on_landed)):
        try:
            hook(landed)
        except Exception:  # the data is committed; a failed follow-up must not undo the load
            log.exception("%s after %s data for tenant %s failed", name, landed.source,
                          landed.tenant)  # fmt: skip


def sales_landed(tenant: str, source: str, timestamps: Any, stores: Any) -> Landed:
    """A `Landed` for new baskets at `timestamps` (UTC) in `stores` (array-likes, same length)."""
    ts = pd.to_datetime(pd.Series(timestamps), utc=True)
    if ts.empty:
        return Landed(tenant=tenant, source=source, first_day=None, last_day=None,
                      stores=frozenset())  # fmt: skip
    return Landed(
        tenant=tenant,
        source=source,
        first_day=ts.min().date(),
        last_day=ts.max().date(),
        stores=frozenset(str(s) for s in pd.unique(pd.Series(stores))),
        transactions=len(ts),
    )
