"""Store-level warehouse reads of the inventory and next-best-action routes.

Repository functions take a psycopg connection and keyword-only arguments; every query carries
`tenant_id`. `Warehouse` is what the ingress holds: one lazily opened autocommit connection
pool of autocommit connections whose calls run in worker threads, so an async route never
blocks its event loop on PostgreSQL, concurrent requests do not queue behind one connection,
and a warehouse that does not answer becomes a 503 naming it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import psycopg

from core.errors import ServiceUnavailable

T = TypeVar("T")
CONNECT_TIMEOUT_S = 3
POOL_SIZE = 4  # per app (replica): anyio's thread pool is 40, PostgreSQL's default 100 clients


def top_selling_products(
    conn: psycopg.Connection, *, tenant: str, store_id: str, last_week: int, weeks: int, limit: int
) -> list[int]:
    """The store's best sellers by units in the `weeks` weeks ending at `last_week`."""
    rows = conn.execute(
        "SELECT product_id FROM store_product_weekly"
        " WHERE tenant_id = %s AND store_id = %s AND week > %s AND week <= %s"
        " GROUP BY product_id HAVING sum(units) > 0"
        " ORDER BY sum(units) DESC, product_id LIMIT %s",
        (tenant, store_id, last_week - weeks, last_week, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def usual_store_customers(
    conn: psycopg.Connection, *, tenant: str, store_id: str, limit: int
) -> list[int]:
    """Customers whose usual store is `store_id`: the store of most of their transactions
    (ties → the smallest store id, as the recommender's fallback decides)."""
    rows = conn.execute(
        """
        WITH visitors AS (
            SELECT DISTINCT customer_id FROM transactions
            WHERE tenant_id = %(tenant)s AND store_id = %(store)s
        ), ranked AS (
            SELECT t.customer_id, t.store_id,
                   row_number() OVER (
                       PARTITION BY t.customer_id ORDER BY count(*) DESC, t.store_id
                   ) AS rn
            FROM transactions t JOIN visitors v ON v.customer_id = t.customer_id
            WHERE t.tenant_id = %(tenant)s
            GROUP BY t.customer_id, t.store_id
        )
        SELECT customer_id FROM ranked WHERE rn = 1 AND store_id = %(store)s
        ORDER BY customer_id LIMIT %(limit)s
        """,
        {"tenant": tenant, "store": store_id, "limit": limit},
    ).fetchall()
    return [int(r[0]) for r in rows]


def on_hand_levels(
    conn: psycopg.Connection, *, tenant: str, store_id: str, product_ids: list[int]
) -> dict[int, tuple[int, str]]:
    """Recorded on-hand units and their source rule per product (the `inventory` table)."""
    rows = conn.execute(
        "SELECT product_id, on_hand, source_rule FROM inventory"
        " WHERE tenant_id = %s AND store_id = %s AND product_id = ANY(%s)",
        (tenant, store_id, product_ids),
    ).fetchall()
    return {int(pid): (int(units), str(rule)) for pid, units, rule in rows}


class Warehouse:
    """The ingress's warehouse reads: a small pool of autocommit connections (opened lazily,
    at most `size` at once; a caller past that waits for a free one), calls run off the loop.

    One connection per app made every analytics, alert and covariate query of a replica wait
    for the one before it."""

    def __init__(self, url: str | None = None, *, size: int = POOL_SIZE) -> None:
        self._url = url
        self._idle: list[psycopg.Connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._guard = threading.Lock()
        self.size = size

    def _open(self) -> psycopg.Connection:
        from core.db import libpq_url

        url = self._url
        if url is None:
            from core.services import get_endpoints

            url = get_endpoints(start=False).database_url
        return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def _take(self) -> psycopg.Connection:
        with self._guard:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        return self._open()

    def _give(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            return
        with self._guard:
            self._idle.append(conn)

    def call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """`fn(connection, **kwargs)`; PostgreSQL unreachable → ServiceUnavailable."""
        with self._slots:
            conn = None
            try:
                conn = self._take()
                result = fn(conn, **kwargs)
            except psycopg.OperationalError as exc:
                if conn is not None:
                    conn.close()
                raise ServiceUnavailable(
                    f"the warehouse (PostgreSQL) does not answer: {str(exc).strip()[:200]}",
                    details={"service": "postgres"},
                    retry_after=5,
                ) from exc
            except BaseException:
                if conn is not None:
                    self._give(conn)
                raise
            self._give(conn)
            return result

    async def run(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """`call` in a worker thread."""
        return await anyio.to_thread.run_sync(partial(self.call, fn, **kwargs))

    async def top_selling_products(self, **kwargs: Any) -> list[int]:
        return await self.run(top_selling_products, **kwargs)

    async def usual_store_customers(self, **kwargs: Any) -> list[int]:
        return await self.run(usual_store_customers, **kwargs)

    async def on_hand_levels(self, **kwargs: Any) -> dict[int, tuple[int, str]]:
        return await self.run(on_hand_levels, **kwargs)

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
