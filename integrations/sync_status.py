"""What the integration API's sync batches did, per source: the rows `integrations.sync`
records in `sync_batches` read back for `GET /api/v1/integrations/status`."""

from __future__ import annotations

from typing import Any

import psycopg

from integrations.sync import SOURCES


def sync_status(conn: psycopg.Connection, *, tenant: str) -> list[dict[str, Any]]:
    """Per source: batches and record totals, the last sync, and the last batch's errors."""
    totals = _by_source(
        conn,
        "SELECT source, count(*), sum(received), sum(accepted), sum(rejected),"
        " sum(duplicates), sum(stale) FROM sync_batches WHERE tenant_id = %s GROUP BY source",
        tenant,
    )
    last = _by_source(
        conn,
        "SELECT DISTINCT ON (source) source, batch_id, status, received_at, received,"
        " accepted, rejected, duplicates, stale FROM sync_batches WHERE tenant_id = %s"
        " ORDER BY source, received_at DESC, sync_id DESC",
        tenant,
    )
    errors = _by_source(
        conn,
        "SELECT DISTINCT ON (source) source, batch_id, received_at, rejected, errors"
        " FROM sync_batches WHERE tenant_id = %s AND rejected > 0"
        " ORDER BY source, received_at DESC, sync_id DESC",
        tenant,
    )
    out = []
    names = ("received", "accepted", "rejected", "duplicates", "stale")
    for source in SOURCES:
        t = totals.get(source)
        entry: dict[str, Any] = {
            "source": source,
            "batches": int(t[0]) if t else 0,
            "totals": {n: int(v or 0) for n, v in zip(names, t[1:], strict=True)}
            if t
            else dict.fromkeys(names, 0),
            "lastSync": None,
            "lastErrors": None,
        }
        if source in last:
            batch_id, status, at, *counts = last[source]
            entry["lastSync"] = {"batchId": batch_id, "status": status, "at": at} | dict(
                zip(names, counts, strict=True)
            )
        if source in errors:
            batch_id, at, rejected, sample = errors[source]
            entry["lastErrors"] = {"batchId": batch_id, "at": at, "rejected": rejected,
                                   "errors": sample}  # fmt: skip
        out.append(entry)
    return out


def _by_source(conn: psycopg.Connection, sql: str, tenant: str) -> dict[str, tuple]:
    """The rows of `sql` (source first) keyed by source."""
    return {r[0]: r[1:] for r in conn.execute(sql, (tenant,)).fetchall()}
