"""The whole feature set (customer behaviour, demographics, product statistics) against values
worked out by hand on a tiny warehouse; point-in-time rules; incremental runs equal to a full
recompute; online reads after `features materialize`."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis

from core.redis_keys import delete_matching
from features.catalog import CUSTOMER_BEHAVIOUR, CUSTOMER_DEMOGRAPHICS, PRODUCT_STATS
from features.customer_behaviour import compute_customer_behaviour
from features.customer_demographics import compute_customer_demographics
from features.product_stats import compute_product_stats
from features.refresh import refresh_features

pytestmark = pytest.mark.integration
T = "t1"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


FEB_1, MAR_1 = ts("2024-02-01"), ts("2024-03-01")
# (product_id, department)
PRODUCTS = [(11, "GROCERY"), (12, "PRODUCE"), (13, "MEAT"), (14, "FUEL"), (15, "KIOSK")]
# (customer_id, age, income, home_ownership, marital_status, household_size, comp, kids)
CUSTOMERS = [
    (1, "45-54", "50-74K", "Homeowner", "Married", "3", "2 Adults Kids", "1"),
    (2, None, None, None, None, None, None, None),
    (3, "65+", "250K+", "Renter", "Unmarried", "1", "1 Adult No Kids", "0"),
]
# basket: (transaction_id, customer_id, store, ts, week, lines)
# line: (product_id, quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc)
BASKETS = [
    (101, 1, "S1", ts("2024-01-05T10:00"), 1, [(11, 2, 10, 2, 0, 0), (12, 1, 5, 0, 1, 0.5)]),
    (102, 1, "S1", ts("2024-01-20T12:00"), 3, [(13, 1, 20, 0, 0, 0), (14, 30, 60, 0, 0, 0)]),
    (103, 1, "S2", ts("2024-02-10T09:00"), 6, [(11, 3, 15, 3, 0, 0)]),
    (201, 2, "S2", ts("2024-02-15T00:00"), 7, [(12, 4, 8, 0, 0, 0), (15, 1, 2, 0, 0, 0)]),
    (301, 3, "S1", ts("2024-01-10T08:00"), 2, [(11, 1, 5, 0, 0, 0)]),
]


def insert_baskets(conn: psycopg.Connection, baskets) -> None:
    for tx, customer, store, when, week, lines in baskets:
        total = sum(line[2] for line in lines)
        conn.execute(
            "INSERT INTO transactions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
            (T, tx, customer, store, when, week, len(lines), total),
        )
        for n, (product, qty, sales, retail, coupon, match) in enumerate(lines, 1):
            conn.execute(
                "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
                " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc, unit_price)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    T,
                    tx,
                    n,
                    product,
                    qty,
                    sales,
                    retail,
                    coupon,
                    match,
                    (sales + retail + match) / qty,
                ),  # fmt: skip
            )


@pytest.fixture
def conn(warehouse_env):
    with psycopg.connect(warehouse_env) as conn:
        conn.cursor().executemany(
            "INSERT INTO products (tenant_id, product_id, department) VALUES (%s, %s, %s)",
            [(T, p, d) for p, d in PRODUCTS],
        )
        conn.cursor().executemany(
            "INSERT INTO customers (tenant_id, customer_id, age, income, home_ownership,"
            " marital_status, household_size, household_comp, kids_count)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(T, *c) for c in CUSTOMERS],
        )
        conn.cursor().executemany(
            "INSERT INTO promotion_placements VALUES (%s, %s, %s, %s, %s, %s)",
            [(T, "S1", 11, 6, "A", "0"), (T, "S2", 11, 6, "B", "D"), (T, "S1", 12, 7, "0", "A")],
        )
        insert_baskets(conn, BASKETS)
        conn.commit()
        yield conn


def table(conn, name: str, features: list[str], key: str) -> dict[tuple, dict]:
    rows = conn.execute(
        f"SELECT {key}, event_timestamp, {', '.join(features)} FROM {name} WHERE tenant_id = %s",
        (T,),
    ).fetchall()
    return {(r[0], r[1]): dict(zip(features, r[2:], strict=True)) for r in rows}


def test_behaviour_matches_hand_computed_values(conn):
    with conn.transaction():
        written = compute_customer_behaviour(conn, tenant=T, as_of=[FEB_1, MAR_1])
    got = table(conn, "customer_behaviour", CUSTOMER_BEHAVIOUR.feature_names, "customer_id")
    # Feb 1: customers 1 (baskets 101, 102) and 3; Mar 1: all three.
    assert written == 5 and (2, FEB_1) not in got
    c1 = got[(1, FEB_1)]
    shelf = (10 + 2) + (5 + 0.5) + 20 + 60  # sales + retail discount + coupon match
    assert c1 == pytest.approx(
        {
            "baskets": 2,
            "basket_value_mean": 47.5,  # 15 and 80
            "basket_value_sd": math.sqrt((32.5**2 + 32.5**2) / 1),  # sample sd
            "basket_units_mean": 2,  # 3 and 1: the 30 units of fuel do not count
            "basket_units_sd": math.sqrt(2),
            "items_per_basket": 2,
            "promo_basket_share": 0.5,  # 101 has a retail-discounted line
            "share_grocery": 10 / 95,
            "share_drug_gm": 0,
            "share_produce": 5 / 95,
            "share_meat": 20 / 95,
            "share_seafood": 0,
            "share_deli": 0,
            "share_bakery": 0,
            "share_fuel": 60 / 95,
            "share_other": 0,
            "discounted_spend_share": 10 / 95,
            "discount_depth": 2 / shelf,
            "coupon_redemption_rate": 1 / 4,
            "coupon_savings_share": 1 / shelf,
        }
    )
    # Mar 1: basket 103 joins customer 1; customer 2's unknown department is "other".
    assert got[(1, MAR_1)]["baskets"] == 3
    assert got[(1, MAR_1)]["share_grocery"] == pytest.approx(25 / 110)
    assert got[(2, MAR_1)]["share_other"] == pytest.approx(0.2)
    assert got[(2, MAR_1)]["basket_value_sd"] == 0  # one basket


def test_a_snapshot_never_sees_later_baskets(conn):
    at_103 = ts("2024-02-10T09:00")  # the instant of basket 103: not included
    with conn.transaction():
        compute_customer_behaviour(conn, tenant=T, as_of=[at_103])
        compute_product_stats(conn, tenant=T, as_of=[at_103])
    behaviour = table(conn, "customer_behaviour", ["baskets"], "customer_id")
    assert behaviour[(1, at_103)]["baskets"] == 2
    products = table(conn, "product_stats", PRODUCT_STATS.feature_names, "product_id")
    assert products[(11, at_103)]["units_91d"] == 3  # 2 (basket 101) + 1 (301), not 103's 3
    assert (15, at_103) not in products  # first sold on Feb 15


def test_product_stats_match_hand_computed_values(conn):
    with conn.transaction():
        compute_product_stats(conn, tenant=T, as_of=[FEB_1, MAR_1])
    got = table(conn, "product_stats", PRODUCT_STATS.feature_names, "product_id")
    p11 = got[(11, MAR_1)]  # sold Jan 5 (2 units, 10), Jan 10 (1, 5), Feb 10 (3, 15)
    assert p11 == pytest.approx(
        {
            "units_7d": 0,
            "units_28d": 3,  # Feb 10 is 20 days before Mar 1
            "units_91d": 6,
            "revenue_7d": 0,
            "revenue_28d": 15,
            "revenue_91d": 30,
            "shelf_price_91d": (12 + 5 + 18) / 6,  # (sales + retail disc + match) / units
            "display": 0,  # the newest basket before Mar 1 is in week 7: 11 placed in week 6
            "mailer": 0,
            "display_stores": 0,
            "mailer_stores": 0,
        }
    )
    p12 = got[(12, MAR_1)]
    assert (p12["mailer"], p12["mailer_stores"], p12["display"]) == (1, 1, 0)  # week 7, S1
    assert got[(11, FEB_1)]["units_28d"] == 3 and got[(11, FEB_1)]["units_7d"] == 0


def test_demographics_are_encoded_as_typed_features(conn):
    with conn.transaction():
        assert compute_customer_demographics(conn, tenant=T) == 3
    got = table(conn, "customer_demographics", CUSTOMER_DEMOGRAPHICS.feature_names, "customer_id")
    c1 = got[(1, ts("2024-01-05T10:00"))]  # stamped at the first basket
    assert c1 == {
        "has_demographics": 1, "age_band": "45-54", "age_years": 49.5, "income_band": "50-74K",
        "income_k": 62.0, "household_size": 3.0, "adults": 2.0, "kids": 1.0, "has_kids": 1.0,
        "homeowner": 1.0, "married": 1.0, "household_comp": "2 Adults Kids",
    }  # fmt: skip
    c2 = got[(2, ts("2024-02-15T00:00"))]
    assert c2["has_demographics"] == 0 and c2["age_band"] == "unknown"
    assert c2["age_years"] is None and c2["homeowner"] is None  # unknown, not invented
    c3 = got[(3, ts("2024-01-10T08:00"))]
    assert (c3["age_years"], c3["income_k"], c3["homeowner"], c3["has_kids"]) == (70, 275, 0, 0)


SNAPSHOT_VIEWS = {
    "customer_behaviour": ("customer_id", CUSTOMER_BEHAVIOUR.feature_names),
    "product_stats": ("product_id", PRODUCT_STATS.feature_names),
    "customer_rfm": ("customer_id", ["frequency", "monetary", "recency_days"]),
    "customer_demographics": ("customer_id", CUSTOMER_DEMOGRAPHICS.feature_names),
}


def newest(conn, name: str) -> dict[int, dict]:
    """Each entity's newest row (what the online store serves), with its created_at."""
    key, features = SNAPSHOT_VIEWS[name]
    rows = conn.execute(
        f"SELECT DISTINCT ON ({key}) {key}, created_at, {', '.join(features)} FROM {name}"
        f" WHERE tenant_id = %s ORDER BY {key}, event_timestamp DESC",
        (T,),
    ).fetchall()
    return {r[0]: {"created_at": r[1], **dict(zip(features, r[2:], strict=True))} for r in rows}


def values(rows: dict[int, dict]) -> dict[int, dict]:
    return {k: {f: v for f, v in row.items() if f != "created_at"} for k, row in rows.items()}


def test_incremental_run_equals_a_full_recompute(conn):
    first = refresh_features(conn, tenant=T)
    assert first["customer_behaviour"]["mode"] == "full"
    assert refresh_features(conn, tenant=T)["customer_behaviour"]["mode"] == "current"
    before = {name: newest(conn, name) for name in SNAPSHOT_VIEWS}
    # A new day: customer 3 buys product 13 again; customer 4 (no demographics) is new;
    # customer 1's household changes.
    insert_baskets(
        conn,
        [
            (302, 3, "S1", ts("2024-02-16T10:00"), 7, [(13, 2, 12, 1, 0, 0)]),
            (401, 4, "S2", ts("2024-02-16T11:00"), 7, [(12, 1, 3, 0, 0, 0)]),
        ],
    )
    conn.execute("INSERT INTO customers (tenant_id, customer_id) VALUES (%s, 4)", (T,))
    conn.execute(
        "UPDATE customers SET household_size = '4' WHERE tenant_id = %s AND customer_id = 1", (T,)
    )
    conn.commit()
    inc = refresh_features(conn, tenant=T)
    assert inc["customer_behaviour"]["mode"] == "incremental"
    assert inc["customer_behaviour"]["entities"] == 2  # customers 3 and 4 only
    assert inc["customer_behaviour"]["rows"] == 2
    # products: 12 and 13 sold; 11 and 15 unchanged in every window (no sale left one)
    assert inc["product_stats"]["mode"] == "incremental"
    assert inc["customer_demographics"]["rows"] == 2  # customer 4 new, customer 1 changed
    after = {name: newest(conn, name) for name in SNAPSHOT_VIEWS}
    for name in ("customer_behaviour", "product_stats"):
        untouched = {k for k in before[name] if k in after[name]} - {3, 4, 12, 13}
        for k in untouched:  # the very same rows, not rewritten
            assert after[name][k] == before[name][k], (name, k)
    refresh_features(conn, tenant=T, full=True)
    full = {name: newest(conn, name) for name in SNAPSHOT_VIEWS}
    for name in SNAPSHOT_VIEWS:
        inc_values, full_values = values(after[name]), values(full[name])
        assert inc_values.keys() == full_values.keys(), name
        for k, row in full_values.items():
            assert inc_values[k] == pytest.approx(row), (name, k)
    assert after["customer_demographics"][1]["household_size"] == 4


def test_late_baskets_make_the_run_full(conn):
    refresh_features(conn, tenant=T)
    insert_baskets(conn, [(501, 2, "S1", ts("2024-01-02T10:00"), 1, [(11, 1, 5, 0, 0, 0)])])
    conn.commit()
    run = refresh_features(conn, tenant=T)
    assert run["customer_behaviour"]["mode"] == "full"
    assert "before the watermark" in run["customer_behaviour"]["reason"]


def test_online_reads_of_the_new_views_after_materialize(warehouse_env, conn):
    from features.online import OnlineReader
    from features.store import project_for, reset_feature_stores
    from pipelines.jobs.features import materialize

    materialize(tenant=T)
    project = project_for(T)
    url = os.environ["RETAILPULSE_REDIS_URL"]
    try:
        behaviour = OnlineReader.from_url(url, project, CUSTOMER_BEHAVIOUR)
        assert behaviour.get(1)["baskets"] == 3
        demographics = OnlineReader.from_url(url, project, CUSTOMER_DEMOGRAPHICS)
        assert demographics.get(1)["age_band"] == "45-54"
        assert demographics.get(3)["income_k"] == 275
        products = OnlineReader.from_url(url, project, PRODUCT_STATS)
        assert products.get(12)["units_91d"] == 5
        # One more day, incremental: the new basket's customer is fresh online.
        insert_baskets(conn, [(601, 2, "S2", ts("2024-02-16T09:00"), 7, [(12, 2, 4, 0, 0, 0)])])
        conn.commit()
        counts = materialize(tenant=T)
        assert counts["refresh"]["customer_behaviour"]["entities"] == 1
        assert behaviour.get(2)["baskets"] == 2
        assert behaviour.get(1)["baskets"] == 3
        assert products.get(12)["units_91d"] == 7
    finally:
        client = redis.Redis.from_url(url)
        delete_matching(client, f"*{project}")
        reset_feature_stores()


def test_weekly_tables_are_kept_within_a_week_of_data(conn):
    calls = []
    jobs = {"forecast": lambda: calls.append("forecast") or {}}
    refresh_features(conn, tenant=T, weekly_jobs=jobs)
    insert_baskets(conn, [(701, 1, "S1", ts("2024-02-17T10:00"), 7, [(11, 1, 5, 0, 0, 0)])])
    conn.commit()
    kept = refresh_features(conn, tenant=T, weekly_jobs=jobs)
    assert kept["forecast"]["mode"] == "kept" and calls == ["forecast"]
    later = ts("2024-02-17T10:00") + timedelta(days=8)
    insert_baskets(conn, [(702, 1, "S1", later, 8, [(11, 1, 5, 0, 0, 0)])])
    conn.commit()
    assert refresh_features(conn, tenant=T, weekly_jobs=jobs)["forecast"]["mode"] == "full"
    assert calls == ["forecast", "forecast"]
