"""FastAPI dependencies shared by every router: the tenant, model clients, online features.

Routers never close over a backend object: the typed app builder puts a `Backends` on
`app.state`, and these dependencies hand routers what they need. `TenantDep` is the only
place a request's tenant is decided (today a header with the settings' tenant as default;
later the authenticated user), so routes never change when that does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis
from fastapi import Depends, Header, Request

from core.errors import ModelNotReady
from core.settings import get_settings
from core.tenants import validate_tenant
from features.catalog import FeatureViewSpec, feast_project
from features.online import OnlineReader


class ModelClient:
    """Calls one model deployment: through a Serve `DeploymentHandle`, or in-process."""

    def __init__(self, key: str, target: Any, *, remote: bool) -> None:
        self.key = key
        self._target = target
        self._remote = remote

    @classmethod
    def handle(cls, key: str, handle: Any) -> ModelClient:
        return cls(key, handle, remote=True)

    @classmethod
    def local(cls, key: str, obj: Any) -> ModelClient:
        return cls(key, obj, remote=False)

    async def call(self, method: str, *args: Any) -> Any:
        if self._remote:
            return await getattr(self._target, method).remote(*args)
        return getattr(self._target, method)(*args)


class OnlineFeatures:
    """The ingress's reader of Feast's Redis online store, one project per tenant."""

    def __init__(self, client: redis.Redis, base_project: str, default_tenant: str) -> None:
        self._client = client
        self._base = base_project
        self._default = default_tenant
        self._readers: dict[tuple[str, str], OnlineReader] = {}

    @classmethod
    def from_url(cls, redis_url: str, base_project: str, default_tenant: str) -> OnlineFeatures:
        return cls(redis.Redis.from_url(redis_url), base_project, default_tenant)

    def reader(self, tenant: str, view: FeatureViewSpec) -> OnlineReader:
        key = (tenant, view.name)
        if key not in self._readers:
            project = feast_project(tenant, base=self._base, default_tenant=self._default)
            self._readers[key] = OnlineReader(self._client, project, view)
        return self._readers[key]


@dataclass
class Backends:
    """What the routers reach: model clients by model key, and online features."""

    models: dict[str, ModelClient] = field(default_factory=dict)
    features: OnlineFeatures | None = None
    default_tenant: str = field(default_factory=lambda: get_settings().tenant)


def get_backends(request: Request) -> Backends:
    return request.app.state.backends


BackendsDep = Annotated[Backends, Depends(get_backends)]


def get_tenant(
    request: Request,
    x_tenant_id: Annotated[
        str | None,
        Header(description="Tenant id (default: the tenant the application serves)"),
    ] = None,
) -> str:
    """The request's tenant: the `X-Tenant-ID` header, validated, or the app's default tenant."""
    return validate_tenant(x_tenant_id) if x_tenant_id else get_backends(request).default_tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def model(key: str) -> Callable[[Request], ModelClient]:
    """Dependency factory: the client of model `key`, or 503 when it is not deployed."""

    def dependency(request: Request) -> ModelClient:
        client = get_backends(request).models.get(key)
        if client is None:
            raise ModelNotReady(
                f"the {key} is not deployed in this application (configs/serve.yaml `models:`)",
                details={"model": key},
            )
        return client

    return dependency


def online(request: Request) -> OnlineFeatures:
    features = get_backends(request).features
    if features is None:
        raise ModelNotReady("no online feature store is configured for this application")
    return features


SegmenterDep = Annotated[ModelClient, Depends(model("segmenter"))]
ForecasterDep = Annotated[ModelClient, Depends(model("forecaster"))]
RecommenderDep = Annotated[ModelClient, Depends(model("recommender"))]
AnomalyDep = Annotated[ModelClient, Depends(model("anomaly"))]
ChurnDep = Annotated[ModelClient, Depends(model("churn"))]
OnlineDep = Annotated[OnlineFeatures, Depends(online)]
