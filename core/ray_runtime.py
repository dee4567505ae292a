"""One way to start or join Ray, so training, scoring and serving share the same runtime.

Which Ray (`ray_target`, a pure function):

1. `RETAILPULSE_RAY_ADDRESS` set → join that cluster (our own setting wins).
2. else `RAY_ADDRESS` set → join it, the way Ray's own tools do. `ray job submit` sets it
   for the entrypoint, so `ray job submit -- retailpulse score all` runs on the job's cluster
   instead of starting a second, nested one inside the job (DESIGN §6).
3. else a private local Ray (`address="local"`), never a stray cluster a bare `ray.init()`
   would attach to.

What workers get (`worker_env`): the malloc settings and every `RETAILPULSE_*` variable the
driver has. Only a *local* Ray also gets the resolved service URLs (the embedded services'
loopback ports), because its workers share this machine. On a cluster every node has its own
environment, and a loopback URL would point a remote worker at nothing; the scoring and
training code paths hand workers what they need (a model object through the object store) and
write to the services from the driver. A job submitted on this machine still finds the
services: its driver runs on the head node and resolves them itself (configured URLs from its
environment or the job's `runtime_env`, embedded ones from the state under `RETAILPULSE_HOME`).
Variables the submitted job already sets in its `runtime_env` are not repeated (Ray refuses a
driver `runtime_env` that names the same variable as the job's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# glibc malloc tuned for CPU PyTorch/numpy work in Ray workers (DESIGN §6: fewer page faults).
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
}
# What a private local Ray (`start_local`) gives every worker for Ray Train, through the raylet:
# the controller's settings (Train would otherwise hand them to the controller as a runtime_env,
# which rules out a pre-started worker for it) and no preemption watcher (one node that nothing
# drains; the watcher is a process of its own). See training/trainers/torch_trainer.py.
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
LOCAL_TRAIN_ENV = {
    HEALTH_CHECK_ENV: "0.2",
    "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
# Set by Ray's job manager for a submitted job's driver (ray._private.runtime_env.constants).
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


@dataclass(frozen=True)
class RayTarget:
    """Where `ensure_ray` goes: `address` for `ray.init`, and whether it joins a cluster."""

    address: str
    joins_cluster: bool
    source: str  # "RETAILPULSE_RAY_ADDRESS", "RAY_ADDRESS" or "local"


def ray_target(retailpulse_address: str | None, environ: Mapping[str, str]) -> RayTarget:
    """The Ray to use: our setting, else `RAY_ADDRESS` (as `ray` CLI and jobs use it), else a
    private local one. Blank values count as unset."""
    if retailpulse_address and retailpulse_address.strip():
        return RayTarget(retailpulse_address.strip(), True, "RETAILPULSE_RAY_ADDRESS")
    ray_address = (environ.get("RAY_ADDRESS") or "").strip()
    if ray_address:
        return RayTarget(ray_address, True, "RAY_ADDRESS")
    return RayTarget("local", False, "local")


def job_env_vars(environ: Mapping[str, str]) -> set[str]:
    """Names of the env vars a submitted job's own runtime_env already sets (else empty)."""
    raw = environ.get(JOB_CONFIG_ENV)
    if not raw:
        return set()
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return set()
    return set((runtime_env.get("env_vars") or {}).keys())


def worker_env(*, joins_cluster: bool | None = None) -> dict[str, str]:
    """Environment for Ray workers: our settings (plus resolved service URLs on a local Ray)
    and malloc; without the variables a submitted job's runtime_env already sets."""
    from core.settings import get_settings

    settings = get_settings()
    if joins_cluster is None:
        joins_cluster = ray_target(settings.ray_address, os.environ).joins_cluster
    env = {k: v for k, v in os.environ.items() if k.startswith("RETAILPULSE_")}
    if not joins_cluster:  # on a cluster every node has its own environment
        from core.services import get_endpoints

        endpoints = get_endpoints()
        env.update(
            RETAILPULSE_HOME=str(settings.home_dir),
            RETAILPULSE_DATABASE_URL=endpoints.database_url,
            RETAILPULSE_REDIS_URL=endpoints.redis_url,
            RETAILPULSE_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
        )
    merged = {**MALLOC_ENV, **env}
    taken = job_env_vars(os.environ)
    return {k: v for k, v in merged.items() if k not in taken}


# What the local Ray this process started gave its workers through the raylet's environment,
# and (under _NODE_KEY) that Ray's node id: it holds for that Ray only, not for a later one.
_LOCAL_WORKER_ENV: dict[str, str] = {}
_NODE_KEY = " node"


@contextmanager
def _environ(updates: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` with `updates` inside the block, as it was after."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def started_local_ray() -> bool:
    """Whether the running Ray is the private local one this process started (`start_local`):
    one node, gone when this process ends."""
    import ray

    if not ray.is_initialized() or _NODE_KEY not in _LOCAL_WORKER_ENV:
        return False
    return _LOCAL_WORKER_ENV[_NODE_KEY] == ray.get_runtime_context().get_node_id()


def task_runtime_env(env: Mapping[str, str]) -> dict[str, object] | None:
    """A runtime_env giving Ray actors `env`, or None when every worker already has it: from the
    job's runtime_env, or from the local Ray `ensure_ray` started with it. A per-actor
    runtime_env forces a fresh worker process instead of a pre-started one, so it is set only
    where needed (e.g. MALLOC_ENV for TorchTrainer workers on a Ray someone else started)."""
    import ray

    context = ray.get_runtime_context()
    job_env = (context.runtime_env or {}).get("env_vars") or {}
    local = _LOCAL_WORKER_ENV if _LOCAL_WORKER_ENV.get(_NODE_KEY) == context.get_node_id() else {}
    if all(job_env.get(k) == v or local.get(k) == v for k, v in env.items()):
        return None
    return {"env_vars": dict(env)}


def start_local(env: Mapping[str, str], *, num_cpus: int, **init_options: Any) -> None:
    """`ray.init` a private local Ray whose workers get `env`.

    The local raylet, and every worker it starts, inherits this process's environment: giving
    `env` that way rather than as the job's runtime_env lets actors (Train controllers and
    workers, Serve replicas) take the workers Ray pre-starts at init, which a job runtime_env
    rules out (each would start a fresh process instead: ~2-4 s of the fixed cost of a Train run).
    Workers also get LOCAL_TRAIN_ENV unless `env` says otherwise.
    """
    import ray

    env = {**LOCAL_TRAIN_ENV, **env}
    with _environ(env):
        ray.init(
            address="local",
            num_cpus=num_cpus,
            **init_options,
        )
    _LOCAL_WORKER_ENV.clear()
    _LOCAL_WORKER_ENV.update(env, **{_NODE_KEY: ray.get_runtime_context().get_node_id()})


def ensure_ray(*, dashboard: bool = False) -> str | None:
    """Join RETAILPULSE_RAY_ADDRESS or RAY_ADDRESS, else start a local Ray (once per process).

    Returns the dashboard URL when there is one.
    """
    import ray

    from core.settings import get_settings

    if not ray.is_initialized():
        target = ray_target(get_settings().ray_address, os.environ)
        env = worker_env(joins_cluster=target.joins_cluster)
        # Worker output (Tune trials, Train workers) stays in the Ray dashboard and session
        # logs: on the driver's terminal it is library noise (e.g. SIGTERM tracebacks of
        # trial actors being torn down).
        options = {"logging_level": "WARNING", "log_to_driver": False}
        if target.joins_cluster:
            ray.init(address=target.address, runtime_env={"env_vars": env}, **options)
        else:
            start_local(
                env,
                num_cpus=os.cpu_count() or 2,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                **options,
            )
    from ray._private.worker import get_dashboard_url  # no public accessor in Ray 2.60

    url = get_dashboard_url()
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"
