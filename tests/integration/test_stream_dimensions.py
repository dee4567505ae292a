"""Dimension rows of ids first seen on the stream, with two writers whose transactions overlap
(the stream consumer's two writer threads): `write_batch(..., dimensions=False)` only finds the
unknown ids, which does not wait for the other writer; `insert_dimensions`, called once the
other has committed, adds those it did not add, each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from integrations.warehouse import insert_dimensions, write_batch

pytestmark = pytest.mark.integration
T0 = datetime(2017, 5, 6, 9, 0, tzinfo=UTC)
TENANT = "default"


def _basket(tid: int, customer: int, store: str, products: list[int]) -> dict:
    return {
        "transaction_id": tid, "store_id": store, "customer_id": customer,
        "timestamp": T0 + timedelta(minutes=tid), "week": 19,
        "lines": [{"product_id": p, "quantity": 1, "sales_value": 1.5, "retail_disc": 0.0,
                   "coupon_disc": 0.0, "coupon_match_disc": 0.0} for p in products],
    }  # fmt: skip


def _count(conn, table: str, key: str, value) -> int:
    return conn.execute(
        f"SELECT count(*) FROM {table} WHERE tenant_id = %s AND {key} = %s", (TENANT, value)
    ).fetchone()[0]


def test_a_second_writer_finds_new_ids_without_waiting_and_adds_them_once(warehouse_env):
    with psycopg.connect(warehouse_env) as first, psycopg.connect(warehouse_env) as second:
        first_tx = first.transaction()
        first_tx.__enter__()
        # the first writer adds store S-new, customer 70001 and product 90001, uncommitted
        write_batch(first, tenant=TENANT, inventory=[],
                    baskets=[_basket(80001, 70001, "S-new", [90001, 90002])])  # fmt: skip
        with second.transaction():
            second.execute("SET LOCAL lock_timeout = '1s'")
            # the same new ids plus one of its own: found without waiting for the first writer
            result = write_batch(second, tenant=TENANT, inventory=[], dimensions=False,
                                 baskets=[_basket(80002, 70001, "S-new", [90001, 90003])])  # fmt: skip
            assert result.inserted == 1
            assert result.unknown == {"stores": ["S-new"], "customers": [70001],
                                      "products": [90001, 90003]}  # fmt: skip
            assert _count(second, "products", "product_id", 90003) == 0  # not yet
            first_tx.__exit__(None, None, None)  # the first writer commits
            insert_dimensions(second, TENANT, result)
            assert result.unknown == {}
        for table, key, value in (("stores", "store_id", "S-new"),
                                  ("customers", "customer_id", 70001),
                                  ("products", "product_id", 90001),
                                  ("products", "product_id", 90002),
                                  ("products", "product_id", 90003)):  # fmt: skip
            assert _count(second, table, key, value) == 1, (table, value)
        assert (
            second.execute(
                "SELECT count(*) FROM transactions WHERE tenant_id = %s AND transaction_id IN"
                " (80001, 80002)",
                (TENANT,),
            ).fetchone()[0]
            == 2
        )


def test_inserting_the_dimensions_in_the_merge_waits_for_the_other_writer(warehouse_env):
    """Why the consumer defers them: with `dimensions=True` (the default, for a single writer)
    the second writer's insert of an id the first holds uncommitted waits for its commit."""
    with psycopg.connect(warehouse_env) as first, psycopg.connect(warehouse_env) as second:
        with first.transaction(force_rollback=True):
            write_batch(first, tenant=TENANT, inventory=[],
                        baskets=[_basket(81001, 71001, "S-other", [91001])])  # fmt: skip
            with pytest.raises(psycopg.errors.LockNotAvailable):
                with second.transaction():
                    second.execute("SET LOCAL lock_timeout = '300ms'")
                    write_batch(second, tenant=TENANT, inventory=[],
                                baskets=[_basket(81002, 71001, "S-other", [91001])])  # fmt: skip
