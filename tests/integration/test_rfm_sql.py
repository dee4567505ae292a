"""customer_rfm snapshots against values worked out by hand from a tiny warehouse."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from features.catalog import SEGMENTER_FEATURES
from features.rfm import compute_customer_rfm

pytestmark = pytest.mark.integration


def ts(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


# (tenant, transaction_id, customer_id, store_id, timestamp, item_count, total_sales)
TRANSACTIONS = [
    ("t1", 101, 1, "S1", ts("2024-01-05T10:00"), 3, 30),  # Friday
    ("t1", 102, 1, "S2", ts("2024-01-20T12:00"), 1, 10),  # Saturday
    ("t1", 103, 1, "S1", ts("2024-02-10T09:00"), 2, 50),  # Saturday
    ("t1", 201, 2, "S2", ts("2024-02-15T00:00"), 4, 40),  # Thursday
    ("t1", 301, 3, "S3", ts("2024-01-10T08:00"), 1, 0),  # a free item: 0 sales, 0 discount
    ("t2", 101, 1, "S9", ts("2024-01-06T10:00"), 9, 999),  # another tenant, same ids
]
# (tenant, transaction_id, line_no, product_id, quantity, sales_value, retail_disc, coupon_disc)
ITEMS = [
    ("t1", 101, 1, 11, 1, 10, 2, 0),
    ("t1", 101, 2, 12, 2, 20, 0, 1),
    ("t1", 102, 1, 11, 1, 10, 0, 0),
    ("t1", 103, 1, 13, 2, 50, 10, 0),
    ("t1", 201, 1, 12, 4, 40, 0, 0),
    ("t1", 301, 1, 19, 1, 0, 0, 0),
    ("t2", 101, 1, 11, 9, 999, 500, 5),
]

FEB_1, MAR_1 = ts("2024-02-01"), ts("2024-03-01")


@pytest.fixture
def conn(warehouse_env):
    with psycopg.connect(warehouse_env) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO transactions (tenant_id, transaction_id, customer_id, store_id,"
                " transaction_timestamp, week, item_count, total_sales, total_discount)"
                " VALUES (%s, %s, %s, %s, %s, 1, %s, %s, 0)",
                TRANSACTIONS,
            )
            cur.executemany(
                "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
                " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
                ITEMS,
            )
        conn.commit()
        yield conn


def rows(conn, tenant="t1") -> dict[tuple[int, datetime], dict[str, float]]:
    cols = ", ".join(SEGMENTER_FEATURES)
    result = conn.execute(
        f"SELECT customer_id, event_timestamp, {cols} FROM customer_rfm WHERE tenant_id = %s",
        (tenant,),
    ).fetchall()
    return {(r[0], r[1]): dict(zip(SEGMENTER_FEATURES, r[2:], strict=True)) for r in result}


def test_snapshots_match_hand_computed_values(conn):
    written = compute_customer_rfm(conn, tenant="t1", as_of=[FEB_1, MAR_1])
    got = rows(conn)

    # Customers 1 and 3 at both dates; customer 2 has not bought yet on Feb 1 -> no row.
    assert written == 5 == len(got)
    assert (2, FEB_1) not in got
    assert got[(1, FEB_1)] == pytest.approx(
        {
            "recency_days": 11.5,  # Jan 20 12:00 -> Feb 1 00:00
            "frequency": 2,
            "monetary": 40,
            "avg_basket_value": 20,
            "avg_items_per_basket": 2,  # (3 + 1) / 2
            "distinct_products": 2,  # 11, 12
            "discount_share": 2 / 42,  # retail 2 / (sales 40 + retail 2)
            "coupon_share": 0.5,  # basket 101 used a coupon
            "tenure_days": 26 + 14 / 24,  # Jan 5 10:00 -> Feb 1 00:00
            "weekend_share": 0.5,  # Saturday Jan 20
            "stores_visited": 2,
        }
    )
    # Mar 1 (2024 is a leap year): basket 103 joins; the other tenant's basket 101 never counts.
    assert got[(1, MAR_1)] == pytest.approx(
        {
            "recency_days": 19 + 15 / 24,  # Feb 10 09:00 -> Mar 1 00:00
            "frequency": 3,
            "monetary": 90,
            "avg_basket_value": 30,
            "avg_items_per_basket": 2,
            "distinct_products": 3,
            "discount_share": 12 / 102,  # retail 12 / (sales 90 + retail 12)
            "coupon_share": 1 / 3,
            "tenure_days": 55 + 14 / 24,
            "weekend_share": 2 / 3,
            "stores_visited": 2,
        }
    )
    assert got[(2, MAR_1)] == pytest.approx(
        {
            "recency_days": 15,
            "frequency": 1,
            "monetary": 40,
            "avg_basket_value": 40,
            "avg_items_per_basket": 4,
            "distinct_products": 1,
            "discount_share": 0,
            "coupon_share": 0,
            "tenure_days": 15,
            "weekend_share": 0,
            "stores_visited": 1,
        }
    )
    # Zero sales and zero discount: shares are 0, not a division error.
    assert got[(3, FEB_1)]["discount_share"] == 0
    assert got[(3, FEB_1)]["monetary"] == 0


def test_cutoff_excludes_a_basket_at_the_as_of_instant(conn):
    at_basket_103 = ts("2024-02-10T09:00")
    compute_customer_rfm(conn, tenant="t1", as_of=[at_basket_103])
    c1 = rows(conn)[(1, at_basket_103)]
    assert c1["frequency"] == 2
    assert c1["monetary"] == 40
    assert c1["recency_days"] == pytest.approx(20 + 21 / 24)  # from Jan 20 12:00


def test_default_as_of_is_month_ends_plus_latest_and_rerun_is_idempotent(conn):
    first = compute_customer_rfm(conn, tenant="t1")
    second = compute_customer_rfm(conn, tenant="t1")
    got = rows(conn)
    latest = ts("2024-02-15T00:00:01")  # last basket + 1 s, so it covers every basket
    # Feb 1: customers 1 and 3; latest: customers 1, 2 and 3. Mar 1 is after the data.
    assert first == second == 5 == len(got)
    assert {t for _, t in got} == {FEB_1, latest}
    assert got[(1, latest)]["frequency"] == 3
    assert got[(2, latest)]["recency_days"] == pytest.approx(1 / 86400)
    assert compute_customer_rfm(conn, tenant="t2") == 1
    assert rows(conn, "t2")[(1, ts("2024-01-06T10:00:01"))]["monetary"] == 999
    assert len(rows(conn)) == 5  # t2's snapshot left t1's rows alone


def test_tenant_without_data_writes_nothing(conn):
    assert compute_customer_rfm(conn, tenant="nobody") == 0
