"""Embedded services start, are reused, and stop; a configured URL that does not answer fails fast."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.errors import ServiceUnavailable
from core.services import embedded, get_endpoints, port_open, status, stop_embedded
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


def _kill_and_reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:  # the server is our child here: reap it so its pid is really gone
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def test_embedded_redis_comes_back_on_its_port_with_its_data(tmp_path: Path) -> None:
    """A crashed embedded Redis restarts where servers and Feast look for it, data intact."""
    svc = embedded("redis", tmp_path)  # the embedded path, whatever Redis the machine runs
    url = svc.start()
    try:
        client = redis.Redis.from_url(url)
        client.hset("customer:42", mapping={"segment": "champions", "monetary": "812.5"})
        client.close()
        pid = json.loads((tmp_path / "services.json").read_text())["redis"]["pid"]
        _kill_and_reap(pid)
        assert not port_open("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))

        again = svc.start()  # what `retailpulse services up` runs
        assert again == url
        client = redis.Redis.from_url(again)
        assert client.hgetall("customer:42") == {b"segment": b"champions", b"monetary": b"812.5"}
        client.close()

        svc.stop()  # a clean stop keeps the port too
        assert not port_open("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))
        assert svc.start() == url
        assert redis.Redis.from_url(url).hget("customer:42", "segment") == b"champions"
    finally:
        svc.stop()


def test_embedded_redis_port_taken_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    svc = embedded("redis", tmp_path)
    url = svc.start()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    svc.stop()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        with pytest.raises(ServiceUnavailable) as info:
            svc.start()
        assert str(port) in str(info.value)
        assert "another process" in str(info.value)
    finally:
        squatter.close()
    assert svc.start() == url  # once the port is free again it comes back there
    svc.stop()
