"""After data lands: keep the analytics rollups current, evaluate the alert rules, tell the
live view.

`in_transaction` runs inside the writer's transaction (rollups change with the data or not at
all); `after_commit` runs once the data is committed (cache invalidation, alert evaluation and
notifications, the `sales.realtime` live event) and never fails the write that called it: its
errors are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


def after_commit(landed: Landed, *, bootstrap: str | None = None) -> None:
    """Invalidate cached analytics, evaluate alert rules and publish the live event for
    `landed` (errors are logged, never raised)."""
    from alerts.engine import on_landed
    from analytics.cache import invalidate

    steps = [("analytics cache", invalidate), ("alert evaluation", on_landed)]
    if landed.source != "score" and landed.transactions:
        steps.append(("live event", lambda ev: _publish_sales(ev, bootstrap)))
    for name, hook in steps:
        try:
            hook(landed)
        except Exception:  # the data is committed; a failed follow-up must not undo the load
            log.exception("%s after %s data for tenant %s failed", name, landed.source,
                          landed.tenant)  # fmt: skip


def _publish_sales(landed: Landed, bootstrap: str | None) -> None:
    from core.bus import event, get_bus

    payload = {
        "source": landed.source,
        "baskets": landed.transactions,
        "revenue": landed.revenue,
        "firstDay": landed.first_day.isoformat() if landed.first_day else None,
        "lastDay": landed.last_day.isoformat() if landed.last_day else None,
        "byStore": dict(landed.details).get("by_store"),
    }
    get_bus(bootstrap).publish([event(landed.tenant, "sales.realtime", payload,
                                      landed.stores or ())])  # fmt: skip


def inventory_moved(tenant: str, levels: Sequence[Any], *, bootstrap: str | None = None) -> None:
    """Publish stock levels the stream just wrote (`InventoryMessage`s) on `inventory.updates`."""
    from core.bus import event, get_bus

    try:
        get_bus(bootstrap).publish([
            event(tenant, "inventory.updates",
                  {"storeId": m.store_id, "productId": m.product_id, "onHand": m.on_hand,
                   "reorderPoint": m.reorder_point, "at": m.timestamp.isoformat()},
                  [m.store_id])
            for m in levels
        ])  # fmt: skip
    except Exception:
        log.exception("inventory live events for tenant %s failed", tenant)


def sales_landed(
    tenant: str, source: str, timestamps: Any, stores: Any, sales: Any | None = None
) -> Landed:
    """A `Landed` for new baskets at `timestamps` (UTC) in `stores`, with their `sales` value
    when known (array-likes of the same length)."""
    ts = pd.to_datetime(pd.Series(timestamps), utc=True)
    if ts.empty:
        return Landed(tenant=tenant, source=source, stores=frozenset())
    store = pd.Series(stores).astype(str).to_numpy()
    details: tuple[tuple[str, object], ...] = ()
    revenue = None
    if sales is not None:
        frame = pd.DataFrame({"store": store, "sales": pd.Series(sales, dtype="float64").values})
        per = frame.groupby("store")["sales"].agg(["size", "sum"])
        by_store = {str(k): {"baskets": int(r["size"]), "revenue": round(float(r["sum"]), 2)}
                    for k, r in per.iterrows()}  # fmt: skip
        details = (("by_store", by_store),)
        revenue = round(float(frame["sales"].sum()), 2)
    return Landed(
        tenant=tenant,
        source=source,
        first_day=ts.min().date(),
        last_day=ts.max().date(),
        stores=frozenset(pd.unique(store)),
        transactions=len(ts),
        revenue=revenue,
        details=details,
    )
