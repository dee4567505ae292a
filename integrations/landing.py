"""What a `write_batch` (integrations/warehouse.py) landed, announced inside its transaction:
the Kafka stream's and the POS sync's shared step between the merge and the commit."""

from __future__ import annotations

from collections.abc import Collection

import psycopg

from core import events
from integrations.warehouse import BatchResult


def land_baskets(
    conn: psycopg.Connection,
    *,
    tenant: str,
    source: str,
    result: BatchResult,
    sent: Collection[int],
    database_url: str | None = None,
    refresh: bool = True,
) -> events.Landed | None:
    """Bring the tenant's rollups up to date with the baskets `result` inserted (caller's
    transaction) and return their `Landed`; None when the batch inserted none.

    `sent`: the transaction ids handed to `write_batch`. When it skipped none of them as
    already loaded, they are exactly the new baskets and are staged, so the rollups add them
    (a delta); a batch mixing re-deliveries with new baskets has the rollups recompute the days
    it touched instead, since `BatchResult` does not name which of its baskets were new.

    `refresh=False`: stop before the rollups, once the part of their work that waits for no
    other writer is done (`events.prepare`); the caller runs `events.in_transaction(conn,
    landed)` later, in the same transaction (the stream consumer: once it holds the tenant's
    lock, so this part overlaps the previous batch's rollups).
    """
    if not result.inserted:
        return None
    landed = events.sales_landed(
        tenant, source, result.times, result.stores, result.sales, database_url=database_url
    )
    if not result.duplicates and len(sent) == result.inserted:
        events.stage_new_baskets(conn, sent)
        if not refresh:
            events.prepare(conn, landed)
    if refresh:
        events.in_transaction(conn, landed)
    return landed
