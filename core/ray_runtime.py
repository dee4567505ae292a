"""One way to start or join Ray, so training, scoring and serving share the same runtime."""

from __future__ import annotations

import os

# glibc malloc tuned for CPU PyTorch/numpy work in Ray workers (DESIGN §6: fewer page faults).
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "MALLOC_TRIM_THRESHOLD_": "268435456",
}


def worker_env() -> dict[str, str]:
    """Environment for Ray workers: our settings (resolved service URLs included) + malloc."""
    from core.services import get_endpoints
    from core.settings import get_settings

    env = {k: v for k, v in os.environ.items() if k.startswith("RETAILPULSE_")}
    settings = get_settings()
    if not settings.ray_address:  # on a cluster every node has its own environment
        endpoints = get_endpoints()
        env.update(
            RETAILPULSE_HOME=str(settings.home_dir),
            RETAILPULSE_DATABASE_URL=endpoints.database_url,
            RETAILPULSE_REDIS_URL=endpoints.redis_url,
            RETAILPULSE_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
        )
    return {**MALLOC_ENV, **env}


def ensure_ray(*, dashboard: bool = False) -> str | None:
    """Join RETAILPULSE_RAY_ADDRESS or start a local Ray (once per process).

    Returns the dashboard URL when there is one.
    """
    import ray

    from core.settings import get_settings

    if not ray.is_initialized():
        address = get_settings().ray_address
        # Worker output (Tune trials, Train workers) stays in the Ray dashboard and session
        # logs: on the driver's terminal it is library noise (e.g. SIGTERM tracebacks of
        # trial actors being torn down).
        options = {
            "logging_level": "WARNING",
            "log_to_driver": False,
            "runtime_env": {"env_vars": worker_env()},
        }
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(
                address="local",
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
