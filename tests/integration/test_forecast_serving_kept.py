"""The forecaster deployment keeps the warehouse covariates it read (promotion history and
plan) per replica: its answers equal a fresh replica's, and a moved feature watermark makes it
read the warehouse again."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import serving
from tests.unit.test_forecast_serving import row_at
from tests.unit.test_forecaster_model import small_cfg

pytestmark = pytest.mark.integration

TENANT, STORE = "default", "s1"


def _place(conn, product: int, week: int, mailer: str) -> None:
    conn.execute(
        "INSERT INTO promotion_placements (tenant_id, store_id, product_id, week,"
        " display_location, mailer_location) VALUES (%s, %s, %s, %s, '0', %s)",
        (TENANT, STORE, product, week, mailer),
    )


def _move_watermark(conn) -> None:
    conn.execute(
        "INSERT INTO feature_watermarks (tenant_id, feature_table, transactions, items, mode)"
        " VALUES (%s, 'forecast', 0, 0, 'full') ON CONFLICT (tenant_id, feature_table)"
        " DO UPDATE SET computed_at = clock_timestamp()",
        (TENANT,),
    )


def _replica():
    """A fresh forecaster replica serving an (untrained) LSTM that reads the promotions."""
    from serving.deployments.forecaster import Forecaster
    from training.forecaster import ForecastBundle
    from training.models.forecaster import LSTMForecaster

    plan = ["display", "mailer"]
    model = LSTMForecaster(small_cfg(covariates=plan, future_covariates=plan, static=[]), [])
    model.nets = [model.new_net(0).eval()]
    return serving(
        Forecaster, ForecastBundle("lstm", model, {}, {50: "2017-12-11"}, {"last_week": 50}), TENANT
    )


def ask(replica, request: dict) -> dict:
    """The replica's answer to one request, awaited as the ingress does."""
    return asyncio.run(replica.forecast(TENANT, request))


def count_queries(replica) -> list[str]:
    """The warehouse queries the replica makes from now on (a list that grows)."""
    made: list[str] = []
    query = replica._aquery

    async def counted(sql: str, params):
        made.append(sql)
        return await query(sql, params)

    replica._aquery = counted
    return made


def test_kept_covariates_answer_as_a_fresh_read_until_the_watermark_moves(
    warehouse_env, monkeypatch
) -> None:
    import psycopg

    from serving.deployments import forecaster

    sold = {w: 3.0 + w % 3 for w in range(30, 51)}
    request = {
        "storeId": STORE,
        "store": {"last_week": 50},
        "horizon": 4,
        "items": [
            {"productId": pid, "attributes": {}, "weekly": row_at(50, sold)} for pid in (1, 2)
        ],
    }
    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _place(conn, 1, 48, "A")  # history: product 1 was in the mailer two weeks ago
        _move_watermark(conn)
    monkeypatch.setattr(forecaster, "FRESHNESS_S", 3600.0)  # however slow this machine is
    replica = _replica()
    first = ask(replica, request)
    queries = count_queries(replica)
    assert ask(replica, request) == first == ask(_replica(), request)
    assert queries == []  # kept: the second answer made no query

    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _place(conn, 2, 52, "A")  # the plan: product 2 goes into the mailer in week 52
        _move_watermark(conn)
    monkeypatch.setattr(forecaster, "FRESHNESS_S", 0.0)
    again = ask(replica, request)
    assert len(queries) == 2  # the state of the inputs, then the covariates anew
    assert again == ask(_replica(), request)
    assert again["forecasts"][0] == first["forecasts"][0]
    assert again["forecasts"][1] != first["forecasts"][1]
