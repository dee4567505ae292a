"""Analytics rollups, routes and cache on the sample warehouse and generated tenants."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from analytics import rollups
from analytics.cache import invalidate
from core.db import connect
from core.events import Landed
from serving.app import create_api
from serving.deps import Backends, store_scope

API = "/api/v1/analytics"
ROLLUPS = {
    "sales_hourly": "day, store_id, hour",
    "sales_daily": "day, store_id",
    "product_weekly": "product_id, week",
    "category_daily": "department, product_category, day",
    "basket_sets": "day, store_id",
}
LOCAL = "((t.transaction_timestamp AT TIME ZONE 'UTC') - interval '5 hours')"


@pytest.fixture
def client(sample_warehouse) -> TestClient:
    return TestClient(create_api(Backends(default_tenant="default")))


def _snapshot(conn, tenant: str) -> dict[str, list[tuple]]:
    return {
        table: conn.execute(
            f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY {order}", (tenant,)
        ).fetchall()
        for table, order in ROLLUPS.items()
    }


def test_rollups_equal_the_raw_aggregation(sample_warehouse) -> None:
    with connect() as conn:
        raw_daily = conn.execute(
            f"""SELECT ({LOCAL})::date, t.store_id, sum(i.sales_value), sum(i.quantity),
                       count(DISTINCT t.transaction_id), count(DISTINCT t.customer_id)
                FROM transactions t JOIN transaction_items i USING (tenant_id, transaction_id)
                WHERE t.tenant_id = 'default' GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        daily = conn.execute(
            "SELECT day, store_id, revenue, units, baskets, customers FROM sales_daily"
            " WHERE tenant_id = 'default' ORDER BY 1, 2"
        ).fetchall()
        assert daily == raw_daily and len(daily) > 100
        hourly = conn.execute(
            "SELECT day, store_id, sum(revenue), sum(units), sum(baskets) FROM sales_hourly"
            " WHERE tenant_id = 'default' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert hourly == [r[:5] for r in raw_daily]
        raw_weekly = conn.execute(
            f"""SELECT i.product_id, ({LOCAL})::date - (extract(isodow FROM {LOCAL})::int - 1),
                       sum(i.sales_value), sum(i.quantity), count(*)
                FROM transactions t JOIN transaction_items i USING (tenant_id, transaction_id)
                WHERE t.tenant_id = 'default' GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        weekly = conn.execute(
            "SELECT product_id, week, revenue, units, lines FROM product_weekly"
            " WHERE tenant_id = 'default' ORDER BY 1, 2"
        ).fetchall()
        assert weekly == raw_weekly
        raw_category = conn.execute(
            f"""SELECT coalesce(p.department, '(unknown)'), ({LOCAL})::date, sum(i.sales_value)
                FROM transactions t JOIN transaction_items i USING (tenant_id, transaction_id)
                LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.product_id = i.product_id
                WHERE t.tenant_id = 'default' GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        category = conn.execute(
            "SELECT department, day, sum(revenue) FROM category_daily"
            " WHERE tenant_id = 'default' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert category == raw_category
        baskets, pairs = conn.execute(
            "SELECT sum(baskets), sum(length(items)) / 2 FROM basket_sets"
            " WHERE tenant_id = 'default'"
        ).fetchone()
        raw_pairs = conn.execute(
            """SELECT count(*) FROM (SELECT DISTINCT i.transaction_id,
                      coalesce(p.department, '(unknown)'), coalesce(p.product_category, '(unknown)')
                  FROM transaction_items i LEFT JOIN products p USING (tenant_id, product_id)
                  WHERE i.tenant_id = 'default') x"""
        ).fetchone()[0]
        assert baskets == sample_warehouse["transactions"] and pairs == raw_pairs


# ------------------------------------------------------------------ a generated tenant

PRODUCTS = {  # product → (department, category)
    1: ("DAIRY", "MILK"), 2: ("DAIRY", "CHEESE"), 3: ("BAKERY", "BREAD"), 4: ("PRODUCE", "FRUIT"),
}  # fmt: skip
# (store, UTC time, products): day 1 and 2 in a first batch, day 3 in a second; 02:00 UTC
# belongs to the previous business day.
BASKETS = [
    ("G1", datetime(2030, 3, 4, 15, tzinfo=UTC), [1, 2]),
    ("G1", datetime(2030, 3, 4, 16, tzinfo=UTC), [1, 2, 3]),
    ("G2", datetime(2030, 3, 4, 17, tzinfo=UTC), [1, 3]),
    ("G2", datetime(2030, 3, 5, 12, tzinfo=UTC), [1, 2, 4]),
    ("G1", datetime(2030, 3, 5, 18, tzinfo=UTC), [3, 4]),
    ("G1", datetime(2030, 3, 6, 2, tzinfo=UTC), [1, 2]),
    ("G2", datetime(2030, 3, 6, 14, tzinfo=UTC), [2, 4]),
    ("G1", datetime(2030, 3, 6, 19, tzinfo=UTC), [1, 2, 3, 4]),
]


def _messages(rows):
    from integrations.messages import BasketLine, BasketMessage

    return [
        BasketMessage(
            transaction_id=900_000 + n, store_id=store, customer_id=70 + n % 3, timestamp=ts,
            lines=[BasketLine(product_id=p, quantity=p, sales_value=1.25 * p) for p in products],
        )
        for n, (store, ts, products) in rows
    ]  # fmt: skip


def _write(tenant: str, rows) -> int:
    from core import events
    from integrations.warehouse import write_batch

    with connect() as conn:
        result = write_batch(conn, tenant=tenant, baskets=_messages(rows), inventory=[])
        # from the batch itself: a re-delivery inserts nothing, and refreshing must change nothing
        landed = events.sales_landed(
            tenant, "stream", [ts for _, (_, ts, _) in rows], [s for _, (s, _, _) in rows]
        )
        rollups.refresh(conn, landed)
    invalidate(landed)
    return result.inserted


@pytest.fixture(scope="module")
def generated(service_env) -> str:
    tenant = f"gen_{uuid.uuid4().hex[:8]}"
    with connect() as conn:
        for pid, (dept, cat) in PRODUCTS.items():
            conn.execute(
                "INSERT INTO products (tenant_id, product_id, department, product_category)"
                " VALUES (%s, %s, %s, %s)",
                (tenant, pid, dept, cat),
            )
    rows = list(enumerate(BASKETS))
    assert _write(tenant, rows[:5]) == 5
    assert _write(tenant, rows[5:]) == 3
    return tenant


def test_incremental_refresh_matches_a_rebuild_and_is_idempotent(generated) -> None:
    with connect() as conn:
        incremental = _snapshot(conn, generated)
    assert [r[1:3] for r in incremental["sales_daily"]] == [
        (date(2030, 3, 4), "G1"),
        (date(2030, 3, 4), "G2"),
        (date(2030, 3, 5), "G1"),
        (date(2030, 3, 5), "G2"),
        (date(2030, 3, 6), "G1"),
        (date(2030, 3, 6), "G2"),
    ]  # fmt: skip  (the 02:00 UTC basket of the 6th is the 5th's business day)
    assert _write(generated, list(enumerate(BASKETS))[5:]) == 0  # re-delivered batch
    with connect() as conn:
        assert _snapshot(conn, generated) == incremental
        rollups.rebuild(conn, tenant=generated)
        assert _snapshot(conn, generated) == incremental


def test_basket_rules_equal_a_hand_count(generated, sample_warehouse) -> None:
    client = TestClient(create_api(Backends(default_tenant="default")))
    r = client.post(
        f"{API}/basket/analysis",
        headers={"X-Tenant-ID": generated},
        json={"startDate": "2030-03-01", "minSupport": 0.25, "maxRules": 100},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["baskets"] == len(BASKETS)
    cats = {p: c for p, (_, c) in PRODUCTS.items()}
    sets = [{cats[p] for p in products} for _, _, products in BASKETS]
    for rule in data["rules"]:
        a, b = rule["antecedent"]["category"], rule["consequent"]["category"]
        n_a = sum(a in s for s in sets)
        n_b = sum(b in s for s in sets)
        both = sum(a in s and b in s for s in sets)
        assert rule["baskets"] == both
        assert rule["support"] == pytest.approx(both / len(sets), abs=1e-6)
        assert rule["confidence"] == pytest.approx(both / n_a, abs=1e-4)
        assert rule["lift"] == pytest.approx(both / n_a / (n_b / len(sets)), abs=1e-4)
    found = {(x["antecedent"]["category"], x["consequent"]["category"]) for x in data["rules"]}
    assert ("MILK", "CHEESE") in found  # 5 of 8 baskets
    assert all(x["support"] >= 0.25 for x in data["rules"])


def test_tenants_never_see_each_others_rows(generated, client) -> None:
    mine = client.get(f"{API}/stores/comparison", headers={"X-Tenant-ID": generated},
                      params={"startDate": "2030-03-01", "endDate": "2030-03-10"})  # fmt: skip
    assert {s["storeId"] for s in mine.json()["data"]["stores"]} == {"G1", "G2"}
    theirs = client.get(f"{API}/stores/comparison", params={"limit": 200})
    assert not {"G1", "G2"} & {s["storeId"] for s in theirs.json()["data"]["stores"]}
    # the default tenant has no sales in 2030; the generated tenant no Complete Journey product
    empty = client.get(f"{API}/trends", params={"startDate": "2030-03-01", "endDate": "2030-03-10"})
    assert sum(p["revenue"] for p in empty.json()["data"]["points"]) == 0
    missing = client.get(f"{API}/products/1082185/performance",
                         headers={"X-Tenant-ID": generated})  # fmt: skip
    assert missing.status_code == 404


# ------------------------------------------------------------------ routes on the sample


def test_answers_are_cached_until_new_data_lands(client) -> None:
    url = f"{API}/trends?interval=week"
    first, second = client.get(url), client.get(url)
    assert first.headers["x-cache"] in ("MISS", "HIT") and second.headers["x-cache"] == "HIT"
    assert first.json()["data"] == second.json()["data"]
    invalidate(Landed(tenant="default", source="stream", first_day=date(2017, 12, 30),
                      last_day=date(2017, 12, 31)))  # fmt: skip
    third = client.get(url)
    assert third.headers["x-cache"] == "MISS" and third.json()["data"] == first.json()["data"]


def test_realtime_totals_match_the_day_in_the_warehouse(client) -> None:
    r = client.get(f"{API}/sales/realtime", params={"by": "store"})
    data = r.json()["data"]
    with connect() as conn:
        last, revenue, baskets = conn.execute(
            f"""SELECT ({LOCAL})::date, sum(total_sales), count(*) FROM transactions t
                WHERE tenant_id = 'default' GROUP BY 1 ORDER BY 1 DESC LIMIT 1"""
        ).fetchone()
    assert data["asOf"] == last.isoformat()
    assert data["totals"]["revenue"] == pytest.approx(float(revenue))
    assert data["totals"]["baskets"] == baskets
    assert sum(b["baskets"] for b in data["breakdown"]) == baskets
    assert data["comparedWith"] == (last - timedelta(days=7)).isoformat()


def test_store_comparison_paginates_and_sorts(client) -> None:
    params = {"startDate": "2017-01-01", "endDate": "2017-12-31", "limit": 5}
    page1 = client.get(f"{API}/stores/comparison", params={**params, "page": 1}).json()["data"]
    page2 = client.get(f"{API}/stores/comparison", params={**params, "page": 2}).json()["data"]
    assert page1["pagination"]["total"] == page2["pagination"]["total"] > 10
    ids1 = [s["storeId"] for s in page1["stores"]]
    ids2 = [s["storeId"] for s in page2["stores"]]
    assert len(ids1) == 5 and not set(ids1) & set(ids2)
    revenues = [s["revenue"] for s in page1["stores"] + page2["stores"]]
    assert revenues == sorted(revenues, reverse=True)
    asc = client.get(f"{API}/stores/comparison",
                     params={**params, "order": "asc", "sort": "baskets"}).json()["data"]  # fmt: skip
    assert [s["baskets"] for s in asc["stores"]] == sorted(s["baskets"] for s in asc["stores"])
    by_id = client.get(f"{API}/stores/comparison",
                       params={**params, "order": "asc", "sort": "storeId"}).json()["data"]  # fmt: skip
    assert [s["storeId"] for s in by_id["stores"]] == sorted(s["storeId"] for s in by_id["stores"])
    beyond = client.get(f"{API}/stores/comparison", params={**params, "page": 999}).json()
    assert beyond["data"]["stores"] == [] and beyond["data"]["pagination"]["total"] > 10


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("GET", "/stores/comparison?limit=0", None, "limit"),
        ("GET", "/stores/comparison?sort=price", None, "sort"),
        ("GET", "/stores/comparison?order=up", None, "order"),
        ("GET", "/trends?startDate=2017-05-01&endDate=2017-04-01", None, "startDate"),
        ("GET", "/trends?interval=month", None, "interval"),
        ("GET", "/sales/realtime?asOf=yesterday", None, "asOf"),
        ("GET", "/sales/realtime?untilHour=24", None, "untilHour"),
        ("GET", "/products/abc/performance", None, "productId"),
        ("POST", "/basket/analysis", {"minSupport": 0}, "minSupport"),
        ("POST", "/basket/analysis", {"level": "brand"}, "level"),
        ("POST", "/basket/analysis", {"startDate": "2017-05-01", "endDate": "2017-04-01"}, ""),
        ("POST", "/basket/analysis", {"bogus": 1}, "bogus"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client, method, url, body, field) -> None:
    r = client.request(method, API + url, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in r.json()["error"]["message"]


def test_unknown_product_and_department_are_404(client) -> None:
    r = client.get(f"{API}/products/999999999/performance")
    assert r.status_code == 404 and "999999999" in r.json()["error"]["message"]
    r = client.get(f"{API}/trends", params={"department": "NO SUCH DEPARTMENT"})
    assert r.status_code == 404


def test_product_performance_weeks_add_up(client) -> None:
    with connect() as conn:
        pid = conn.execute(
            "SELECT product_id FROM product_weekly WHERE tenant_id = 'default'"
            " GROUP BY 1 ORDER BY sum(units) DESC LIMIT 1"
        ).fetchone()[0]
    data = client.get(f"{API}/products/{pid}/performance",
                      params={"startDate": "2017-01-01", "endDate": "2017-12-31"}).json()["data"]  # fmt: skip
    assert data["units"] == sum(w["units"] for w in data["weeks"]) > 0
    assert data["margin"] is None and "cost" in data["marginNote"]
    assert data["source"] == "rollup"


def test_a_store_scoped_caller_sees_only_its_stores(client) -> None:
    with connect() as conn:
        store, pid = conn.execute(
            "SELECT t.store_id, i.product_id FROM transactions t"
            " JOIN transaction_items i USING (tenant_id, transaction_id)"
            " WHERE t.tenant_id = 'default' GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    client.app.dependency_overrides[store_scope] = lambda: frozenset({store})
    try:
        params = {"startDate": "2017-01-01", "endDate": "2017-12-31"}
        data = client.get(f"{API}/stores/comparison", params=params).json()["data"]
        assert [s["storeId"] for s in data["stores"]] == [store]
        other = client.get(f"{API}/stores/comparison", params={**params, "storeIds": "nope"})
        assert other.status_code == 403 and other.json()["error"]["code"] == "FORBIDDEN"
        perf = client.get(f"{API}/products/{pid}/performance", params=params).json()["data"]
        assert perf["source"].startswith("line items")
        with connect() as conn:
            units = conn.execute(
                "SELECT sum(i.quantity) FROM transactions t"
                " JOIN transaction_items i USING (tenant_id, transaction_id)"
                " WHERE t.tenant_id = 'default' AND t.store_id = %s AND i.product_id = %s",
                (store, pid),
            ).fetchone()[0]
        assert perf["units"] == units
        trend = client.get(f"{API}/trends", params={**params, "department": "GROCERY"})
        assert trend.status_code == 200 and trend.json()["data"]["source"].startswith("line")
    finally:
        client.app.dependency_overrides.clear()
