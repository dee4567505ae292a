"""Feast apply + materialize on a tiny warehouse; our Redis reader must agree with Feast."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from core.redis_keys import delete_matching
from features.catalog import CUSTOMER_RFM, SEGMENTER_FEATURES
from features.online import OnlineReader, feature_field

FEATURE_VIEW = CUSTOMER_RFM.name
JOIN_KEY = "customer_id"
SEGMENTER_REFS = CUSTOMER_RFM.refs

pytestmark = pytest.mark.integration

TENANT = "t1"


def ts(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def week_of(when: datetime) -> int:
    return (when - ts("2024-01-01T05:00")).days // 7 + 1


@pytest.fixture
def materialized(warehouse_env):
    """Three customers' baskets, then `retailpulse features materialize`; yields the project."""
    from features.store import needs_apply, project_for, reset_feature_stores
    from pipelines.jobs.features import materialize

    baskets = [  # (transaction_id, customer_id, store, timestamp, items, sales, retail_disc)
        (1, 1, "S1", ts("2024-01-05T10:00"), 3, 30, 2),
        (2, 1, "S2", ts("2024-02-10T09:00"), 2, 50, 10),
        (3, 2, "S2", ts("2024-02-15T00:00"), 4, 40, 0),
        (4, 3, "S1", ts("2024-01-20T12:00"), 1, 10, 0),
    ]
    with psycopg.connect(warehouse_env) as conn:
        for tx, customer, store, when, n, sales, disc in baskets:
            conn.execute(
                "INSERT INTO transactions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                # retailer weeks start on Mondays (2024-01-01 is one): week 1, 2, …
                (TENANT, tx, customer, store, when, week_of(when), n, sales, disc),
            )
            conn.execute(
                "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
                " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc)"
                " VALUES (%s, %s, 1, %s, %s, %s, %s, 0, 0)",
                (TENANT, tx, 100 + customer, n, sales, disc),
            )
        conn.commit()
    counts = materialize(tenant=TENANT)
    # Snapshots on Feb 1 (customers 1, 3) and just after the last basket (1, 2, 3).
    assert counts["rfm_rows"] == 5 and counts["snapshots"] == 2
    assert counts["online_customers"] == 3
    assert not needs_apply(TENANT)
    project = project_for(TENANT)
    yield project
    client = redis.Redis.from_url(os.environ["RETAILPULSE_REDIS_URL"])
    delete_matching(client, f"*{project}")
    reset_feature_stores()


def latest_rows(url: str) -> dict[int, dict[str, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT DISTINCT ON (customer_id) customer_id, {', '.join(SEGMENTER_FEATURES)}"
            " FROM customer_rfm WHERE tenant_id = %s ORDER BY customer_id, event_timestamp DESC",
            (TENANT,),
        ).fetchall()
    return {r[0]: dict(zip(SEGMENTER_FEATURES, r[1:], strict=True)) for r in rows}


def test_key_and_field_encoding_match_feast():
    key = EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(int64_val=-42)])
    reader = OnlineReader(redis.Redis(), "proj", CUSTOMER_RFM)
    assert reader.key(-42) == _redis_key("proj", key, entity_key_serialization_version=3)
    assert feature_field(FEATURE_VIEW, "monetary") == _mmh3(f"{FEATURE_VIEW}:monetary")


@pytest.mark.parametrize("store,product", [("316", 1000050), ("S-9", -1), ("", 2**40)])
def test_composite_key_encoding_matches_feast(store: str, product: int):
    from features.catalog import STORE_PRODUCT_WEEKLY

    key = EntityKey(
        join_keys=["store_id", "product_id"],
        entity_values=[Value(string_val=store), Value(int64_val=product)],
    )
    reader = OnlineReader(redis.Redis(), "proj", STORE_PRODUCT_WEEKLY)
    assert reader.key((store, product)) == _redis_key(
        "proj", key, entity_key_serialization_version=3
    )


def test_reader_returns_what_feast_serves(warehouse_env, materialized):
    from features.store import get_feature_store

    reader = OnlineReader.from_url(os.environ["RETAILPULSE_REDIS_URL"], materialized, CUSTOMER_RFM)
    store = get_feature_store(TENANT)
    expected = latest_rows(warehouse_env)
    assert set(expected) == {1, 2, 3}
    for customer_id in (1, 2, 3):
        feast_row = store.get_online_features(
            features=SEGMENTER_REFS, entity_rows=[{JOIN_KEY: customer_id}]
        ).to_dict()
        ours = reader.get(customer_id)
        assert ours == {name: feast_row[name][0] for name in SEGMENTER_FEATURES}
        assert ours == pytest.approx(expected[customer_id])
    assert list(reader.get(1)) == SEGMENTER_FEATURES
    assert reader.get(1)["frequency"] == 2


def test_reader_returns_none_for_unknown_customer(materialized):
    reader = OnlineReader.from_url(os.environ["RETAILPULSE_REDIS_URL"], materialized, CUSTOMER_RFM)
    assert reader.get(987654) is None
    many = reader.get_many([2, 987654, 1])
    assert many[1] is None
    assert many[0] == reader.get(2) and many[2] == reader.get(1)
    # Another project's reader sees nothing: tenants never share keys.
    assert (
        OnlineReader.from_url(os.environ["RETAILPULSE_REDIS_URL"], "other", CUSTOMER_RFM).get(1)
        is None
    )


def test_training_frame_is_point_in_time(warehouse_env, materialized):
    from features.offline import training_frame

    latest = training_frame(tenant=TENANT)
    assert latest["customer_id"].tolist() == [1, 2, 3]
    expected = latest_rows(warehouse_env)
    for row in latest.to_dict("records"):
        assert {k: row[k] for k in SEGMENTER_FEATURES} == pytest.approx(
            expected[row["customer_id"]]
        )

    # On Feb 10 the Feb 1 snapshot is the newest one: customer 2 had not bought yet,
    # and customer 1's Feb 10 basket is not counted.
    feb = training_frame(tenant=TENANT, as_of=ts("2024-02-10T12:00"))
    assert feb["customer_id"].tolist() == [1, 3]
    c1 = feb.set_index("customer_id").loc[1]
    assert c1["frequency"] == 1 and c1["monetary"] == 30


def test_model_feature_views_are_computed_and_online(warehouse_env, materialized):
    """Materialize also fills the anomaly detector's store x day view and the churn view."""
    from features.catalog import CUSTOMER_CHURN, STORE_DAILY

    url = os.environ["RETAILPULSE_REDIS_URL"]
    churn = OnlineReader.from_url(url, materialized, CUSTOMER_CHURN).get_many([1, 2, 3, 99])
    assert churn[3] is None
    assert [row["baskets_all"] for row in churn[:3]] == [2.0, 1.0, 1.0]
    # customer 1 last bought Feb 10 09:00; the snapshot is the end of Feb 15 (newest day)
    assert churn[0]["recency_days"] == pytest.approx(5 + 15 / 24, abs=0.01)
    assert churn[0]["distinct_stores"] == 2.0
    # customer 2's only basket: the documented gap fill (mean gap = the window length)
    assert churn[1]["gap_sd_days"] == 0.0 and churn[1]["last_gap_over_mean"] == 1.0
    daily = OnlineReader.from_url(url, materialized, STORE_DAILY)
    # the basket at 2024-02-15 00:00 UTC belongs to business day Feb 14 (day starts 05:00)
    s2 = daily.get("S2", with_ts=True)
    assert s2["sales"] == 40.0 and s2["transactions"] == 1
    assert datetime.fromtimestamp(s2["_event_timestamp"], UTC) == ts("2024-02-15T05:00")
    assert daily.get("S1")["sales"] == 10.0


def test_views_read_together_equal_their_separate_reads(materialized):
    """One round trip over several views (the forecast route's read) answers as one per view,
    including the unknown entities (None) and the event times."""
    import asyncio

    import redis.asyncio as aioredis

    from features.catalog import STORE_DAILY
    from features.online import AsyncOnlineReader, get_many_views

    async def read() -> tuple[list, list]:
        client = aioredis.Redis.from_url(os.environ["RETAILPULSE_REDIS_URL"])
        customers = AsyncOnlineReader(client, materialized, CUSTOMER_RFM)
        stores = AsyncOnlineReader(client, materialized, STORE_DAILY)
        together = await get_many_views(
            [(customers, [3, 99, 1], False), (stores, ["S2", "nope", "S1"], True)]
        )
        apart = [
            await customers.get_many([3, 99, 1]),
            await stores.get_many(["S2", "nope", "S1"], with_ts=True),
        ]
        await client.aclose()
        return together, apart

    together, apart = asyncio.run(read())
    assert together == apart
    assert together[0][1] is None and together[1][1] is None
    assert together[1][0]["sales"] == 40.0 and together[1][0]["_event_timestamp"]
