"""The forecast route answers a pair from its batch score (`retailpulse score forecasts`: the
Redis keys of core/predictions.py) only while the score is what the served model would say
now: same version and run, same state of the warehouse inputs, same online inputs. Otherwise
the pair runs live, as before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest

from core.redis_keys import delete_matching
from tests.factories import serving
from tests.integration.test_forecast_serving_kept import (
    _move_watermark,
    _place,
    ask,
    count_queries,
)
from tests.unit.test_forecast_serving import row_at
from tests.unit.test_forecaster_model import small_cfg

pytestmark = pytest.mark.integration

TENANT, STORE, ORIGIN = "default", "s1", 50
PRODUCTS = (1, 2)


def _bundle():
    from training.forecaster import ForecastBundle
    from training.models.forecaster import LSTMForecaster

    plan = ["display", "mailer"]
    model = LSTMForecaster(small_cfg(covariates=plan, future_covariates=plan, static=[]), [])
    model.nets = [model.new_net(0).eval()]
    return ForecastBundle("lstm", model, {}, {ORIGIN: "2017-12-11"}, {"last_week": ORIGIN})


def _request(sold: dict[int, dict[int, float]], horizon: int = 4) -> dict:
    return {
        "storeId": STORE,
        "store": {"last_week": ORIGIN},
        "horizon": horizon,
        "items": [
            {"productId": pid, "attributes": {}, "weekly": row_at(ORIGIN, sold[pid])}
            for pid in PRODUCTS
        ],
    }


def _redis():
    import redis

    from core.settings import get_settings

    return redis.Redis.from_url(get_settings().redis_url)


def _score(bundle, conn, request: dict, version: str = "1", horizon: int = 4) -> None:
    """What `retailpulse score forecasts` publishes for the request's pairs: the scorer run on
    the pairs' histories and warehouse covariates, the meta key with the inputs' state."""
    from core import predictions
    from features.watermarks import forecast_state
    from serving.deployments.forecaster import history_of
    from training.scoring import ForecastScorer, frame_of

    state = forecast_state(conn, tenant=TENANT)  # read before the inputs, as the job does
    past, future = asyncio.run(
        _live_replica(bundle)._read_covariates(TENANT, STORE, list(PRODUCTS), ORIGIN, bundle)
    )
    batch = {
        "store_id": np.array([STORE] * len(PRODUCTS), dtype=object),
        "product_id": np.array(PRODUCTS),
        "history": [history_of(item["weekly"], ORIGIN) for item in request["items"]],
        "past": list(past),
        "future": list(future),
    }
    rows = frame_of(ForecastScorer(bundle, origin=ORIGIN, horizon=horizon)(batch))
    client = _redis()
    predictions.publish(
        client, tenant=TENANT, model="forecaster", version=int(version), run_id="run",
        scored_at=datetime.now(UTC), rows=rows,
        meta={"inputsState": state, "originWeek": ORIGIN, "horizon": horizon},
    )  # fmt: skip
    client.close()


def _with_scores(request: dict) -> dict:
    """The request as the route hands it over: the meta key and each pair's score, raw."""
    from core.predictions import meta_key, redis_key

    client = _redis()
    keys = [meta_key(TENANT, "forecaster")]
    keys += [redis_key(TENANT, "forecaster", f"{STORE}:{pid}") for pid in PRODUCTS]
    raws = client.mget(keys)
    client.close()
    return {**request, "scored": raws}


def _live_replica(bundle, version: str = "1"):
    from serving.deployments.forecaster import Forecaster

    return serving(Forecaster, bundle, TENANT, version)


def _sources(answer: dict) -> list[str]:
    return [f["source"] for f in answer["forecasts"]]


def _numbers(answer: dict) -> list[list[tuple[float, float, float]]]:
    return [[(w["p10"], w["p50"], w["p90"]) for w in f["weeks"]] for f in answer["forecasts"]]


@pytest.fixture
def scored_world(warehouse_env):
    """Placements, a forecast watermark, and Redis cleaned of batch scores afterwards."""
    import psycopg

    with psycopg.connect(warehouse_env, autocommit=True) as conn:
        _place(conn, 1, 48, "A")  # history: product 1 in the mailer two weeks before the origin
        _place(conn, 2, 52, "A")  # the plan: product 2 in the mailer in week 52
        _move_watermark(conn)
        yield conn
    client = _redis()
    delete_matching(client, "pred:default:forecaster:*", "predmeta:default:forecaster")
    client.close()


def test_a_scored_pair_is_answered_from_its_score_while_version_and_inputs_hold(
    scored_world, monkeypatch
) -> None:
    from serving.deployments import forecaster

    monkeypatch.setattr(forecaster, "FRESHNESS_S", 3600.0)  # however slow this machine is
    bundle = _bundle()
    sold = {pid: {w: 2.0 + (w + pid) % 4 for w in range(30, ORIGIN + 1)} for pid in PRODUCTS}
    request = _request(sold)
    _score(bundle, scored_world, request)
    live = ask(_live_replica(bundle), request)  # no scores handed over
    replica = _live_replica(bundle)
    first = ask(replica, _with_scores(request))
    assert _sources(live) == ["live", "live"] and _sources(first) == ["batch", "batch"]
    assert _numbers(first) == _numbers(live)  # the same answer, without the model
    assert first["modelVersion"] == "1" and all(f["scoredAt"] for f in first["forecasts"])
    # every pair answered from its score: no warehouse read for them, ever
    queries = count_queries(replica)
    assert ask(replica, _with_scores(request)) == first
    assert queries == [] and replica._kept[TENANT].pairs == {}

    # a week older than the model's look-back (which the online row may not cover) is not an
    # input of the answer: still the score
    sold[1] = {**sold[1], ORIGIN - 15: sold[1][ORIGIN - 15] + 7}
    assert _sources(ask(replica, _with_scores(_request(sold)))) == ["batch", "batch"]
    sold[2] = {**sold[2], ORIGIN: sold[2][ORIGIN] + 5}  # product 2 sold more since the scoring
    moved = ask(replica, _with_scores(_request(sold)))
    assert _sources(moved) == ["batch", "live"]
    assert moved["forecasts"][1] == ask(_live_replica(bundle), _request(sold))["forecasts"][1]


def test_scores_of_another_version_state_or_horizon_are_not_used(scored_world, monkeypatch) -> None:
    from serving.deployments import forecaster

    bundle = _bundle()
    sold = {pid: {w: 1.0 + (w * pid) % 3 for w in range(30, ORIGIN + 1)} for pid in PRODUCTS}
    request = _request(sold)
    _score(bundle, scored_world, request, version="1")
    promoted = _live_replica(bundle, "2")  # version 2 promoted: its scores are not there yet
    assert _sources(ask(promoted, _with_scores(request))) == ["live", "live"]
    longer = _with_scores(_request(sold, horizon=8))  # scored 4 weeks ahead, asked for 8
    assert _sources(ask(_live_replica(bundle), longer)) == ["live", "live"]

    replica = _live_replica(bundle)
    assert _sources(ask(replica, _with_scores(request))) == ["batch", "batch"]
    _move_watermark(scored_world)  # the feature tables were rebuilt after the scoring
    monkeypatch.setattr(forecaster, "FRESHNESS_S", 0.0)
    assert _sources(ask(replica, _with_scores(request))) == ["live", "live"]
    _score(bundle, scored_world, request)  # scored again on the new state
    assert _sources(ask(replica, _with_scores(request))) == ["batch", "batch"]
