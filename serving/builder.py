"""The typed app builder: `configs/serve.yaml` → a Serve application (ingress + models).

Also what `serve run serving.builder:build_app` and a declarative Serve config call.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve import Application

from serving.config import ServeConfig, load_serve_config
from serving.deployments import DEPLOYMENTS
from serving.deployments.ingress import Ingress, OnlineConfig


class AppArgs(BaseModel):
    """Arguments of `build_app`; each defaults to the settings / services / serve.yaml."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = None
    feast_project: str | None = None
    tenant: str | None = None
    config_path: str | None = None
    # Overrides serve.yaml for the given models: {"segmenter": "3"} pins version 3.
    model_versions: dict[str, str] = {}


def _deployment_class(key: str) -> type:
    module, _, name = DEPLOYMENTS[key].partition(":")
    return getattr(importlib.import_module(module), name)


def build_app(args: AppArgs | dict) -> Application:
    """Bind the enabled model deployments and the ingress that routes to them."""
    from core.services import get_endpoints
    from core.settings import get_settings

    args = AppArgs.model_validate(args) if isinstance(args, dict) else args
    cfg: ServeConfig = load_serve_config(Path(args.config_path) if args.config_path else None)
    unknown = sorted(set(cfg.models) - set(DEPLOYMENTS))
    if unknown:
        raise ValueError(
            f"configs/serve.yaml names unknown model(s) {unknown}; known: {sorted(DEPLOYMENTS)}"
        )
    settings = get_settings()
    tenant = args.tenant or settings.tenant
    models = {}
    for key, opts in cfg.models.items():
        if not opts.enabled:
            continue
        if key in args.model_versions:
            opts = opts.model_copy(update={"model_version": args.model_versions[key]})
        deployment = serve.deployment(_deployment_class(key), name=key.capitalize()).options(
            **opts.ray_options(), user_config=opts.user_config()
        )
        models[key] = deployment.bind(tenant)
    online = OnlineConfig(
        redis_url=args.redis_url or get_endpoints().redis_url,
        base_project=args.feast_project or settings.feast_project,
        default_tenant=settings.tenant,
        serve_tenant=tenant,
    )
    ingress = serve.deployment(Ingress, name="Ingress").options(**cfg.ingress.ray_options())
    return ingress.bind(models, online)
