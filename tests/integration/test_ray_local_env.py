"""A local Ray started by `core.ray_runtime.start_local` gives its workers the environment
through the raylet, not a job runtime_env: actors see it, the driver's own environment is left
as it was, and `task_runtime_env` asks for a per-actor runtime_env only for what they lack.

Runs in a subprocess: the test session already has its own Ray (`ray_session`).
"""

from __future__ import annotations

from tests.integration.ray_probe import run_probe

PROBE = """
import json, os, sys, tempfile
import ray
from core.ray_runtime import start_local, started_local_ray, task_runtime_env

tmp = tempfile.mkdtemp(prefix="rp-envprobe-", dir="/tmp")
start_local({"RP_PROBE_ENV": "given"}, num_cpus=1, include_dashboard=False,
            _temp_dir=tmp, logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=0)
class Probe:
    def env(self):
        return os.environ.get("RP_PROBE_ENV")

@ray.remote(num_cpus=0)
def task_env():
    return os.environ.get("RP_PROBE_ENV")

out = {
    "actor": ray.get(Probe.remote().env.remote()),
    "task": ray.get(task_env.remote()),
    "driver": os.environ.get("RP_PROBE_ENV"),
    "job_runtime_env": (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {},
    "same": task_runtime_env({"RP_PROBE_ENV": "given"}),
    "other": task_runtime_env({"RP_PROBE_ENV": "other"}),
    "started_here": started_local_ray(),
}
ray.shutdown()
# a Ray started another way afterwards: the first one's environment no longer counts
ray.init(address="local", num_cpus=1, include_dashboard=False, _temp_dir=tmp,
         logging_level="ERROR", log_to_driver=False)
out["later_ray"] = task_runtime_env({"RP_PROBE_ENV": "given"})
out["later_started_here"] = started_local_ray()
ray.shutdown()
print("PROBE " + json.dumps(out))
"""


def test_local_ray_workers_inherit_the_env_and_the_driver_keeps_its_own() -> None:
    out = run_probe(PROBE, drop_env=("RP_PROBE_ENV",))
    assert out["actor"] == "given" and out["task"] == "given"
    assert out["driver"] is None  # restored after ray.init
    assert "RP_PROBE_ENV" not in out["job_runtime_env"]  # not through a job runtime_env
    assert out["same"] is None  # workers have it: no per-actor runtime_env
    assert out["other"] == {"env_vars": {"RP_PROBE_ENV": "other"}}
    assert out["later_ray"] == {"env_vars": {"RP_PROBE_ENV": "given"}}
    # only the Ray start_local started counts as this process's own one-node Ray
    assert out["started_here"] is True and out["later_started_here"] is False
