"""A tenant's first load has its rollups computed from the writer's frames
(analytics/rollup_frames.py): every table equals a rebuild from the warehouse, basket_sets byte
for byte; when the tenant holds baskets the frames do not, the rollups are rebuilt instead
(real Postgres)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pandas as pd
import pytest

from analytics import rollups
from core import events
from core.db import connect
from pipelines.ingest import ingest_completejourney
from pipelines.ingest_file import ingest_files
from tests.integration.test_rollups_delta import _mapping, assert_equals_a_rebuild

pytestmark = pytest.mark.integration

ROWS = [  # basket, UTC time, store, customer, product, department, category, quantity, total
    (11, "2024-03-09 20:00:00", "S1", 1, 1, "DAIRY", "MILK", 2, 2.5),  # Saturday
    (11, "2024-03-09 20:00:00", "S1", 1, 3, "BAKERY", "BREAD", 1, 1.99),
    (11, "2024-03-09 20:00:00", "S1", 1, 8, "DAIRY", "MILK", 1, 0.01),  # same category twice
    (12, "2024-03-10 12:00:00", "S1", 2, 2, "DAIRY", "CHEESE", 3, 10.47),
    (13, "2024-03-11 04:59:00", "S2", 1, 4, "PRODUCE", "FRUIT", 1, 0.99),  # business Sunday
    (14, "2024-03-11 05:00:00", "S2", 3, 1, "DAIRY", "MILK", -1, -1.25),  # a return, Monday
    (14, "2024-03-11 05:00:00", "S2", 3, 9, "", "", 2, 4.0),  # no department: (unknown)
    (15, "2024-03-11 09:00:00", "S1", 1, 4, "PRODUCE", "FRUIT", 5, 3.3),
    (16, "2024-03-11 09:30:00", "S1", 1, 2, "DAIRY", "CHEESE", 1, 3.49),  # same customer-day
    (10, "2024-03-12 03:00:00", "S1", 2, 3, "BAKERY", "BREAD", 2, 3.98),  # a smaller id, later
]


def _how(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "analytics.rollups"]


def _basket_sets(conn, tenant: str) -> list[tuple]:
    return conn.execute(
        "SELECT day, store_id, baskets, sizes, items FROM basket_sets WHERE tenant_id = %s"
        " ORDER BY day, store_id",
        (tenant,),
    ).fetchall()


def _basket_sets_equal_a_rebuild(tenant: str) -> list[tuple]:
    """basket_sets byte for byte as the SQL packs them (same basket and id order)."""
    with connect() as conn:
        kept = _basket_sets(conn, tenant)
        rollups.rebuild(conn, tenant=tenant)
        assert kept == _basket_sets(conn, tenant)
        conn.rollback()
    return kept


def _import_rows(tmp_path) -> str:
    """ROWS as a CSV file imported into a new tenant; returns the tenant."""
    tenant = f"rf_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "sales.csv"
    pd.DataFrame(ROWS, columns=["basket", "ts", "store", "customer", "product", "dept", "cat",
                                "qty", "total"]).to_csv(path, index=False)  # fmt: skip
    summary, _ = ingest_files([path], _mapping(tmp_path), tenant=tenant,
                              report_dir=tmp_path / "report")  # fmt: skip
    assert summary.files[0].accepted == len(ROWS)
    return tenant


def test_a_first_file_import_computes_the_rollups_a_rebuild_would(service_env, tmp_path, caplog):
    caplog.set_level("INFO", logger="analytics.rollups")
    tenant = _import_rows(tmp_path)
    assert any("first load" in m for m in _how(caplog))
    assert len(_basket_sets_equal_a_rebuild(tenant)) == 5
    kept = assert_equals_a_rebuild(tenant)
    # the figures themselves, by hand for two rows: a return, an unknown category
    daily = {(str(r[1]), r[2]): r[3:] for r in kept["sales_daily"]}
    revenue, units, baskets, customers = daily[("2024-03-11", "S1")][:4]
    assert (float(revenue), units, baskets, customers) == (10.77, 8, 3, 2)  # 15, 16, 10 (Tue 03:00)
    assert daily[("2024-03-11", "S2")][:4] == (pytest.approx(2.75), 1, 1, 1)
    names = {c[1]: (c[2], c[3]) for c in kept["analytics_categories"]}
    assert ("(unknown)", "(unknown)") in names.values()


def test_frames_that_are_not_all_of_the_tenant_are_not_trusted(service_env, tmp_path, caplog):
    """A writer that claims a first load while the tenant holds other baskets gets a rebuild."""
    caplog.set_level("INFO", logger="analytics.rollups")
    tenant = _import_rows(tmp_path)
    caplog.clear()
    with connect() as conn:
        baskets = pd.DataFrame(
            conn.execute(
                "SELECT transaction_id, store_id, customer_id, transaction_timestamp, total_sales,"
                " total_discount, item_count FROM transactions WHERE tenant_id = %s"
                " AND transaction_id <> 10",
                (tenant,),
            ).fetchall(),
            columns=list(rollups.rollup_frames.BASKET_COLUMNS),
        )
        lines = pd.DataFrame(columns=list(rollups.rollup_frames.LINE_COLUMNS))
        landed = events.sales_landed(tenant, "file", baskets["transaction_timestamp"],
                                     baskets["store_id"], database_url=None)  # fmt: skip
        events.in_transaction(conn, replace(landed, first_load=(baskets, lines)))
        assert not any("first load" in m for m in _how(caplog))
    assert_equals_a_rebuild(tenant)


def test_completejourney_first_ingest_rollups_equal_a_rebuild(service_env, caplog):
    """Real households: the catalogue's departments, coupons and discounts, many store-days."""
    caplog.set_level("INFO", logger="analytics.rollups")
    tenant = f"rf_{uuid.uuid4().hex[:8]}"
    ingest_completejourney(tenant=tenant, households=40)
    assert any("first load" in m for m in _how(caplog))
    assert len(_basket_sets_equal_a_rebuild(tenant)) > 100
    assert_equals_a_rebuild(tenant)
