"""The typed app builder: `configs/serve.yaml` → a Serve application (ingress + models).

Also what `serve run serving.builder:build_app` and a declarative Serve config call.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve import Application

from serving.config import ServeConfig, load_serve_config
from serving.deployments import DEPLOYMENTS
from serving.deployments.ingress import Ingress, OnlineConfig, deployment_class

ROOT = Path(__file__).resolve().parent.parent


class AppArgs(BaseModel):
    """Arguments of `build_app`; each defaults to the settings / services / serve.yaml."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = None
    feast_project: str | None = None
    tenant: str | None = None
    config_path: str | None = None
    # Overrides serve.yaml for the given models: {"segmenter": "3"} pins version 3.
    model_versions: dict[str, str] = {}
    # Bumped by `retailpulse models promote`: a changed user_config makes Serve call
    # `reconfigure`, which reloads "champion" models in place.
    generation: int = 0


def code_version(cls: type, *parts: Any) -> str:
    """A deployment version that changes with its code and constructor arguments only.

    `serve.run` gives every deployment a random version unless one is set, so redeploying
    the same application replaced every replica (and, with direct ingress, moved the ingress
    to another port). With a stable version, a redeploy that changes only the user_config (a
    promotion, a pinned model version) makes Serve call `reconfigure` on the running replicas.
    `_internal=True` is how Ray 2.60 still accepts a version in `Deployment.options`.
    """
    key = f"{_source_digest()}:{cls.__module__}.{cls.__qualname__}:{parts!r}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@functools.cache
def _source_digest() -> str:
    """Digest of the code a replica runs (our packages' sources), read once per process: the
    process serves the code it imported, so a later edit on disk does not concern it."""
    digest = hashlib.sha256()
    for folder in ("serving", "training", "features", "core"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def build_app(args: AppArgs | dict) -> Application:
    """Bind the ingress (hosting the `placement: ingress` models) and any model deployments."""
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
    handles: dict[str, Any] = {}
    hosted: dict[str, dict[str, Any]] = {}
    for key, opts in cfg.models.items():
        if not opts.enabled:
            continue
        if key in args.model_versions:
            opts = opts.model_copy(update={"model_version": args.model_versions[key]})
        user_config = {**opts.user_config(), "generation": args.generation}
        if opts.placement == "ingress":
            hosted[key] = user_config
            continue
        cls = deployment_class(key)
        deployment = serve.deployment(cls, name=key.capitalize()).options(
            **opts.ray_options(),
            user_config=user_config,
            version=code_version(cls, tenant, opts.ray_options()),
            _internal=True,
        )
        handles[key] = deployment.bind(tenant)
    online = OnlineConfig(
        redis_url=args.redis_url or get_endpoints().redis_url,
        base_project=args.feast_project or settings.feast_project,
        default_tenant=settings.tenant,
        serve_tenant=tenant,
        timeout_ms=cfg.online_timeout_ms,
    )
    ingress = serve.deployment(Ingress, name="Ingress").options(
        **cfg.ingress.ray_options(),
        user_config={"models": hosted},
        version=code_version(
            Ingress, sorted(handles), sorted(hosted), online, cfg.ingress.ray_options()
        ),
        _internal=True,
    )
    return ingress.bind(handles, sorted(hosted), online)
