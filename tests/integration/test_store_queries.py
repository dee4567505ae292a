"""Store-level warehouse reads of the inventory and next-best-action routes, checked against
the raw rows of the sample households on a real PostgreSQL."""

from __future__ import annotations

from collections import Counter, defaultdict

import anyio
import psycopg
import pytest

from core.db import connect
from core.errors import ServiceUnavailable
from core.settings import get_settings
from features.forecast import compute_forecast_features
from features.store_queries import (
    Warehouse,
    on_hand_levels,
    top_selling_products,
    usual_store_customers,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def weekly(sample_warehouse: dict[str, int]) -> str:
    tenant = get_settings().tenant
    with connect() as conn:
        compute_forecast_features(conn, tenant=tenant)
    return tenant


def test_usual_store_customers_are_those_with_most_baskets_there(weekly: str) -> None:
    with connect() as conn:
        rows = conn.execute(
            "SELECT customer_id, store_id FROM transactions WHERE tenant_id = %s", (weekly,)
        ).fetchall()
        counts: dict[int, Counter] = defaultdict(Counter)
        for cid, store in rows:
            counts[cid][store] += 1
        usual = {cid: min(c, key=lambda s: (-c[s], s)) for cid, c in counts.items()}
        store = Counter(usual.values()).most_common(1)[0][0]
        got = usual_store_customers(conn, tenant=weekly, store_id=store, limit=1000)
        assert got == sorted(cid for cid, s in usual.items() if s == store)
        assert usual_store_customers(conn, tenant=weekly, store_id=store, limit=1) == got[:1]
        assert usual_store_customers(conn, tenant="other", store_id=store, limit=10) == []


def test_top_selling_products_rank_the_store_window_by_units(weekly: str) -> None:
    with connect() as conn:
        store, last = conn.execute(
            "SELECT store_id, max(week) FROM store_product_weekly WHERE tenant_id = %s"
            " GROUP BY store_id ORDER BY count(*) DESC LIMIT 1",
            (weekly,),
        ).fetchone()
        rows = conn.execute(
            "SELECT product_id, week, units FROM store_product_weekly"
            " WHERE tenant_id = %s AND store_id = %s",
            (weekly, store),
        ).fetchall()
        units: Counter = Counter()
        for pid, week, n in rows:
            if last - 16 < week <= last:
                units[pid] += n
        expected = sorted((p for p in units if units[p] > 0), key=lambda p: (-units[p], p))[:20]
        got = top_selling_products(
            conn, tenant=weekly, store_id=store, last_week=last, weeks=16, limit=20
        )
        assert got == expected and len(got) > 0


def test_on_hand_levels_read_the_inventory_table(weekly: str) -> None:
    with connect() as conn:
        conn.execute(
            "INSERT INTO inventory (tenant_id, store_id, product_id, on_hand, source_rule)"
            " VALUES ('invtest', 's1', 1, 7, 'cycle count'), ('invtest', 's1', 2, 0, 'pos')"
        )
        try:
            got = on_hand_levels(conn, tenant="invtest", store_id="s1", product_ids=[1, 3])
            assert got == {1: (7, "cycle count")}
        finally:
            conn.execute("DELETE FROM inventory WHERE tenant_id = 'invtest'")


def test_warehouse_runs_off_the_loop_and_an_unreachable_server_is_a_503() -> None:
    async def main() -> None:
        ok = Warehouse(get_settings().database_url)
        try:
            assert await ok.usual_store_customers(tenant="nobody", store_id="1", limit=5) == []
        finally:
            ok.close()
        down = Warehouse("postgresql://postgres@127.0.0.1:1/none")
        with pytest.raises(ServiceUnavailable, match="PostgreSQL"):
            await down.usual_store_customers(tenant="t", store_id="1", limit=5)

    anyio.run(main)


def test_warehouse_pool_serves_concurrent_calls_on_separate_connections() -> None:
    """Concurrent calls must not queue on one connection: three calls that each wait for the
    other two inside their connection can only all finish if each holds its own. A failed
    query hands its (still healthy) connection back; `size` bounds the connections."""
    import threading

    together = threading.Barrier(3, timeout=10)

    def meet_then_pid(conn) -> int:
        together.wait()
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def fail(conn) -> None:
        conn.execute("SELECT 1/0")

    async def main() -> None:
        wh = Warehouse(get_settings().database_url, size=3)
        try:
            async with anyio.create_task_group() as tg:
                pids: list[int] = []

                async def one() -> None:
                    pids.append(await wh.run(meet_then_pid))

                for _ in range(3):
                    tg.start_soon(one)
            assert len(set(pids)) == 3
            with pytest.raises(psycopg.errors.DivisionByZero):
                await wh.run(fail)
            again = await wh.run(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            assert again in pids  # reused from the pool, not a fourth connection
        finally:
            wh.close()

    anyio.run(main)
