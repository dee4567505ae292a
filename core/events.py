"""What happened to a tenant's data, and what runs when it does.

Writers of sales (Complete Journey ingest, file import, the stream consumer, the integration
API) and batch scoring describe what they changed as a `Landed`. `in_transaction` runs the
handlers that must change with the data, inside the writer's transaction (the analytics
rollups); `after_commit` runs the follow-ups once it is committed (the analytics cache, alert
evaluation and notifications, the `sales.realtime` live event) and never fails the write that
called it: their errors are logged.

A writer that knows exactly which baskets it inserted (not those it skipped as already loaded)
says so with `stage_new_baskets` before `in_transaction`: their ids go to a temporary table of
its transaction (`NEW_BASKETS`), which the handlers get as `Landed.new_baskets` and may add to
what they keep instead of recomputing every day the data touched (analytics/rollups.py).

Handlers are named, not imported, here (`IN_TRANSACTION`, `AFTER_COMMIT`): `core` imports no
package of ours; the packages that own the work (`analytics`, `alerts`) are resolved on first
use.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

IN_TRANSACTION = ("analytics.rollups:refresh",)
# The part of their work that needs no lock, for `prepare` (a writer that stages its new baskets
# may run it before it waits for the tenant's other writers).
PREPARE = ("analytics.rollups:prepare",)
AFTER_COMMIT = ("analytics.cache:invalidate", "alerts.engine:on_landed")
ALERT_RAISED = ("integrations.webhooks:on_alerts",)
# Temporary table (transaction_id bigint, no key) of the baskets the current transaction
# inserted, filled by `stage_new_baskets`, dropped once `in_transaction` ran (or at commit).
NEW_BASKETS = "_landed_baskets"
_SMALL_STAGE = 50_000  # ids staged row by row; more go through core.bulk.copy_frame


@cache
def _resolve(name: str) -> Callable[..., Any]:
    module, attr = name.split(":")
    return getattr(importlib.import_module(module), attr)


def _handlers(names: Sequence[str]) -> list[Callable[..., Any]]:
    return [_resolve(n) for n in names]


@dataclass(frozen=True)
class Landed:
    """New data for one tenant.

    `first_day`/`last_day` bound the sale days touched (both None: anything may have changed,
    as after a full load); `stores` the stores touched (None: any).
    """

    tenant: str
    source: str  # "completejourney", "file", "stream", "pos", "inventory" or "score"
    first_day: date | None = None
    last_day: date | None = None
    stores: frozenset[str] | None = None
    transactions: int = 0  # new baskets written
    revenue: float | None = None  # their sales value, when the writer knows it
    model: str | None = None  # for "score": the model key scored
    database_url: str | None = None  # the warehouse written to (None: the configured one)
    details: tuple[tuple[str, object], ...] = ()
    # Temporary table of exactly the baskets this transaction inserted, when the writer staged
    # them (`stage_new_baskets`; set by `in_transaction`); None: not known.
    new_baskets: str | None = None
    # (baskets, lines): every basket and line the tenant has, when this write was its first
    # and the writer holds them as frames (transactions' and transaction_items' columns); the
    # rollups are then computed from them instead of read back (analytics/rollup_frames.py).
    first_load: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def everything(self) -> bool:
        """True when the change is not bounded to a day range."""
        return self.first_day is None or self.last_day is None


def alert_raised(conn: Any, messages: list[dict[str, Any]], *, database_url: str) -> None:
    """Hand new alerts (their `alerts.trigger` messages) to the integration webhooks
    subscribed to `alert.triggered` (errors are logged, never raised)."""
    for name, handler in zip(ALERT_RAISED, _handlers(ALERT_RAISED), strict=True):
        try:
            handler(conn, messages, database_url=database_url)
        except Exception:
            log.exception("%s for %d alert(s) failed", name, len(messages))


def stage_new_baskets(conn: Any, transaction_ids: Iterable[int]) -> None:
    """Note, inside the writer's transaction, the ids of the baskets it inserted — exactly
    those, each once, never one it skipped as already loaded — for the next `in_transaction`
    (calls before it add up)."""
    from core.bulk import copy_frame

    ids = np.fromiter(transaction_ids, dtype=np.int64)
    # no key: COPY into a bare table is ~3x faster, and a basket is inserted only once
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {NEW_BASKETS} (transaction_id bigint NOT NULL)"
                 " ON COMMIT DROP")  # fmt: skip
    if len(ids) > _SMALL_STAGE:
        copy_frame(conn, NEW_BASKETS, pd.DataFrame({"transaction_id": ids}), ["transaction_id"])
        return
    # a stream batch's few thousand ids: binary rows, without copy_frame's DataFrame, CSV and
    # thread (~10 ms of the stream writer's Python per batch)
    with conn.cursor() as cur, cur.copy(f"COPY {NEW_BASKETS} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8"])
        for tid in ids.tolist():
            copy.write_row((tid,))


def _staged(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (f"pg_temp.{NEW_BASKETS}",)).fetchone()[0]  # fmt: skip


def prepare(conn: Any, landed: Landed) -> None:
    """Let the in-transaction handlers do, for the baskets staged so far, the work that waits
    for no other writer (before the writer takes the tenant's lock); `in_transaction` then uses
    it, or does it again if more baskets were staged since."""
    if landed.source == "score" or landed.everything or not _staged(conn):
        return
    for handler in _handlers(PREPARE):
        handler(conn, replace(landed, new_baskets=NEW_BASKETS))


def in_transaction(conn: Any, landed: Landed) -> None:
    """Bring the tenant's rollups up to date with what `landed` changed (caller's transaction);
    by the staged new baskets when the writer staged them and `landed` is bounded."""
    if landed.source == "score":
        return
    staged = _staged(conn)
    if staged and not landed.everything:
        landed = replace(landed, new_baskets=NEW_BASKETS)
    for handler in _handlers(IN_TRANSACTION):
        handler(conn, landed)
    if staged:  # consumed: a later write in the same transaction stages its own
        conn.execute(f"DROP TABLE {NEW_BASKETS}")


def after_commit(landed: Landed, *, bootstrap: str | None = None) -> None:
    """Invalidate cached analytics, evaluate alert rules and publish the live event for
    `landed` (errors are logged, never raised)."""
    steps = [(name, fn) for name, fn in zip(AFTER_COMMIT, _handlers(AFTER_COMMIT), strict=True)]
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


def inventory_moved(
    tenant: str,
    levels: Sequence[Any],
    *,
    bootstrap: str | None = None,
    database_url: str | None = None,
) -> None:
    """After stock levels (`InventoryMessage`s) were committed: re-check the tenant's stockout
    rules for those stores and publish the levels on `inventory.updates`."""
    from core.bus import event, get_bus

    stores = frozenset(str(m.store_id) for m in levels)
    landed = Landed(tenant=tenant, source="inventory", stores=stores, database_url=database_url)
    after_commit(landed, bootstrap=bootstrap)
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
    tenant: str,
    source: str,
    timestamps: Any,
    stores: Any,
    sales: Any | None = None,
    *,
    database_url: str | None = None,
) -> Landed:
    """A `Landed` for new baskets at `timestamps` (UTC) in `stores`, with their `sales` value
    when known (array-likes of the same length)."""
    days = _utc_days(timestamps)
    if days is None:
        return Landed(tenant=tenant, source=source, stores=frozenset(), database_url=database_url)
    store = pd.Series(stores).astype(str).to_numpy()
    details: tuple[tuple[str, object], ...] = ()
    revenue = None
    if sales is not None:
        frame = pd.DataFrame({"store": store, "sales": pd.Series(sales, dtype="float64").values})
        per = frame.groupby("store")["sales"].agg(["size", "sum"])
        by_store = {str(k): {"baskets": int(n), "revenue": round(float(v), 2)}
                    for k, n, v in zip(per.index, per["size"], per["sum"], strict=True)}  # fmt: skip
        details = (("by_store", by_store),)
        revenue = round(float(frame["sales"].sum()), 2)
    return Landed(
        tenant=tenant,
        source=source,
        first_day=days[0],
        last_day=days[1],
        stores=frozenset(pd.unique(store)),
        transactions=len(store),
        revenue=revenue,
        details=details,
        database_url=database_url,
    )


def _utc_days(timestamps: Any) -> tuple[date, date] | None:
    """The UTC dates of the earliest and latest of `timestamps` (naive ones are UTC); None if
    there are none. Zone-aware `datetime`s (what psycopg returns) are compared as they are:
    a stream batch's few thousand, ~20 ms through pandas."""
    if isinstance(timestamps, list | tuple) and all(
        isinstance(t, datetime) and t.tzinfo is not None for t in timestamps
    ):
        if not timestamps:
            return None
        return min(timestamps).astimezone(UTC).date(), max(timestamps).astimezone(UTC).date()
    ts = pd.to_datetime(pd.Series(timestamps), utc=True)
    return None if ts.empty else (ts.min().date(), ts.max().date())
