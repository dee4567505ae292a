"""Embedded services start, are reused, and stop; a configured URL that does not answer fails fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.services import get_endpoints, port_open, status, stop_embedded
from core.settings import Settings

pytestmark = pytest.mark.integration


def test_embedded_services_start_are_reused_and_stop(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None, redis_url=None, kafka_bootstrap=None)
    first = get_endpoints(settings)
    try:
        assert set(first.embedded) == {"postgres", "redis", "kafka"}
        with psycopg.connect(first.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(first.redis_url).ping()
        producer = KafkaProducer(bootstrap_servers=first.kafka_bootstrap)
        producer.send("rp.test", b"hello", partition=0).get(timeout=10)
        producer.close()
        consumer = KafkaConsumer(
            bootstrap_servers=first.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        consumer.assign([TopicPartition("rp.test", 0)])
        consumer.seek_to_beginning()
        assert [m.value for m in consumer] == [b"hello"]
        consumer.close()

        again = get_endpoints(settings)
        assert again == first  # reused, not restarted
        assert all(row["up"] for row in status(settings))
    finally:
        stopped = stop_embedded(settings)
    assert stopped == {"postgres": True, "redis": True, "kafka": True}
    for url in (first.database_url, first.redis_url, "tcp://" + first.kafka_bootstrap):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert not port_open("127.0.0.1", port)
    assert not any(row["up"] for row in status(settings))


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "retailpulse"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILPULSE_")}
    full_env.update(env)
    return subprocess.run(
        [str(exe), *args], env=full_env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/nowhere",  # refused at once
        "postgresql://postgres@10.255.255.1:5432/blackhole",  # never answers: the timeout
    ],
)
def test_configured_url_that_does_not_answer_fails_fast(tmp_path: Path, url: str) -> None:
    started = time.monotonic()
    result = _cli("db", "upgrade", RETAILPULSE_HOME=str(tmp_path), RETAILPULSE_DATABASE_URL=url)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert url in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30  # generous bound on a loaded CI box; the probe itself waits 5 s
