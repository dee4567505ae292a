"""A real two-node Ray cluster on this machine: `ray start --head` plus a second raylet that
joins it with `ray start --address`, each with one CPU and its own custom resource. Training
and batch scoring are submitted with `ray job submit` exactly as docs/cluster.md says, and must
run on the job's cluster (not a nested one) and spread over both nodes.

Only this test's cluster is ever stopped: `ray stop` kills every Ray process of the user
(other tests and sessions run Ray on this machine too), so the cluster's processes are
stopped through their own `ray start --block` process groups, then by their private temp dir.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from core.services import free_port, port_open

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BIN = Path(sys.executable).parent
TENANT = "default"


@dataclass
class LocalCluster:
    """A Ray cluster of our own: private temp dir, ports and auth token."""

    temp_dir: Path
    env: dict[str, str]
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "ray"), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def start_node(self, *args: str, log: str) -> None:
        """`ray start --block` in its own process group, so stopping it stops only this node."""
        with open(self.temp_dir / log, "wb") as out:
            self.procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "ray"),
                        "start",
                        "--block",
                        "--node-ip-address",
                        "127.0.0.1",
                        "--dashboard-agent-listen-port",
                        str(free_port()),
                        "--num-cpus",
                        "1",
                        "--disable-usage-stats",
                        *args,
                    ],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )

    def listed(self, kind: str, *filters: str) -> list[dict]:
        """`ray list <kind>` through the dashboard's state API, as JSON."""
        args = ["list", kind, "--address", self.dashboard, "--format", "json", "--detail"]
        for f in filters:
            args += ["--filter", f]
        result = self.ray(*args, "--limit", "10000")
        assert result.returncode == 0, result.stderr[-2000:]
        if result.stdout.startswith("No resource"):  # what `ray list` prints for none
            return []
        return json.loads(result.stdout)

    def wait_for_nodes(self, n: int, timeout: float = 180) -> list[dict]:
        deadline = time.monotonic() + timeout
        nodes: list[dict] = []
        while time.monotonic() < deadline:
            if port_open("127.0.0.1", self.dashboard_port):
                result = self.ray(
                    "list", "nodes", "--address", self.dashboard, "--format", "json",
                    "--filter", "state=ALIVE",
                )  # fmt: skip
                if result.returncode == 0:
                    nodes = json.loads(result.stdout)
                    if len(nodes) >= n:
                        return nodes
            time.sleep(2)
        logs = "\n".join((self.temp_dir / f).read_text()[-1500:] for f in ("head.log", "worker.log")
                         if (self.temp_dir / f).exists())  # fmt: skip
        raise AssertionError(f"{len(nodes)} of {n} Ray nodes alive after {timeout}s:\n{logs}")

    def submit(self, *entrypoint: str, env_vars: dict[str, str], timeout: float) -> dict:
        """`ray job submit` (waits for the end); returns the job's row from `ray list jobs`."""
        submission_id = f"rp-{secrets.token_hex(4)}"
        result = self.ray(
            "job", "submit", "--address", self.dashboard, "--submission-id", submission_id,
            "--runtime-env-json", json.dumps({"env_vars": env_vars}), "--", *entrypoint,
            timeout=timeout,
        )  # fmt: skip
        jobs = [j for j in self.listed("jobs") if j.get("submission_id") == submission_id]
        assert jobs, result.stdout[-3000:] + result.stderr[-3000:]
        job = jobs[0]
        assert job["status"] == "SUCCEEDED", (job["status"], result.stdout[-4000:])
        return job

    def stop(self) -> None:
        """Stop our nodes (worker first): SIGTERM their groups, wait, then kill what is left."""
        for proc in reversed(self.procs):
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=60)  # a node drains for up to 30 s
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in reversed(self.procs):
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the node's group
        _kill_mentioning(str(self.temp_dir))  # workers run in groups of their own


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _kill_mentioning(marker: str) -> None:
    """SIGKILL the processes whose command line names our private temp dir (ours only)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid != os.getpid() and any(marker in a for a in proc.info["cmdline"] or []):
                proc.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def cluster(service_env: dict[str, str]) -> Iterator[LocalCluster]:
    """Head (resource `head`) + worker node (resource `worker_node`), one CPU each."""
    # Neither this session's services nor another Ray may leak into the nodes: the job gets
    # its services through its runtime_env, as on a real cluster through each node's env.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETAILPULSE_", "RAY_ADDRESS", "RAY_AUTH"))
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",  # Ray 2.60's default; every client below needs this token
        RAY_AUTH_TOKEN=secrets.token_hex(16),
    )
    temp_dir = Path(tempfile.mkdtemp(prefix="rpc", dir="/tmp"))  # short: socket paths
    c = LocalCluster(temp_dir=temp_dir, env=env)
    try:
        c.start_node(
            "--head", "--port", str(c.gcs_port), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(c.dashboard_port), "--ray-client-server-port",
            str(free_port()), "--resources", '{"head": 1}', "--temp-dir", str(temp_dir),
            log="head.log",
        )  # fmt: skip
        c.wait_for_nodes(1)
        c.start_node(
            "--address", f"127.0.0.1:{c.gcs_port}", "--resources", '{"worker_node": 1}',
            log="worker.log",
        )  # fmt: skip
        c.wait_for_nodes(2)
        yield c
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


@pytest.fixture(scope="module")
def features_ready(sample_warehouse: dict[str, int]) -> int:
    """The sample warehouse's customer features, materialized; returns the customer count."""
    from pipelines.jobs.features import materialize

    counts = materialize()
    return counts["online_customers"]


def _nodes_of(rows: list[dict], job_id: str) -> set[str]:
    return {r["node_id"] for r in rows if r.get("job_id") == job_id and r.get("node_id")}


def test_submitted_training_and_scoring_run_on_both_nodes(
    cluster: LocalCluster, service_env: dict[str, str], features_ready: int
) -> None:
    from training.registry import versions
    from training.specs import SEGMENTER

    nodes = {n["node_id"] for n in cluster.listed("nodes", "state=ALIVE")}
    assert len(nodes) == 2
    assert cluster.listed("jobs") == []  # nothing else runs on this cluster

    train = cluster.submit(
        "retailpulse", "train", "segmenter", "--quick", env_vars=service_env, timeout=1200
    )
    # Tune's trial actors (1 CPU each, 2 at a time) landed on the head and on the worker node:
    # the job used this cluster, not a nested single-node one started inside it
    assert _nodes_of(cluster.listed("actors"), train["job_id"]) == nodes
    # the job wrote to the test's services: its model is the tenant's champion now
    champion = [v for v in versions(SEGMENTER, TENANT) if v["champion"]]
    assert len(champion) == 1

    score = cluster.submit("retailpulse", "score", "segments", env_vars=service_env, timeout=1200)
    work = cluster.listed("actors") + cluster.listed("tasks")
    assert _nodes_of(work, score["job_id"]) == nodes
    with psycopg.connect(service_env["RETAILPULSE_DATABASE_URL"]) as conn:
        scored = conn.execute(
            "SELECT count(*), count(DISTINCT run_id) FROM predictions "
            "WHERE tenant_id = %s AND model = %s AND model_version = %s",
            (TENANT, SEGMENTER.key, int(champion[0]["version"])),
        ).fetchone()
    assert scored == (features_ready, 1)


def test_serve_deploy_runs_the_declarative_app_on_the_cluster(
    cluster: LocalCluster, service_env: dict[str, str], features_ready: int, tmp_path
) -> None:
    """`serve deploy configs/serve_deploy.yaml` (as docs/cluster.md says) serves the same app
    as `retailpulse serve`: the champion trained by the job above answers a real customer."""
    import httpx
    import yaml

    from training.registry import load_champion
    from training.specs import SEGMENTER

    config = yaml.safe_load(
        (Path(__file__).parents[2] / "configs" / "serve_deploy.yaml").read_text()
    )
    port = free_port()
    config["http_options"]["port"] = port
    # the cluster's nodes have no RETAILPULSE_* of their own: give the app the test's services
    config["applications"][0]["runtime_env"] = {"env_vars": service_env}
    path = tmp_path / "serve_deploy.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(BIN / "serve"), "deploy", str(path), "--address", cluster.dashboard],
        env=cluster.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    champion = load_champion(SEGMENTER, TENANT)
    with psycopg.connect(service_env["RETAILPULSE_DATABASE_URL"]) as conn:
        (customer,) = conn.execute(
            "SELECT customer_id FROM customer_rfm WHERE tenant_id = %s LIMIT 1", (TENANT,)
        ).fetchone()
    deadline, body = time.monotonic() + 300, None
    try:
        while time.monotonic() < deadline:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/customers/{customer}/segment")
                if reply.status_code == 200:
                    body = reply.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        assert body is not None, "the declaratively deployed app did not answer"
        assert body["data"]["modelVersion"] == champion.version
    finally:
        subprocess.run(
            [str(BIN / "serve"), "shutdown", "-y", "--address", cluster.dashboard],
            env=cluster.env, capture_output=True, timeout=120,
        )  # fmt: skip
