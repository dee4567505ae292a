"""Incremental feature runs give what a full recomputation gives, on a small generated sample:
customer RFM computed only for the customers who shopped and carried forward for the others
(features/rfm.py), and the online store written by our own writer byte for byte as Feast writes
it (features/online_write.py)."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis

from core.redis_keys import delete_matching
from features.catalog import CUSTOMER_RFM, FEATURE_VIEWS
from features.refresh import refresh_features

pytestmark = pytest.mark.integration
T = "t_inc"
START = datetime(2024, 1, 3, tzinfo=UTC)
RETAILER_TZ = ZoneInfo("America/New_York")  # retailer weeks are local (features/forecast.py)
STORES = ["S1", "S2", "S3", "S4"]
PRODUCTS = list(range(100, 160))
DEPARTMENTS = ["GROCERY", "PRODUCE", "MEAT", "FUEL", "KIOSK", None]


def add_baskets(conn: psycopg.Connection, baskets: list[tuple]) -> None:
    """baskets: (transaction_id, customer_id, store, ts, [(product, qty, sales, retail,
    coupon, match)])."""
    for tx, customer, store, when, lines in baskets:
        total = round(sum(line[2] for line in lines), 2)
        week = (when.astimezone(RETAILER_TZ).date() - START.date()).days // 7 + 1
        conn.execute(
            "INSERT INTO transactions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
            (T, tx, customer, store, when, week, len(lines), total),
        )
        conn.cursor().executemany(
            "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
            " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc, unit_price)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (T, tx, n, p, q, s, r, c, m, (s + r + m) / q)
                for n, (p, q, s, r, c, m) in enumerate(lines, 1)
            ],
        )


def random_basket(rng: random.Random, tx: int, customer: int, when: datetime) -> tuple:
    lines = []
    for product in rng.sample(PRODUCTS, rng.randint(1, 5)):
        qty = rng.randint(1, 4)
        sales = round(qty * rng.uniform(0.5, 9.0), 2)
        retail = round(sales * 0.2, 2) if rng.random() < 0.3 else 0.0
        coupon = 0.5 if rng.random() < 0.1 else 0.0
        lines.append((product, qty, sales, retail, coupon, 0.0))
    return (tx, customer, rng.choice(STORES), when, lines)


@pytest.fixture
def conn(warehouse_env):
    """Three months of baskets of 40 customers (some of them without demographics)."""
    rng = random.Random(8)
    with psycopg.connect(warehouse_env) as conn:
        conn.cursor().executemany(
            "INSERT INTO products (tenant_id, product_id, department) VALUES (%s, %s, %s)",
            [(T, p, DEPARTMENTS[p % len(DEPARTMENTS)]) for p in PRODUCTS],
        )
        conn.cursor().executemany(
            "INSERT INTO customers (tenant_id, customer_id, age, income) VALUES (%s, %s, %s, %s)",
            [(T, c, "45-54" if c % 3 else None, "50-74K" if c % 3 else None) for c in range(1, 42)],
        )
        baskets, tx = [], 1
        for _ in range(400):
            # opening hours 07:00-17:00 in New York, to 2024-03-29
            when = START + timedelta(days=rng.randint(0, 86), minutes=rng.randint(720, 1320))
            baskets.append(random_basket(rng, tx, rng.randint(1, 40), when))
            tx += 1
        add_baskets(conn, baskets)
        conn.commit()
        yield conn


def rfm_rows(conn, at: list[datetime]) -> dict[tuple, tuple]:
    rows = conn.execute(
        f"SELECT customer_id, event_timestamp, {', '.join(CUSTOMER_RFM.feature_names)}"
        " FROM customer_rfm WHERE tenant_id = %s AND event_timestamp = ANY(%s)",
        (T, at),
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_incremental_rfm_equals_a_full_recompute(conn):
    refresh_features(conn, tenant=T)
    # A new "day" crossing a month start (2024-04-01 becomes a snapshot time, then the new
    # latest): 4 customers shop again, one of them at a new store, and customer 41 is new.
    rng = random.Random(80)
    new = [
        random_basket(rng, 1000 + i, c, datetime(2024, 3, 31, 20, tzinfo=UTC) + timedelta(hours=i))
        for i, c in enumerate([3, 7, 7, 12, 41, 25])
    ]
    new[0] = (new[0][0], 3, "S9", new[0][3], new[0][4])
    add_baskets(conn, new)
    conn.commit()
    run = refresh_features(conn, tenant=T)
    rfm = run["customer_rfm"]
    assert rfm["mode"] == "incremental"
    assert rfm["entities"] == 5  # customers 3, 7, 12, 25, 41 computed; the rest carried
    times = [datetime.fromisoformat(t) for t in rfm["snapshots"]]
    assert len(times) == 2 and times[0] == datetime(2024, 4, 1, tzinfo=UTC)
    incremental = rfm_rows(conn, times)
    customers = {c for c, _ in incremental}
    assert len(customers) == 41 and rfm["rows"] == 41 * 2 - 1  # 41 is new after April 1
    refresh_features(conn, tenant=T, full=True)
    full = rfm_rows(conn, times)
    assert incremental.keys() == full.keys()
    for key, row in full.items():
        assert incremental[key] == pytest.approx(row, rel=1e-12, abs=1e-9), key
    # the carried rows moved their ages with the snapshot time
    later = incremental[(1, times[1])]
    earlier = incremental[(1, times[0])]
    assert later[0] - earlier[0] == pytest.approx((times[1] - times[0]).total_seconds() / 86400)


def test_carried_rfm_needs_the_previous_snapshot_time():
    from features.rfm import compute_customer_rfm

    with pytest.raises(ValueError, match="both"):
        compute_customer_rfm(None, tenant=T, as_of=[START], customers=[1])  # type: ignore[arg-type]


def _hashes(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    return {
        key: client.hgetall(key)
        for key in client.scan_iter(match=b"*" + project.encode(), count=1000)
    }


def test_online_writer_writes_the_bytes_feast_writes(warehouse_env, conn):
    """Every view of the catalog (doubles, int64s, strings, NULLs, composite keys): Feast's own
    first materialization, then the same rows through features/online_write.py."""
    from features.online_write import write_view_since
    from features.store import project_for, reset_feature_stores
    from pipelines.jobs.features import materialize

    url = os.environ["RETAILPULSE_REDIS_URL"]
    client = redis.Redis.from_url(url)
    project = project_for(T)
    try:
        materialize(tenant=T)  # first run: Feast's own materialize of every view
        feast = _hashes(client, project)
        assert feast, "Feast wrote nothing"
        client.delete(*feast)
        low, high = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        for spec in FEATURE_VIEWS.values():
            # Feast loaded each view from its TTL window; the same window here
            newest = conn.execute(
                f"SELECT max(event_timestamp) FROM {spec.table} WHERE tenant_id = %s", (T,)
            ).fetchone()[0]
            if newest is None:
                continue
            start = max(low, newest - spec.ttl - timedelta(seconds=1))
            write_view_since(
                conn, client, project=project, spec=spec, tenant=T, start=start, end=high
            )
        ours = _hashes(client, project)
        assert ours.keys() == feast.keys()
        for key, fields in feast.items():
            assert ours[key] == fields, key
        # A second write of the same rows changes nothing (only newer rows replace online ones)
        spec = FEATURE_VIEWS[CUSTOMER_RFM.name]
        again = write_view_since(
            conn, client, project=project, spec=spec, tenant=T, start=low, end=high
        )
        assert again == 0
    finally:
        delete_matching(client, f"*{project}")
        reset_feature_stores()
