"""The HTTP ingress: FastAPI routes, online feature reads, and the models it hosts.

Why the hot path has no hops: a `DeploymentHandle` call costs 5–9 CPU-ms on this class of
machine (DESIGN §6) while a Redis read costs ~0.2 ms and a segment, churn or recommendation
lookup costs microseconds in numpy. So feature reads, the business rules of the
recommendation graph and every model with `placement: ingress` (the default in
`configs/serve.yaml`) run inside this replica as plain objects; scaling the ingress scales
them together. A model with `placement: deployment` gets a Serve deployment of its own and is
reached through its handle: use that for a model heavy enough to want its own replicas or
resources (a large forecaster on a GPU node, say), where the hop is paid back.

Versions switch in place: the ingress's `user_config` carries each hosted model's
(`model_version`, `reload_interval_s`, `generation`); Serve calls `reconfigure` when it
changes (a `retailpulse models promote`, a `serve deploy` with another pin), and each model
loads its new version in a worker thread before switching, so no request is dropped.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict
from ray import serve

from serving.app import create_api
from serving.deployments import DEPLOYMENTS
from serving.deps import Backends, ModelClient, OnlineFeatures


class OnlineConfig(BaseModel):
    """Where the ingress reads online features (Feast's Redis layout)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str
    base_project: str
    default_tenant: str  # the settings' tenant: its Feast project is `base_project` itself
    serve_tenant: str  # the tenant of requests without an X-Tenant-ID header
    timeout_ms: float = 50.0  # a hung Redis costs a request about this long


def deployment_class(key: str) -> type:
    """The model class of `configs/serve.yaml`'s model `key` (serving/deployments/<model>.py)."""
    module, _, name = DEPLOYMENTS[key].partition(":")
    return getattr(importlib.import_module(module), name)


def host_models(keys: list[str], tenant: str) -> dict[str, Any]:
    """Instantiate the model classes of `keys` in this process (nothing loaded yet).

    torch gets one intra-op thread: a request's tensors are tiny, so a second thread only
    spins (measured: it costs CPU the other requests need); concurrency comes from requests.
    The same for numpy's BLAS (the forecaster's numpy LSTM: with OpenBLAS's default threads
    a batched matmul of a few rows ran several times slower on a busy 2-core machine).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")
    return {key: deployment_class(key)(tenant) for key in keys}


def reconfigure_hosted(hosted: dict[str, Any], user_config: dict[str, Any]) -> None:
    """Apply `{"models": {key: model user_config}}` to models hosted in this process."""
    configs = user_config.get("models", {})
    for key, obj in hosted.items():
        obj.reconfigure(configs.get(key, {}))


def local_backends(
    hosted: dict[str, Any], online: OnlineConfig, handles: dict[str, Any] | None = None
) -> Backends:
    """`Backends` for the routers: hosted models in-process, the others through handles."""
    models = {key: ModelClient.local(key, obj) for key, obj in hosted.items()}
    models.update({key: ModelClient.handle(key, h) for key, h in (handles or {}).items()})
    return Backends(
        models=models,
        features=OnlineFeatures(
            online.redis_url,
            online.base_project,
            online.default_tenant,
            timeout_s=online.timeout_ms / 1000,
        ),
        default_tenant=online.serve_tenant,
    )


@serve.ingress()
class Ingress:
    """HTTP entry point: hosts the `hosted` models, reaches the others through `handles`."""

    def __init__(self, handles: dict[str, Any], hosted: list[str], online: OnlineConfig) -> None:
        self._hosted = host_models(hosted, online.serve_tenant)
        self._backends = local_backends(self._hosted, online, handles)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the versions `user_config` names, off the event loop, then switch."""
        await asyncio.to_thread(reconfigure_hosted, self._hosted, user_config)

    def __serve_build_asgi_app__(self):
        return create_api(self._backends)
