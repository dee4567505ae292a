"""Feature watermarks: what each feature table of a tenant was last computed from.

One row per tenant × feature table (`feature_watermarks`): the newest basket time and the basket
and line-item counts the table saw, and its newest snapshot time. Comparing that with the
warehouse now (`data_state`) tells an incremental run what changed (`delta`):
- nothing (same newest time and counts): the table is current;
- baskets appended after the watermark only (the counts grew by exactly the new baskets and their
  lines): recompute only what those baskets touch;
- anything else (late baskets older than the watermark, deleted or rewritten rows, no
  watermark yet): a full recompute, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class DataState:
    """The tenant's sales data now: newest basket time and counts."""

    max_ts: datetime | None
    transactions: int
    items: int


@dataclass(frozen=True)
class Watermark:
    """What one feature table was computed from."""

    table: str
    max_ts: datetime | None
    transactions: int
    items: int
    as_of: datetime | None
    mode: str
    detail: dict[str, Any]
    computed_at: datetime


@dataclass(frozen=True)
class Delta:
    """What changed since a watermark: `kind` none / append / full."""

    kind: Literal["none", "append", "full"]
    reason: str
    min_new_ts: datetime | None = None
    customers: list[int] = field(default_factory=list)
    baskets: int = 0


def data_state(conn: psycopg.Connection, *, tenant: str) -> DataState:
    """Newest basket time and basket / line-item counts of `tenant`."""
    max_ts, n = conn.execute(
        "SELECT max(transaction_timestamp), count(*) FROM transactions WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    (items,) = conn.execute(
        "SELECT count(*) FROM transaction_items WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    return DataState(max_ts, n, items)


def read_watermarks(conn: psycopg.Connection, *, tenant: str) -> dict[str, Watermark]:
    """Every watermark of `tenant`, by feature table."""
    rows = conn.execute(
        "SELECT feature_table, max_ts, transactions, items, as_of, mode, detail, computed_at"
        " FROM feature_watermarks WHERE tenant_id = %s",
        (tenant,),
    ).fetchall()
    return {row[0]: Watermark(*row) for row in rows}


def write_watermark(
    conn: psycopg.Connection,
    *,
    tenant: str,
    table: str,
    state: DataState,
    as_of: datetime | None,
    mode: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that `table` now reflects `state` (call in the transaction that wrote it)."""
    conn.execute(
        "INSERT INTO feature_watermarks (tenant_id, feature_table, max_ts, transactions, items,"
        " as_of, mode, detail, computed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())"
        " ON CONFLICT (tenant_id, feature_table) DO UPDATE SET max_ts = EXCLUDED.max_ts,"
        " transactions = EXCLUDED.transactions, items = EXCLUDED.items, as_of = EXCLUDED.as_of,"
        " mode = EXCLUDED.mode, detail = EXCLUDED.detail, computed_at = now()",
        (tenant, table, state.max_ts, state.transactions, state.items, as_of, mode,
         Jsonb(detail or {})),
    )  # fmt: skip


def delta(
    conn: psycopg.Connection, *, tenant: str, mark: Watermark | None, state: DataState
) -> Delta:
    """What changed in `tenant`'s sales data since `mark` (see the module docstring)."""
    if mark is None or mark.max_ts is None:
        return Delta("full", "no watermark yet")
    if state.max_ts is None:
        return Delta("full", "the tenant has no baskets now")
    same = (mark.max_ts, mark.transactions, mark.items)
    if same == (state.max_ts, state.transactions, state.items):
        return Delta("none", "no new baskets")
    n, items, lo, customers = conn.execute(
        "SELECT count(*), coalesce(sum(i.n), 0), min(t.transaction_timestamp),"
        " coalesce(array_agg(DISTINCT t.customer_id), '{}')"
        " FROM transactions t"
        " LEFT JOIN LATERAL (SELECT count(*) AS n FROM transaction_items i"
        "   WHERE i.tenant_id = t.tenant_id AND i.transaction_id = t.transaction_id) i ON true"
        " WHERE t.tenant_id = %s AND t.transaction_timestamp > %s",
        (tenant, mark.max_ts),
    ).fetchone()
    n, items = int(n), int(items)
    if mark.transactions + n != state.transactions or mark.items + items != state.items:
        return Delta(
            "full",
            f"baskets or lines changed at or before the watermark {mark.max_ts.isoformat()}"
            f" ({state.transactions - mark.transactions - n:+d} baskets,"
            f" {state.items - mark.items - items:+d} lines)",
        )
    return Delta("append", f"{n} new baskets", lo, sorted(customers), n)


# The forecaster's inputs: the store x product weekly tables (watermark "forecast", moved by
# `retailpulse features materialize` when it rebuilds them) and the promotion placements (the
# plan), written by an ingest, which moves no watermark but stamps `ingest_runs`.
FORECAST_STATE = (
    "SELECT (SELECT max(computed_at) FROM feature_watermarks"
    "        WHERE tenant_id = %(tenant)s AND feature_table = 'forecast'),"
    " (SELECT max(finished_at) FROM ingest_runs WHERE tenant_id = %(tenant)s)"
)


def state_token(rows: list[tuple[Any, ...]]) -> str | None:
    """The token of `FORECAST_STATE`'s result row (see `forecast_state`)."""
    computed, ingested = rows[0]
    if computed is None:
        return None
    return f"{computed.isoformat()}|{ingested.isoformat() if ingested else ''}"


def forecast_state(conn: psycopg.Connection, *, tenant: str) -> str | None:
    """A token of the state of what the forecaster reads for `tenant` (its feature tables'
    watermark and the newest ingest), or None before those tables were ever computed. Equal
    tokens: the same inputs. Read it before the data it stands for: that data is then at
    least as new as the token."""
    return state_token(conn.execute(FORECAST_STATE, {"tenant": tenant}).fetchall())
