"""Compute the feature tables of a tenant, fully or incrementally from their watermarks.

Per table, an incremental run (features/watermarks.py) does:
- customer_rfm, customer_behaviour, product_stats: only the snapshot times after the table's
  newest one (the new "latest", and a month start the new data passed); customer_rfm computed
  for customers with new baskets and carried forward for every other customer (their counts
  are unchanged, recency and tenure move: features/rfm.py), customer_behaviour for customers
  with new baskets,
  product_stats for products whose windows, sales or placements changed (every other entity's
  newest row still holds its current values);
- customer_demographics: rows for new customers and changed demographics only;
- store_daily_sales: the business days of the new baskets only;
- the weekly tables (store × product weekly, store and product attributes, churn snapshots):
  rebuilt when their data is `WEEKLY_REFRESH` or more behind the warehouse (in data time), kept
  otherwise — their models work in retailer weeks.
Late data (baskets older than a watermark, rewritten rows) makes that table's run full, with the
reason in the result. `full=True` recomputes everything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from features import watermarks as wm
from features.customer_behaviour import compute_customer_behaviour
from features.customer_demographics import compute_customer_demographics
from features.product_stats import affected_products, compute_product_stats
from features.rfm import compute_customer_rfm, default_as_of
from features.store_daily import BUSINESS_DAY_HOURS, compute_store_daily

WEEKLY_REFRESH = timedelta(days=7)
SNAPSHOT_TABLES = ("customer_rfm", "customer_behaviour", "product_stats")
WEEKLY_TABLES = ("forecast", "customer_churn_features")

Step = Callable[[str], None]
WeeklyJob = Callable[[], dict[str, Any]]


def _business_day_start(ts: datetime) -> datetime:
    """Start (UTC) of the business day holding `ts` (transaction time − 5 h)."""
    shifted = ts - timedelta(hours=BUSINESS_DAY_HOURS)
    day = shifted.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(hours=BUSINESS_DAY_HOURS)


def _snapshot_table(
    conn: psycopg.Connection,
    table: str,
    tenant: str,
    delta: wm.Delta,
    mark: wm.Watermark | None,
    cutoffs: list[datetime],
) -> dict[str, Any]:
    """One snapshot table, fully or at the new snapshot times only; returns what it did."""
    full = delta.kind == "full" or mark is None or mark.as_of is None
    if not full and delta.min_new_ts is not None and delta.min_new_ts < mark.as_of:
        full, reason = True, "new baskets before the newest snapshot time"
    else:
        reason = delta.reason
    if full:
        if table != "customer_rfm":
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", (tenant,))
        todo, entities = cutoffs, None
    else:
        todo = [c for c in cutoffs if c > mark.as_of]
        if table in ("customer_rfm", "customer_behaviour"):
            entities = delta.customers
        elif table == "product_stats" and todo:
            entities = affected_products(conn, tenant=tenant, prev=mark.as_of, hi=todo[-1])
        else:
            entities = None
    if table == "customer_rfm":
        prev = None if entities is None else mark.as_of
        rows = (
            compute_customer_rfm(conn, tenant=tenant, as_of=todo, customers=entities, prev=prev)
            if todo
            else 0
        )
    elif table == "customer_behaviour":
        rows = compute_customer_behaviour(conn, tenant=tenant, as_of=todo, customers=entities)
    else:
        rows = compute_product_stats(
            conn, tenant=tenant, as_of=todo, all_as_of=cutoffs, products=entities
        )
    if rows and full:
        conn.execute(f"ANALYZE {table}")
    return {
        "mode": "full" if full else "incremental",
        "reason": reason,
        "snapshots": [c.isoformat() for c in todo],
        "entities": None if entities is None else len(entities),
        "rows": rows,
    }


def refresh_features(
    conn: psycopg.Connection,
    *,
    tenant: str,
    full: bool = False,
    weekly_jobs: dict[str, WeeklyJob] | None = None,
    step: Step | None = None,
) -> dict[str, Any]:
    """Bring every feature table of `tenant` up to date; returns per table what was done.

    `weekly_jobs` maps "forecast" / "customer_churn_features" to the function that rebuilds
    them (they live outside features/ or read frames in Python); each table is written and its
    watermark moved in one transaction.
    """
    say = step or (lambda text: None)
    state = wm.data_state(conn, tenant=tenant)
    marks = {} if full else wm.read_watermarks(conn, tenant=tenant)
    cutoffs = default_as_of(conn, tenant=tenant)
    latest = cutoffs[-1] if cutoffs else None
    out: dict[str, Any] = {"tenant": tenant, "max_ts": state.max_ts, "baskets": state.transactions}

    def plan(table: str) -> wm.Delta:
        if full:
            return wm.Delta("full", "--full")
        return wm.delta(conn, tenant=tenant, mark=marks.get(table), state=state)

    for table in SNAPSHOT_TABLES:
        d = plan(table)
        if d.kind == "none":
            out[table] = {"mode": "current", "reason": d.reason, "rows": 0}
            continue
        say(f"{table}: {d.reason}")
        with conn.transaction():
            out[table] = _snapshot_table(conn, table, tenant, d, marks.get(table), cutoffs)
            wm.write_watermark(conn, tenant=tenant, table=table, state=state, as_of=latest,
                               mode=out[table]["mode"], detail=out[table])  # fmt: skip

    say("customer_demographics")
    with conn.transaction():
        first = full or "customer_demographics" not in marks
        rows = compute_customer_demographics(conn, tenant=tenant, now=None if first else latest)
        # "current": no new or changed customer, nothing for the online store to load
        mode = "full" if first else "incremental" if rows else "current"
        out["customer_demographics"] = {"mode": mode, "rows": rows}
        wm.write_watermark(conn, tenant=tenant, table="customer_demographics", state=state,
                           as_of=latest, mode=out["customer_demographics"]["mode"])  # fmt: skip

    d = plan("store_daily_sales")
    if d.kind == "full":
        say("store_daily_sales: full")
        rows = compute_store_daily(conn, tenant=tenant)
        out["store_daily_sales"] = {"mode": "full", "reason": d.reason, "rows": rows}
    elif d.kind == "append":
        start = _business_day_start(d.min_new_ts)
        say(f"store_daily_sales: business days from {start.date()}")
        rows = compute_store_daily(conn, tenant=tenant, since=start)
        out["store_daily_sales"] = {"mode": "incremental", "reason": d.reason, "rows": rows}
    else:
        out["store_daily_sales"] = {"mode": "current", "reason": d.reason, "rows": 0}
    if d.kind != "none":
        wm.write_watermark(conn, tenant=tenant, table="store_daily_sales", state=state,
                           as_of=None, mode=out["store_daily_sales"]["mode"])  # fmt: skip

    for table, job in (weekly_jobs or {}).items():
        mark = marks.get(table)
        behind = (
            None
            if mark is None or mark.max_ts is None or state.max_ts is None
            else state.max_ts - mark.max_ts
        )
        d = plan(table)
        if d.kind == "none" or (d.kind == "append" and behind is not None
                                and behind < WEEKLY_REFRESH):  # fmt: skip
            out[table] = {"mode": "kept", "reason": f"{d.reason}; data {behind} behind, rebuilt "
                          f"weekly (every {WEEKLY_REFRESH.days} days of data) or with --full"}  # fmt: skip
            continue
        say(f"{table}: rebuild ({d.reason})")
        result = job()
        out[table] = {"mode": "full", "reason": d.reason, "result": result}
        wm.write_watermark(conn, tenant=tenant, table=table, state=state, as_of=None,
                           mode="full")  # fmt: skip
    conn.commit()
    return out
