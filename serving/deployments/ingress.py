"""The HTTP ingress: FastAPI routes, online feature reads, calls to the model deployments.

Feature reads and request validation happen here, in the ingress replica, because a
`DeploymentHandle` hop costs 5–9 CPU-ms on this class of machine (DESIGN §6) while a Redis
read costs ~0.2 ms; models live in deployments of their own so they scale and roll
independently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from ray import serve

from serving.app import create_api
from serving.deps import Backends, ModelClient, OnlineFeatures


class OnlineConfig(BaseModel):
    """Where the ingress reads online features (Feast's Redis layout)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str
    base_project: str
    default_tenant: str  # the settings' tenant: its Feast project is `base_project` itself
    serve_tenant: str  # the tenant of requests without an X-Tenant-ID header


@serve.ingress()
class Ingress:
    """HTTP entry point; `models` maps model keys to their deployments' handles."""

    def __init__(self, models: dict[str, Any], online: OnlineConfig) -> None:
        self._backends = Backends(
            models={key: ModelClient.handle(key, handle) for key, handle in models.items()},
            features=OnlineFeatures.from_url(
                online.redis_url, online.base_project, online.default_tenant
            ),
            default_tenant=online.serve_tenant,
        )

    def __serve_build_asgi_app__(self):
        return create_api(self._backends)
