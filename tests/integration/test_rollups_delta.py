"""Rollups kept by delta (analytics/rollups.py `add_baskets`) equal a full rebuild, after every
kind of incremental write: stream batches, a re-delivery, a batch mixing re-delivered and new
baskets, a POS sync, a file import; across a week boundary and the 05:00 business-day
boundary; a new product in a new category; store-days written more than once (real Postgres)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analytics import rollups
from analytics.baskets import unpack
from core import events
from core.db import connect
from integrations.landing import land_baskets
from integrations.messages import BasketLine, BasketMessage
from integrations.sync import sync_pos
from integrations.warehouse import ensure_tenant_partitions, write_batch
from pipelines.ingest_file import ingest_files
from pipelines.mapping import load_mapping

pytestmark = pytest.mark.integration

MONDAY = date(2024, 3, 11)  # a business week starts here (file imports refuse future dates)
assert MONDAY.weekday() == 0
PRODUCTS = {  # product → (department, category), in the catalogue before any sale
    1: ("DAIRY", "MILK"), 2: ("DAIRY", "CHEESE"), 3: ("BAKERY", "BREAD"), 4: ("PRODUCE", "FRUIT"),
}  # fmt: skip
ROLLUPS = {
    "sales_hourly": "day, store_id, hour",
    "sales_daily": "day, store_id",
    "product_weekly": "product_id, week",
    "category_daily": "department, product_category, day",
    "analytics_categories": "category_id",
}


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A UTC time on `day` (business day = UTC − 5 h: 04:59 still belongs to the day before)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def basket(tid: int, store: str, customer: int, ts: datetime, products: list[int]) -> dict:
    lines = [BasketLine(product_id=p, quantity=p % 3 + 1, sales_value=1.25 * p + tid % 7,
                        retail_disc=0.1 * (p % 2)) for p in products]  # fmt: skip
    return BasketMessage(transaction_id=tid, store_id=store, customer_id=customer, timestamp=ts,
                         lines=lines).model_dump()  # fmt: skip


def snapshot(conn, tenant: str) -> dict[str, object]:
    """Every rollup table's rows; basket_sets as a multiset of baskets per store-day."""
    tables: dict[str, object] = {
        table: conn.execute(
            f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY {order}", (tenant,)
        ).fetchall()
        for table, order in ROLLUPS.items()
    }
    sets = {}
    for day, store, n, sizes, items in conn.execute(
        "SELECT day, store_id, baskets, sizes, items FROM basket_sets WHERE tenant_id = %s",
        (tenant,),
        binary=True,
    ):
        which, ids = unpack(n, bytes(sizes), bytes(items))
        per = [tuple(ids[which == k].tolist()) for k in range(n)]
        sets[(day, store)] = Counter(per)
    tables["basket_sets"] = sets
    return tables


def assert_equals_a_rebuild(tenant: str) -> dict[str, object]:
    """The rollups as the writers left them equal a full rebuild from the base tables (the
    rebuild is rolled back: later writes go on from the state the deltas made)."""
    with connect() as conn:
        kept = snapshot(conn, tenant)
        rollups.rebuild(conn, tenant=tenant)
        rebuilt = snapshot(conn, tenant)
        conn.rollback()
    for table in rebuilt:
        assert kept[table] == rebuilt[table], table
    return kept


def stream_batch(tenant: str, baskets: list[dict]) -> int:
    """One batch as the stream consumer writes it (write_batch, land_baskets up to the rollups'
    preparation, then the refresh: one transaction); returns the baskets inserted."""
    with connect() as conn:
        result = write_batch(conn, tenant=tenant, baskets=baskets, inventory=[])
        landed = land_baskets(conn, tenant=tenant, source="stream", result=result,
                              sent=[b["transaction_id"] for b in baskets], refresh=False)  # fmt: skip
        if landed is not None:
            events.in_transaction(conn, landed)
    return result.inserted


@pytest.fixture
def tenant(service_env) -> str:
    return new_tenant()


def new_tenant() -> str:
    """A tenant with its own partitions and `PRODUCTS` in its catalogue."""
    name = f"dl_{uuid.uuid4().hex[:8]}"
    with connect() as conn:
        ensure_tenant_partitions(conn, name)
        for pid, (dept, cat) in PRODUCTS.items():
            conn.execute(
                "INSERT INTO products (tenant_id, product_id, department, product_category)"
                " VALUES (%s, %s, %s, %s)",
                (name, pid, dept, cat),
            )
    return name


@pytest.fixture
def paths(caplog) -> Callable[[], Counter]:
    """How the rollups were refreshed, counted from their log lines."""
    caplog.set_level(logging.INFO, logger="analytics.rollups")

    def seen() -> Counter:
        found = Counter()
        for rec in caplog.records:
            if rec.name == "analytics.rollups":
                found["delta" if "delta" in rec.getMessage() else "recompute"] += 1
        caplog.clear()
        return found

    return seen


SUNDAY = MONDAY - timedelta(days=1)
FIRST = [  # Saturday to Monday of two weeks, two stores, around 05:00 UTC
    basket(1001, "S1", 1, at(SUNDAY - timedelta(days=1), 20), [1, 2]),
    basket(1002, "S1", 2, at(SUNDAY, 12), [1, 3]),
    basket(1003, "S2", 1, at(MONDAY, 4, 59), [2, 4]),  # business Sunday: last week
    basket(1004, "S2", 3, at(MONDAY, 5, 0), [1, 2, 3]),  # business Monday: this week
    basket(1005, "S1", 1, at(MONDAY, 9), [4]),
    basket(1006, "S1", 2, at(MONDAY + timedelta(days=1), 3), [1, 4]),  # business Monday
]


def test_incremental_writes_keep_the_rollups_equal_to_a_rebuild(tenant, paths, tmp_path):
    assert stream_batch(tenant, FIRST) == 6
    assert paths() == {"delta": 1}
    first = assert_equals_a_rebuild(tenant)
    customers = {(r[1], r[2]): r[6] for r in first["sales_daily"]}
    assert customers[(MONDAY, "S1")] == 2 and customers[(SUNDAY, "S2")] == 1

    # the same batch delivered again: nothing inserted, nothing refreshed, nothing changed
    assert stream_batch(tenant, FIRST) == 0
    assert paths() == {}
    assert assert_equals_a_rebuild(tenant) == first

    # a store-day written again: a customer already counted (1), a new one (4); a new product
    # in a new category, described in the catalogue before its first sale
    with connect() as conn:
        conn.execute(
            "INSERT INTO products (tenant_id, product_id, department, product_category)"
            " VALUES (%s, 5, 'FROZEN', 'ICE CREAM')",
            (tenant,),
        )
    second = [
        basket(2001, "S1", 1, at(MONDAY, 18), [5, 1]),
        basket(2002, "S1", 4, at(MONDAY, 19), [5]),
        basket(2003, "S2", 1, at(MONDAY, 4, 0), [3]),  # S2's business Sunday again, same customer
        basket(2004, "S3", 5, at(MONDAY, 23), [6]),  # a product first seen on the stream
    ]
    assert stream_batch(tenant, second) == 4
    assert paths() == {"delta": 1}
    kept = assert_equals_a_rebuild(tenant)
    customers = {(r[1], r[2]): r[6] for r in kept["sales_daily"]}
    assert customers[(MONDAY, "S1")] == 3 and customers[(SUNDAY, "S2")] == 1
    names = {(d, c) for _, _, d, c in kept["analytics_categories"]}
    assert {("FROZEN", "ICE CREAM"), ("(unknown)", "(unknown)")} <= names

    # re-delivered baskets mixed with new ones: which are new is not known, so the days are
    # recomputed; the next delta goes on from there
    mixed = [FIRST[4], second[0], basket(3001, "S1", 2, at(MONDAY, 20), [2, 5])]
    assert stream_batch(tenant, mixed) == 1
    assert paths() == {"recompute": 1}
    assert_equals_a_rebuild(tenant)

    # the integration API's POS sync (same writer, its own transaction and report)
    pos = [basket(4001, "S2", 3, at(MONDAY, 5, 30), [1, 2, 5]),
           basket(4002, "S4", 6, at(MONDAY + timedelta(days=7), 4), [3])]  # fmt: skip
    report = sync_pos(database_url=_url(), tenant=tenant, records=_json(pos))
    assert report.accepted == 2
    assert paths() == {"delta": 1}
    assert_equals_a_rebuild(tenant)

    # a file import into the tenant: a new product with a new category, existing store-days,
    # one basket the warehouse already has (skipped, not counted twice)
    path = tmp_path / "sales.csv"
    rows = [  # basket, time, store, customer, product, department, category, quantity, total
        (1002, "2024-03-10 12:00:00", "S1", 2, 1, "DAIRY", "MILK", 1, 2.5),  # already loaded
        (5001, "2024-03-11 06:00:00", "S1", 2, 7, "PETS", "CAT FOOD", 2, 7.0),
        (5001, "2024-03-11 06:00:00", "S1", 2, 1, "DAIRY", "MILK", 1, 1.25),
        (5002, "2024-03-12 04:30:00", "S2", 3, 7, "PETS", "CAT FOOD", 1, 3.5),
    ]
    pd.DataFrame(rows, columns=["basket", "ts", "store", "customer", "product", "dept", "cat",
                                "qty", "total"]).to_csv(path, index=False)  # fmt: skip
    summary, _ = ingest_files([path], _mapping(tmp_path), tenant=tenant,
                              report_dir=tmp_path / "report")  # fmt: skip
    assert (summary.files[0].accepted, summary.files[0].duplicates) == (3, 1)
    assert paths() == {"delta": 1}
    kept = assert_equals_a_rebuild(tenant)
    assert ("PETS", "CAT FOOD") in {(d, c) for _, _, d, c in kept["analytics_categories"]}

    with connect() as conn:  # and the rollups still describe every basket of the warehouse
        assert (
            conn.execute(
                "SELECT (SELECT sum(baskets) FROM sales_daily WHERE tenant_id = %(t)s),"
                " (SELECT count(*) FROM transactions WHERE tenant_id = %(t)s)",
                {"t": tenant},
            ).fetchone()
            == (6 + 4 + 1 + 2 + 2,) * 2
        )


def test_concurrent_writers_of_one_store_day_count_its_customers_once(tenant, paths, caplog):
    """Two batches of the same customer, store and day in two open transactions: the second
    refresh waits for the first commit and then sees its basket (customers stays 1). The second
    stages its baskets and sums before it waits (`prepare`, as the stream consumer does); its
    new-customer probe runs after."""
    # the store and the customer exist already: the second write's dimension inserts then do
    # not wait for the first transaction, only its refresh does
    assert stream_batch(tenant, [basket(7000, "S9", 42, at(MONDAY, 12) - timedelta(7), [1])])
    first_written, release = threading.Event(), threading.Event()

    def first() -> None:
        with connect() as conn:
            batch = [basket(7001, "S9", 42, at(MONDAY, 12), [1])]
            result = write_batch(conn, tenant=tenant, baskets=batch, inventory=[])
            land_baskets(conn, tenant=tenant, source="stream", result=result, sent=[7001])
            first_written.set()
            release.wait(10)

    worker = threading.Thread(target=first)
    worker.start()
    assert first_written.wait(10)
    second = threading.Thread(
        target=stream_batch, args=(tenant, [basket(7002, "S9", 42, at(MONDAY, 13), [2])])
    )
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the tenant's refresh lock
    release.set()
    worker.join(10)
    second.join(10)
    deltas = [r.getMessage() for r in caplog.records if "delta" in r.getMessage()]
    # the two stream-shaped batches used their preparation; the first writer did not prepare
    assert [", prepared" in m for m in deltas] == [True, False, True]
    assert paths() == {"delta": 3}
    kept = assert_equals_a_rebuild(tenant)
    assert [(r[1], r[5], r[6]) for r in kept["sales_daily"]] == [
        (MONDAY - timedelta(7), 1, 1), (MONDAY, 2, 1)]  # fmt: skip


def test_a_staged_set_is_used_once(tenant, paths):
    """Two writes in one transaction: each refresh adds its own baskets only."""
    with connect() as conn:
        for tid in (8001, 8002):
            batch = [basket(tid, "S1", tid, at(MONDAY, 12), [1, 2])]
            result = write_batch(conn, tenant=tenant, baskets=batch, inventory=[])
            land_baskets(conn, tenant=tenant, source="stream", result=result, sent=[tid])
    assert paths() == {"delta": 2}
    kept = assert_equals_a_rebuild(tenant)
    assert [(r[5], r[6]) for r in kept["sales_daily"]] == [(2, 2)]


def test_a_preparation_for_other_baskets_is_not_used(tenant, paths):
    """Baskets staged after the rollups' preparation: the refresh stages them all again."""
    with connect() as conn:
        for tid in (8101, 8102):  # the first batch's rollups prepared, the second refreshes
            batch = [basket(tid, "S1", tid, at(MONDAY, 12), [1, 2])]
            result = write_batch(conn, tenant=tenant, baskets=batch, inventory=[])
            land_baskets(conn, tenant=tenant, source="stream", result=result, sent=[tid],
                         refresh=tid == 8102)  # fmt: skip
    assert paths() == {"delta": 1}
    kept = assert_equals_a_rebuild(tenant)
    assert [(r[5], r[6]) for r in kept["sales_daily"]] == [(2, 2)]


def _url() -> str:
    from core.settings import get_settings

    return get_settings().database_url


def _json(baskets: list[dict]) -> list[dict]:
    return [BasketMessage.model_validate(b).model_dump(mode="json") for b in baskets]


def _mapping(tmp_path: Path):
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "name: delta_test\n"
        "source: {format: csv, delimiter: ',', encoding: utf-8}\n"
        "columns: {transaction_id: basket, timestamp: ts, store_id: store, customer_id: customer,"
        " product_code: product, product_department: dept, product_category: cat,"
        " quantity: qty, line_total: total}\n"
        "timestamp: {format: '%Y-%m-%d %H:%M:%S', timezone: UTC}\n"
        "missing_customer: reject\nmissing_store: reject\nunknown_product: create\n"
    )
    return load_mapping(path)
