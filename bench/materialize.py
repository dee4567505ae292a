"""Incremental feature computation + materialization after one new day, beside a full run.

On the warehouse of RETAILPULSE_DATABASE_URL (ingest Complete Journey into a database of your
own first: `retailpulse ingest completejourney`), for tenant `--tenant`:
1. baseline: `features materialize --full` (every feature table recomputed, every view loaded);
2. one new day: the newest business day's baskets replayed one day later with new transaction
   ids (plain SQL; the retailer week moves on when the shifted day starts a new one);
3. measured: `features materialize` (incremental: watermarks → only the new snapshot times and
   the entities the day touched; each view's rows newer than its last materialization go to
   Redis through features/online_write.py, views nothing touched are skipped).
Both runs are timed from the job's call (the first pays the imports: the "setup" step);
`*_steps` give each step's seconds. Prints one JSON object (DESIGN §5); `ratio` = incremental /
full wall time (goal ≤ 0.1), `ratio_without_setup` the same without the setup step of either.
Run it on a database you can throw away: step 2 adds baskets.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

_REPLAY = """
WITH day AS (
    SELECT max(transaction_timestamp) - interval '1 day' AS lo,
           (SELECT max(transaction_id) FROM transactions WHERE tenant_id = %(tenant)s) AS top
    FROM transactions WHERE tenant_id = %(tenant)s
),
src AS (
    SELECT t.*, d.top FROM transactions t, day d
    WHERE t.tenant_id = %(tenant)s AND t.transaction_timestamp > d.lo
),
new_tx AS (
    INSERT INTO transactions (tenant_id, transaction_id, customer_id, store_id,
        transaction_timestamp, week, item_count, total_sales, total_discount)
    SELECT tenant_id, transaction_id + top, customer_id, store_id,
           transaction_timestamp + interval '1 day',
           week + (date_trunc('week', (transaction_timestamp + interval '1 day')
                                      AT TIME ZONE 'America/New_York')
                   > date_trunc('week', transaction_timestamp AT TIME ZONE 'America/New_York')
                  )::int,
           item_count, total_sales, total_discount
    FROM src
    RETURNING transaction_id
)
INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id, quantity,
    sales_value, retail_disc, coupon_disc, coupon_match_disc, unit_price)
SELECT i.tenant_id, i.transaction_id + s.top, i.line_no, i.product_id, i.quantity,
       i.sales_value, i.retail_disc, i.coupon_disc, i.coupon_match_disc, i.unit_price
FROM transaction_items i JOIN src s ON s.transaction_id = i.transaction_id
WHERE i.tenant_id = %(tenant)s
"""


def append_day(tenant: str) -> dict[str, int]:
    """Replay the newest day's baskets one day later; returns baskets and lines added."""
    from core.db import connect

    with connect() as conn:
        before = conn.execute(
            "SELECT count(*) FROM transactions WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        lines = conn.execute(_REPLAY, {"tenant": tenant}).rowcount
        after = conn.execute(
            "SELECT count(*) FROM transactions WHERE tenant_id = %s", (tenant,)
        ).fetchone()[0]
        conn.execute("ANALYZE transactions")
        conn.execute("ANALYZE transaction_items")
    return {"baskets": after - before, "lines": lines}


def _timed(tenant: str, full: bool) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Wall time of one `features materialize` run, per step, and its counts."""
    from pipelines.jobs.features import materialize

    steps: dict[str, float] = {}
    last: list[Any] = [time.perf_counter(), None]

    def step(text: str) -> None:
        now = time.perf_counter()
        if last[1] is not None:
            steps[last[1]] = round(steps.get(last[1], 0.0) + now - last[0], 3)
        last[0], last[1] = now, text

    t0 = time.perf_counter()
    step("setup: watermarks, data state, snapshot times")  # until the job's first step
    counts = materialize(tenant=tenant, full=full, on_step=step)
    step("end")
    return time.perf_counter() - t0, steps, counts


def _setup(steps: dict[str, float]) -> float:
    return sum(v for k, v in steps.items() if k.startswith("setup"))


def _summary(counts: dict[str, Any]) -> dict[str, Any]:
    refresh = counts.get("refresh") or {}
    return {
        table: {k: v for k, v in done.items() if k in ("mode", "rows", "entities", "reason")}
        for table, done in refresh.items()
        if isinstance(done, dict)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenant", default=None, help="tenant (default: the settings' tenant)")
    args = parser.parse_args()
    from core.settings import get_settings

    tenant = args.tenant or get_settings().tenant
    full_s, full_steps, full_counts = _timed(tenant, full=True)
    added = append_day(tenant)
    inc_s, inc_steps, inc_counts = _timed(tenant, full=False)
    print(
        json.dumps(
            {
                "figure": "incremental_materialize",
                "data": f"Complete Journey, tenant {tenant}, + one replayed day",
                "n": added["baskets"],
                "value": round(inc_s, 2),
                "unit": "s (incremental compute + materialize after one new day)",
                "baseline": "features materialize --full (compute + materialize)",
                "baseline_value": round(full_s, 2),
                "ratio": round(inc_s / full_s, 4),
                "ratio_without_setup": round(
                    (inc_s - _setup(inc_steps)) / (full_s - _setup(full_steps)), 4
                ),
                "p50": None,
                "p99": None,
                "added": added,
                "full_steps": full_steps,
                "incremental_steps": inc_steps,
                "incremental": _summary(inc_counts),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
