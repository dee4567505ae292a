"""Batch scoring on Ray Data into PostgreSQL and Redis (real services, the session's Ray).

Segments and churn (the cheap models) are trained on the 100-household sample and scored
end to end (marked slow: materializing and two quick trainings take minutes here); the
repository's replace-in-one-transaction and the Redis key layout are checked
on their own; bad input gets one clear error. Ray Data's map tasks build the scorer once per
worker process and run, from the run's own model (a probe model counts its unpickles).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest
import redis

from core import predictions
from core.errors import NotFoundError, ValidationFailed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(sample_warehouse, ray_session):
    """Features materialized; a segmenter and a churn model as the tenant's champions."""
    from pipelines.jobs.features import materialize
    from pipelines.jobs.train import train_churn, train_segmenter
    from training import registry
    from training.specs import CHURN, SEGMENTER

    materialize()
    for spec, train in ((SEGMENTER, train_segmenter), (CHURN, train_churn)):
        if registry.load_champion(spec, "default") is None:  # another module may have one
            train(quick=True)
    return {
        "segmenter": registry.load_champion(SEGMENTER, "default"),
        "churn": registry.load_champion(CHURN, "default"),
    }


def _db() -> psycopg.Connection:
    from core.settings import get_settings

    return psycopg.connect(get_settings().database_url, autocommit=True)


def _redis() -> redis.Redis:
    from core.settings import get_settings

    return redis.Redis.from_url(get_settings().redis_url)


@pytest.mark.slow  # materialize + two quick trainings: minutes on a busy 2-core machine
@pytest.mark.parametrize("target", ["segments", "churn"])
def test_scores_land_in_postgres_and_redis_and_a_rerun_replaces(trained, target) -> None:
    from pipelines.jobs.score import TARGETS, score_model

    model = TARGETS[target]
    champion = trained[model]
    first = score_model(target, batch_size=16)  # several batches per map task
    assert first["version"] == champion.version and first["run_id"] == champion.run_id
    assert first["rows"] == first["inputs"] > 50  # every customer of the sample got a score
    with _db() as conn:
        rows = predictions.read_predictions(
            conn, tenant="default", model=model, version=int(champion.version)
        )
        customers = {str(r[0]) for r in conn.execute("SELECT customer_id FROM customers")}
    assert len(rows) == first["rows"]
    assert {r["run_id"] for r in rows} == {champion.run_id}
    assert {r["entity"] for r in rows} <= customers
    one = rows[0]
    served = predictions.read_served(_redis(), tenant="default", model=model, entity=one["entity"])
    assert served is not None and served["version"] == champion.version
    assert served["runId"] == champion.run_id
    payload = one["payload"]
    if target == "segments":
        assert served["segmentId"] == payload["segmentId"] and payload["label"]
    else:
        assert 0.0 <= payload["probability"] <= 1.0
        assert payload["riskBand"] in {"low", "medium", "high"}
        assert len(payload["drivers"]) <= 3 and served["probability"] == payload["probability"]
        names = set(champion.model.model.feature_names)
        drivers = [d for r in rows for d in r["payload"]["drivers"]]  # SHAP > 0 only
        assert all(d["feature"] in names and d["contribution"] > 0 for d in drivers)

    second = score_model(target)
    with _db() as conn:
        counts = predictions.count_predictions(conn, tenant="default", model=model)
        again = predictions.read_predictions(
            conn, tenant="default", model=model, version=int(champion.version)
        )
    assert counts[int(champion.version)] == first["rows"] == second["rows"]  # no duplicates
    assert {r["scored_at"] for r in again} == {datetime.fromisoformat(second["scored_at"])}
    assert second["scored_at"] > first["scored_at"]
    served = predictions.read_served(_redis(), tenant="default", model=model, entity=one["entity"])
    assert served["scoredAt"] == second["scored_at"]


def test_a_failed_write_midway_leaves_the_previous_rows(service_env) -> None:
    from core.settings import get_settings

    url = get_settings().database_url
    good = pd.DataFrame({"entity": ["1", "2", "3"], "payload": ['{"a":1}', '{"a":2}', '{"a":3}']})
    before = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(url) as conn:
        predictions.replace_predictions(
            conn, tenant="t-fail", model="m", version=1, run_id="r1", scored_at=before, rows=good
        )
        bad = pd.DataFrame(
            {"entity": ["1", "2", "3"], "payload": ['{"a":9}', "not json", '{"a":9}']}
        )
        with pytest.raises(psycopg.errors.DataError):  # the COPY fails on its second row
            predictions.replace_predictions(
                conn, tenant="t-fail", model="m", version=1, run_id="r2",
                scored_at=datetime.now(UTC), rows=bad,
            )  # fmt: skip
        rows = predictions.read_predictions(conn, tenant="t-fail", model="m")
    assert [(r["entity"], r["payload"]["a"], r["run_id"]) for r in rows] == [
        ("1", 1, "r1"), ("2", 2, "r1"), ("3", 3, "r1"),
    ]  # fmt: skip
    with psycopg.connect(url) as conn, pytest.raises(ValueError, match="scored twice"):
        dup = pd.DataFrame({"entity": ["1", "1"], "payload": ["{}", "{}"]})
        predictions.replace_predictions(
            conn, tenant="t-fail", model="m", version=1, run_id="r3", scored_at=before, rows=dup
        )


def test_redis_keys_follow_the_pattern_and_stale_entities_are_removed(service_env) -> None:
    client = _redis()
    stamp = datetime.now(UTC)
    rows = pd.DataFrame({"entity": ["7", "8"], "payload": ['{"x":1}', '{"x":2}']})
    predictions.publish(client, tenant="t-keys", model="m", version=3, run_id="r",
                        scored_at=stamp, rows=rows)  # fmt: skip
    assert json.loads(client.get("pred:t-keys:m:8")) == {
        "model": "m", "version": "3", "runId": "r", "scoredAt": stamp.isoformat(), "x": 2,
    }  # fmt: skip
    predictions.publish(client, tenant="t-keys", model="m", version=4, run_id="r",
                        scored_at=stamp, rows=rows.iloc[:1])  # fmt: skip
    assert client.get("pred:t-keys:m:8") is None
    assert json.loads(client.get("pred:t-keys:m:7"))["version"] == "4"
    assert json.loads(client.get("predmeta:t-keys:m"))["rows"] == 1
    client.delete("pred:t-keys:m:7", "predmeta:t-keys:m")


def test_bad_input_gets_one_clear_error(service_env) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.jobs.score import score_model

    with pytest.raises(ValidationFailed, match="unknown model 'weather'.*segments"):
        score_model("weather")
    with pytest.raises(NotFoundError, match="unknown tenant 'nobody'"):
        score_model("segments", tenant="nobody")
    with pytest.raises(ValidationFailed, match="limit 0 is outside 1..100"):
        score_model("recommendations", limit=0)
    result = CliRunner().invoke(app, ["score", "weather"])
    assert result.exit_code != 0 and "No such command 'weather'" in result.output


@pytest.mark.slow
def test_a_version_that_does_not_exist_is_named(trained) -> None:
    from pipelines.jobs.score import score_model

    with pytest.raises(NotFoundError, match=r"default\.segmenter has no version 999"):
        score_model("segments", version=999)


def test_each_worker_process_unpickles_the_model_once_per_run(ray_session) -> None:
    import numpy as np

    from pipelines.jobs.score import block_count, run_batches
    from pipelines.jobs.score_inputs import Inputs
    from tests.integration.scoring_probe import ProbeModel, ProbeScorer

    rows = pd.DataFrame({"customer_id": np.arange(300)})
    inputs = Inputs(rows, ProbeScorer, work=len(rows))
    seen: dict[int, int] = {}  # worker pid -> probe models it unpickled so far
    for tag in ("v1", "v2"):  # a second run brings its own model, not the cached one
        out = run_batches(inputs, ProbeModel(tag), batch_size=1, concurrency=2)
        assert sorted(out["entity"].astype(int)) == list(range(300))  # every row, once
        payloads = [json.loads(p) for p in out["payload"]]
        assert {p["tag"] for p in payloads} == {tag}
        tasks = {p["task"] for p in payloads}
        assert len(tasks) == block_count(300, 1, 2) == 10  # 300 batches in 10 blocks
        per_process: dict[int, set[int]] = {}
        for p in payloads:
            per_process.setdefault(p["pid"], set()).add(p["unpickled"])
        assert len(per_process) < len(tasks)  # worker processes are reused across tasks
        for pid, counts in per_process.items():
            # one unpickle per process and run, before its first batch; never again
            assert counts == {seen.get(pid, 0) + 1}, (pid, counts, seen)
            seen[pid] = seen.get(pid, 0) + 1
