"""Shared fixtures: real services (this machine's Postgres/Redis when they answer, embedded
otherwise; always a private tansu broker), one Ray session, a small Complete Journey warehouse."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.services import port_open

MACHINE_PG = "postgresql://postgres@127.0.0.1:5432"
# a parallel run (another checkout) may pick another Redis database
MACHINE_REDIS_DB = int(os.environ.get("RP_TEST_REDIS_DB", "13"))
SAMPLE_HOUSEHOLDS = 100
# The shipped default requires a bearer token on every data route (test_access.py checks
# it). The route-logic tests call those routes anonymously, so the suite runs with it off; the
# authentication tests (test_signin.py, test_access.py, test_accounts.py, the route × role
# matrix, the platform tour, /ws) switch it on themselves. Subprocesses and Ray workers inherit
# this.
os.environ["RETAILPULSE_AUTH_REQUIRED"] = "false"


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    from core.settings import get_settings

    get_settings.cache_clear()
    return old


def _restore_env(old: dict[str, str | None]) -> None:
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    from core.settings import get_settings

    get_settings.cache_clear()


def _drop_online_keys(redis_url: str, project: str) -> None:
    """Feast keys end with their project name; remove this session's (and its tenants')."""
    import redis

    from core.redis_keys import delete_matching

    client = redis.Redis.from_url(redis_url)
    try:
        # and batch scores (`retailpulse score`): `pred:` / `predmeta:` keys of the test database
        delete_matching(client, f"*{project}*", "pred:*", "predmeta:*")
    finally:
        client.close()


@pytest.fixture(scope="session")
def service_env() -> Iterator[dict[str, str]]:
    """RETAILPULSE_* pointing at a fresh database, a Redis db, a private broker and home."""
    home = Path(tempfile.mkdtemp(prefix="rp-test-"))
    name = f"rp_test_{uuid.uuid4().hex[:10]}"
    env = {
        "RETAILPULSE_HOME": str(home),
        "RETAILPULSE_FEAST_PROJECT": f"rp{uuid.uuid4().hex[:8]}",
        # the MLflow registry is global on its server: give the session its own
        "RETAILPULSE_MLFLOW_DATABASE": f"{name}_mlflow",
    }
    machine_pg = port_open("127.0.0.1", 5432)
    if machine_pg:
        with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["RETAILPULSE_DATABASE_URL"] = f"{MACHINE_PG}/{name}"
    if port_open("127.0.0.1", 6379):
        env["RETAILPULSE_REDIS_URL"] = f"redis://127.0.0.1:6379/{MACHINE_REDIS_DB}"
    old = _set_env(env)
    from core import migrate
    from core.services import get_endpoints, stop_embedded

    endpoints = get_endpoints()  # starts whatever is not configured (always the broker)
    migrate.upgrade(endpoints.database_url)
    env.update(
        RETAILPULSE_DATABASE_URL=endpoints.database_url,
        RETAILPULSE_REDIS_URL=endpoints.redis_url,
        RETAILPULSE_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
    )
    # The session's broker is the configured one from now on: a test that switches
    # RETAILPULSE_HOME (warehouse_env) must not start, and leave behind, a broker of its own.
    old.update(_set_env({"RETAILPULSE_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap}))
    yield env
    _drop_online_keys(env["RETAILPULSE_REDIS_URL"], env["RETAILPULSE_FEAST_PROJECT"])
    stop_embedded()
    _restore_env(old)
    if machine_pg:
        with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True) as conn:
            for db in (name, f"{name}_mlflow"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session(service_env: dict[str, str]) -> Iterator[None]:
    """One local Ray for the whole session (2 CPUs; a private temp dir)."""
    import ray

    from pipelines.jobs.serve import use_serve_env

    tmp = tempfile.mkdtemp(prefix="rpray", dir="/tmp")
    # Serve's fast path as `retailpulse serve` runs it, on a free port of this session
    use_serve_env(_free_port())
    ray.init(
        num_cpus=2,
        address="local",
        include_dashboard=False,
        _temp_dir=tmp,
        logging_level="ERROR",
        runtime_env={
            "env_vars": {k: v for k, v in os.environ.items() if k.startswith("RETAILPULSE_")}
        },
    )
    yield
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_warehouse(service_env: dict[str, str]) -> dict[str, int]:
    """The first 100 Complete Journey households, ingested for the default tenant."""
    from core.settings import get_settings
    from pipelines.ingest import ingest_completejourney, table_counts

    tenant = get_settings().tenant
    ingest_completejourney(tenant=tenant, households=SAMPLE_HOUSEHOLDS)
    return table_counts(tenant=tenant)


@pytest.fixture
def warehouse_env(service_env, tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh, migrated warehouse database on the session's server, and RETAILPULSE_* at it."""
    from core import migrate
    from core.settings import get_settings

    server = service_env["RETAILPULSE_DATABASE_URL"].rsplit("/", 1)[0]
    name = f"rp_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    migrate.upgrade(url)
    monkeypatch.setenv("RETAILPULSE_DATABASE_URL", url)
    monkeypatch.setenv("RETAILPULSE_HOME", str(tmp_path))
    monkeypatch.setenv("RETAILPULSE_FEAST_PROJECT", f"rp{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    from features.store import reset_feature_stores

    reset_feature_stores()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings read afresh after every test: set up before (so torn down after) the test's
    `monkeypatch`, a setting a test changed never outlives its environment variable."""
    yield
    from core.settings import get_settings

    get_settings.cache_clear()
