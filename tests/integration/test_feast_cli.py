"""Feast's own CLI on feature_repo/ (the real `feast` executable against the session's services).

`retailpulse features env` gives the variables feature_store.yaml reads; with them, `feast plan`
and `feast feature-views list` see the registry the platform applied, and the repository's
module-level objects (feature_repo/default_tenant.py) match it. `feast ui` serves the same views
(slow: it needs materialized data and a server start-up).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.catalog import FEATURE_SERVICES, FEATURE_VIEWS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FEAST = str(Path(sys.executable).with_name("feast"))
REPO = str(ROOT / "feature_repo")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cli_env() -> dict[str, str]:
    """This process's environment plus what `retailpulse features env` exports."""
    from pipelines.cli_features import env

    return {**os.environ, **env()}


def _feast(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [FEAST, "-c", REPO, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    """stdout of a finished `feast` run (colours removed); fails with its stderr otherwise."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    return ANSI.sub("", out)


def _assert_plan_matches_registry(plan: str) -> None:
    """Nothing to create or delete; an "Updated" view differs only in Feast's bookkeeping.

    After a materialization the registry's views carry materialization intervals that a repo's
    fresh objects cannot have, so Feast reports them as updated and prints the only spec field
    that differs: the batch source, whose protobuf embeds its own creation timestamps.
    """
    lines = plan.splitlines()
    assert not [ln for ln in lines if ln.startswith(("Created ", "Deleted "))], plan[:3000]
    props = {ln.split(":", 1)[0].strip() for ln in lines if ln.startswith("\t")}
    assert props <= {"batch_source"}, plan[:3000]
    updated = {ln.split()[-1] for ln in lines if ln.startswith("Updated ")}
    assert updated <= set(FEATURE_VIEWS), updated


@pytest.fixture(scope="module")
def applied(service_env: dict[str, str]) -> str:
    """The catalog applied to the default tenant's project (as `features materialize` does)."""
    from features.store import reset_feature_stores
    from pipelines.jobs.features import apply

    reset_feature_stores()
    apply()
    return service_env["RETAILPULSE_FEAST_PROJECT"]


def test_env_prints_the_platforms_endpoints(service_env):
    from features.store import feast_cli_env

    values = feast_cli_env()
    assert values["RETAILPULSE_FEAST_PROJECT"] == service_env["RETAILPULSE_FEAST_PROJECT"]
    db = service_env["RETAILPULSE_DATABASE_URL"]
    assert values["RETAILPULSE_FEAST_PG_DATABASE"] == db.rsplit("/", 1)[1]
    assert values["RETAILPULSE_FEAST_REGISTRY"].endswith(db.split("://", 1)[1])
    redis_db = service_env["RETAILPULSE_REDIS_URL"].rsplit("/", 1)[1]
    assert values["RETAILPULSE_FEAST_REDIS"].endswith(f",db={redis_db}")


def test_yaml_with_env_is_the_config_the_platform_uses(service_env, monkeypatch):
    """Feast's own loader, given `features env`, yields the stores features/store.py builds."""
    from feast.repo_config import load_repo_config

    from features.store import feast_cli_env, repo_config

    for key, value in feast_cli_env().items():
        monkeypatch.setenv(key, value)
    cli = load_repo_config(Path(REPO), Path(REPO) / "feature_store.yaml")
    platform = repo_config()
    assert cli.project == platform.project
    assert cli.registry.path == platform.registry.path
    assert cli.registry.sqlalchemy_config_kwargs == platform.registry.sqlalchemy_config_kwargs
    assert cli.offline_store == platform.offline_store
    assert cli.online_store == platform.online_store


def test_yaml_without_env_names_the_missing_variable(monkeypatch):
    from feast.repo_config import FeastConfigError, load_repo_config

    for key in list(os.environ):
        if key.startswith("RETAILPULSE_FEAST_"):
            monkeypatch.delenv(key)
    with pytest.raises(FeastConfigError, match="RETAILPULSE_FEAST_"):
        load_repo_config(Path(REPO), Path(REPO) / "feature_store.yaml")


def test_feast_cli_lists_and_plans_the_catalog(applied):
    env = _cli_env()
    # both only read the registry: run them side by side (each spends ~10 s importing Feast)
    listing, plan = _feast("feature-views", "list", env=env), _feast("plan", env=env)
    views = _finish(listing)
    listed = {ln.split()[0] for ln in views.splitlines()[1:] if ln.strip()}
    assert listed == set(FEATURE_VIEWS)
    out = _finish(plan)
    assert f"project name {applied}" in out
    _assert_plan_matches_registry(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_feast_ui_and_plan_after_materialize(sample_warehouse):
    """After `features materialize`, `feast plan` still matches and `feast ui` serves the
    catalog's views and services."""
    from pipelines.jobs.features import materialize

    counts = materialize()
    env = _cli_env()
    port = _free_port()
    ui = _feast("ui", "-h", "127.0.0.1", "-p", str(port), env=env)
    try:
        _assert_plan_matches_registry(_finish(_feast("plan", env=env)))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert ui.poll() is None, ui.communicate()[1][-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "feast ui did not answer"
            time.sleep(0.5)
        project = counts["project"]
        views = httpx.get(f"{base}/api/v1/feature_views", params={"project": project}).json()
        assert {v["spec"]["name"] for v in views["featureViews"]} == set(FEATURE_VIEWS)
        services = httpx.get(f"{base}/api/v1/feature_services", params={"project": project}).json()
        assert {s["spec"]["name"] for s in services["featureServices"]} == set(FEATURE_SERVICES)
        assert httpx.get(f"{base}/").status_code == 200
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
