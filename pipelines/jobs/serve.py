"""Deploy the Serve application (ingress + the model deployments of configs/serve.yaml)."""

from __future__ import annotations

APP_NAME = "retailpulse"


def deploy(
    *,
    port: int | None = None,
    tenant: str | None = None,
    model_versions: dict[str, str] | None = None,
) -> str:
    """Deploy the Serve graph (blocks until healthy) and return the API base URL.

    `model_versions` pins versions of the tenant's models, e.g. {"segmenter": "3"}; a second
    call with other versions redeploys in place (`reconfigure`, no new replicas).
    """
    from ray import serve

    from core.ray_runtime import ensure_ray
    from serving.builder import AppArgs, build_app
    from serving.config import load_serve_config

    ensure_ray()
    cfg = load_serve_config(http_port=port)
    serve.start(
        http_options={"host": cfg.http_host, "port": cfg.http_port},
        logging_config={"log_level": "WARNING"},  # request logs stay in the Ray dashboard
    )
    app = build_app(AppArgs(tenant=tenant, model_versions=model_versions or {}))
    serve.run(
        app, name=APP_NAME, route_prefix=cfg.route_prefix, logging_config={"log_level": "WARNING"}
    )
    return f"http://{cfg.http_host}:{cfg.http_port}"
