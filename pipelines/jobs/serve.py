"""Deploy the Serve application (the ingress, its hosted models, any model deployments)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP_NAME = "retailpulse"
DIRECT_PORT_SPAN = 100  # ingress replicas per node that can get a direct port


@dataclass(frozen=True)
class Served:
    """Where the application answers: Serve's proxy, and the ingress's direct port."""

    proxy: str
    direct: str | None

    @property
    def url(self) -> str:
        """The fast path when there is one (the direct ingress port), else the proxy."""
        return self.direct or self.proxy


def serve_env(direct_port: int | None) -> dict[str, str]:
    """Ray Serve settings for the fast path (DESIGN §6), for processes of a Ray we start.

    `RAY_SERVE_THROUGHPUT_OPTIMIZED=1` turns on direct ingress (each ingress replica serves
    HTTP on a port of its own), user code on the replica's event loop, gRPC between replicas
    and a frozen GC after start-up; it must be in the environment before Ray starts. Values
    already set (a cluster's own configuration) win.
    """
    env = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    if direct_port is not None:
        env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(direct_port)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(direct_port + DIRECT_PORT_SPAN - 1)
    return {k: os.environ.get(k, v) for k, v in env.items()}


def use_serve_env(direct_port: int | None) -> None:
    """Put `serve_env` into this process's environment (before it starts Ray)."""
    for key, value in serve_env(direct_port).items():
        os.environ.setdefault(key, value)


def find_direct(host: str, *, timeout_s: float = 1.0) -> str | None:
    """The base URL of an ingress replica's direct port, or None when direct ingress is off.

    Serve hands ports out from the lowest free one of its range; the first that answers our
    `/healthz` with the envelope is ours.
    """
    import httpx

    first_port = os.environ.get("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT")
    if os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") != "1" or not first_port:
        return None
    first_port = int(first_port)
    for port in range(first_port, first_port + 8):
        base = f"http://{host}:{port}"
        try:
            reply = httpx.get(f"{base}/healthz", timeout=timeout_s)
        except httpx.HTTPError:
            continue
        if reply.status_code == 200 and "models" in reply.json().get("data", {}):
            return base
    return None


def deploy(
    *,
    port: int | None = None,
    tenant: str | None = None,
    model_versions: dict[str, str] | None = None,
    generation: int = 0,
    config_path: str | None = None,
) -> Served:
    """Deploy the Serve graph (blocks until healthy) and say where it answers.

    `model_versions` pins versions of the tenant's models, e.g. {"segmenter": "3"}; a second
    call with other versions (or another `generation`, as a promotion does) redeploys in
    place: only the user_config changes, so Serve calls `reconfigure` on the running replicas.
    """
    from ray import serve

    from core.ray_runtime import ensure_ray
    from serving.builder import AppArgs, build_app
    from serving.config import load_serve_config

    cfg = load_serve_config(Path(config_path) if config_path else None, http_port=port)
    use_serve_env(cfg.direct_port)  # effective only if Ray is not running yet in this process
    ensure_ray()
    serve.start(
        http_options={"host": cfg.http_host, "port": cfg.http_port},
        logging_config={"log_level": "WARNING"},  # request logs stay in the Ray dashboard
    )
    app = build_app(
        AppArgs(
            tenant=tenant,
            model_versions=model_versions or {},
            generation=generation,
            config_path=config_path,
        )
    )
    serve.run(
        app, name=APP_NAME, route_prefix=cfg.route_prefix, logging_config={"log_level": "WARNING"}
    )
    proxy = f"http://{cfg.http_host}:{cfg.http_port}"
    return Served(proxy=proxy, direct=find_direct(cfg.http_host))


def serving_record_path():
    from core.settings import get_settings

    return get_settings().home_dir / "serving.json"


def write_serving_record(served: Served, **extra: Any) -> None:
    """Record where the application answers and how it was deployed (RETAILPULSE_HOME/
    serving.json), so `retailpulse models promote` can reach it."""
    import ray

    info = {
        "proxy": served.proxy,
        "direct": served.direct,
        "gcs_address": ray.get_runtime_context().gcs_address,
        "pid": os.getpid(),
        **extra,
    }
    path = serving_record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))


def read_serving_record() -> dict[str, Any] | None:
    """The running application's record, or None (none recorded, or its process is gone)."""
    path = serving_record_path()
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    try:
        os.kill(int(info["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError):
        path.unlink(missing_ok=True)  # left behind by a server that was killed
        return None
    except PermissionError:
        pass  # alive, another user's
    return info


def reload_running() -> dict[str, Any] | None:
    """Make the running application reload its models (a promotion, live).

    Attaches to the application's Ray cluster and redeploys the same application with a new
    `generation`: only the user_config changes, so Serve calls `reconfigure` on the running
    replicas, which load the new champion before switching (no request is dropped). Returns
    the record of what was reloaded, or None when no application runs from this home.
    """
    import time

    import ray

    info = read_serving_record()
    if info is None:
        return None
    attached = not ray.is_initialized()
    if attached:
        ray.init(address=info["gcs_address"], logging_level="ERROR", log_to_driver=False)
    try:
        generation = time.time_ns() // 1_000_000
        deploy(
            port=int(info["proxy"].rsplit(":", 1)[1]),
            tenant=info.get("tenant"),
            model_versions=info.get("model_versions") or {},
            generation=generation,
        )
    finally:
        if attached:
            ray.shutdown()  # detaches; the cluster belongs to the server
    return {**info, "generation": generation}
