"""The broker restarts mid-stream: the running consumer reconnects by itself, writes every
basket sent after the restart, and counts none twice (re-sent baskets change nothing).

The embedded tansu broker keeps topics in memory, so a restart empties them: what was on the
topic and not yet consumed when it went down is gone with it (a durable broker in production
keeps it). What this test proves is the consumer's side of the contract — no crash, no
double count, nothing lost of what the broker holds after it is back.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from core.services import EmbeddedKafka, free_port, spawn, terminate
from pipelines.stream_config import ConsumeConfig
from pipelines.stream_consumer import StreamConsumer, ensure_topics

# ~25 s each: in `make test-all` (the default run stays under 20 minutes on 2 cores)
pytestmark = [pytest.mark.integration, pytest.mark.slow]
T0 = datetime(2017, 5, 6, 10, 0, tzinfo=UTC)


def _basket(tid: int) -> dict:
    return {
        "transaction_id": tid, "store_id": "367", "customer_id": 700 + tid % 5,
        "timestamp": (T0 + timedelta(minutes=tid)).isoformat(),
        "lines": [{"product_id": 10 + tid % 3, "quantity": 1, "sales_value": 2.5}],
    }  # fmt: skip


def _send(bootstrap: str, topic: str, ids: range | list[int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, retries=10, retry_backoff_ms=200)
    for tid in ids:
        producer.send(topic, value=json.dumps(_basket(tid)).encode())
    producer.flush(timeout=30)
    producer.close()


def _written(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        n, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM transactions"
        ).fetchone()
    return n, distinct


def _wait_written(url: str, n: int, timeout: float = 60) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _written(url)
        if got[0] >= n:
            return got
        time.sleep(0.3)
    return _written(url)


def test_consumer_survives_a_broker_restart_without_double_counting(
    service_env, warehouse_env, tmp_path: Path
):
    from core.settings import get_settings
    from features.store import project_for

    broker = EmbeddedKafka(tmp_path)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"

    def start() -> int:
        return spawn(broker.command(port), tmp_path, tmp_path / "tansu.log", port, 20)

    pid = start()
    suffix = uuid.uuid4().hex[:8]
    cfg = ConsumeConfig(
        tenant=get_settings().tenant, bootstrap=bootstrap, database_url=warehouse_env,
        redis_url=service_env["RETAILPULSE_REDIS_URL"], feast_project=project_for(),
        group_id=f"restart-{suffix}", transactions_topic=f"tx-{suffix}",
        inventory_topic=f"inv-{suffix}", rejected_topic=f"rej-{suffix}", idle_timeout_s=60,
    )  # fmt: skip
    topics = (cfg.transactions_topic, cfg.inventory_topic, cfg.rejected_topic)
    ensure_topics(bootstrap, topics)
    consumer = StreamConsumer(cfg)
    runner = threading.Thread(target=consumer.run, name="restart-consumer", daemon=True)
    try:
        runner.start()
        _send(bootstrap, cfg.transactions_topic, range(1, 21))
        assert _wait_written(warehouse_env, 20) == (20, 20)

        terminate(pid, grace_s=5)  # the broker goes away mid-stream …
        time.sleep(2)
        pid = start()  # … and comes back empty (memory storage)
        ensure_topics(bootstrap, topics)
        # baskets 15..20 again (a producer re-sending after the outage) and 21..40 new
        _send(bootstrap, cfg.transactions_topic, [*range(15, 21), *range(21, 41)])
        assert _wait_written(warehouse_env, 40, timeout=90) == (40, 40)
        time.sleep(2)  # anything counted twice would show up by now
        assert _written(warehouse_env) == (40, 40)
        assert runner.is_alive(), "the consumer died with the broker"
        assert consumer.stats.baskets == 40
        assert consumer.stats.duplicates >= 6  # the re-sent ones, and what it read again
    finally:
        consumer.stop.set()
        runner.join(timeout=30)
        terminate(pid, grace_s=5)
