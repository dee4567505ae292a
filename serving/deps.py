"""FastAPI dependencies shared by every router: the tenant, model clients, online features.

Routers never close over a backend object: the typed app builder puts a `Backends` on
`app.state`, and these dependencies hand routers what they need. `TenantDep` is the only
place a request's tenant is decided (today a header with the settings' tenant as default;
later the authenticated user), so routes never change when that does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
import redis
import redis.asyncio as aioredis
from fastapi import Depends, Header, Request
from starlette.requests import HTTPConnection

from accounts.principal import Principal
from core.aioredis_clients import LoopClients
from core.errors import Forbidden, ModelNotReady, ServiceUnavailable
from core.settings import get_settings
from core.tenants import validate_tenant
from features.catalog import FeatureViewSpec, feast_project
from features.online import AsyncOnlineReader, get_many_views
from serving.auth import AuthDep


class ModelClient:
    """Calls one model: through a Serve `DeploymentHandle`, or hosted in this process.

    In-process calls run on the event loop (microseconds for a numpy model) unless they may
    block: a method marked `@blocking` (warehouse queries) or a first call that has to load
    the tenant's version from the registry runs in a worker thread instead. An `async`
    method (the forecaster: its warehouse reads are awaited) runs on the loop; only the
    loading of a version goes to a thread first.
    """

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
        fn = getattr(self._target, method)
        tenant = args[0] if args and isinstance(args[0], str) else None
        ready = getattr(self._target, "ready", None)
        if inspect.iscoroutinefunction(fn):  # awaits its own I/O on the loop
            if ready is not None and tenant is not None and not ready(tenant):
                await anyio.to_thread.run_sync(self._target.preload, tenant)
            return await fn(*args)
        marked = getattr(fn, "__rp_blocking__", False)
        blocks = marked(self._target, *args) if callable(marked) else bool(marked)
        if blocks or (ready is not None and tenant is not None and not ready(tenant)):
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        return fn(*args)

    @property
    def local_object(self) -> Any | None:
        """The hosted model object (None for a remote deployment)."""
        return None if self._remote else self._target


ONLINE_TIMEOUT_S = 0.05  # a hung Redis costs a request this (twice with the one retry)


class GuardedReader:
    """An `AsyncOnlineReader` whose Redis failures become a 503 naming the feature store."""

    def __init__(self, reader: AsyncOnlineReader, where: str) -> None:
        self._reader = reader
        self._where = where

    async def _guard(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ServiceUnavailable(
                f"the online feature store (Redis at {self._where}) did not answer: "
                f"{type(exc).__name__}; retry shortly",
                details={"service": "online feature store", "at": self._where},
                retry_after=1,
            ) from None

    async def get(self, key: Any, *, with_ts: bool = False) -> dict[str, Any] | None:
        return await self._guard(self._reader.get(key, with_ts=with_ts))

    async def get_many(self, keys: list[Any], *, with_ts: bool = False) -> list[Any]:
        return await self._guard(self._reader.get_many(keys, with_ts=with_ts))

    async def get_matrix(self, keys: list[Any], *, with_ts: bool = False) -> Any:
        return await self._guard(self._reader.get_matrix(keys, with_ts=with_ts))


class OnlineFeatures:
    """The ingress's reader of Feast's Redis online store, one project per tenant.

    Reads go through `redis.asyncio` with a tight timeout (`timeout_s`) and one immediate
    retry (a connection left stale by a Redis restart), so a hung or stopped Redis turns into
    a 503 with `Retry-After` in tens of milliseconds and the server recovers by itself when
    Redis is back. One client per event loop: asyncio connections belong to their loop.
    """

    def __init__(
        self,
        redis_url: str,
        base_project: str,
        default_tenant: str,
        *,
        timeout_s: float = ONLINE_TIMEOUT_S,
    ) -> None:
        self._base = base_project
        self._default = default_tenant
        self._redis = LoopClients(redis_url, timeout_s=timeout_s)
        self._readers: dict[tuple[int, str, str], GuardedReader] = {}
        parsed = urlsplit(redis_url)
        self._where = f"{parsed.hostname or parsed.path}:{parsed.port or 6379}"

    @classmethod
    def from_url(cls, redis_url: str, base_project: str, default_tenant: str) -> OnlineFeatures:
        return cls(redis_url, base_project, default_tenant)

    def _client(self) -> tuple[int, aioredis.Redis]:
        return id(asyncio.get_running_loop()), self._redis.get()

    def reader(self, tenant: str, view: FeatureViewSpec) -> GuardedReader:
        """The tenant's reader of `view` (call from a coroutine: it binds to the loop)."""
        loop, client = self._client()
        key = (loop, tenant, view.name)
        if key not in self._readers:
            project = feast_project(tenant, base=self._base, default_tenant=self._default)
            self._readers[key] = GuardedReader(
                AsyncOnlineReader(client, project, view), self._where
            )
        return self._readers[key]

    async def get_many_views(
        self,
        tenant: str,
        requests: list[tuple[FeatureViewSpec, list[Any], bool]],
        strings: list[str] | None = None,
    ) -> list[list[Any]]:
        """Rows of several views, `[(view, keys, with_ts), ...]`, in one Redis round trip;
        with `strings`, the raw values of those plain keys as one more list."""
        guarded = [self.reader(tenant, view) for view, _, _ in requests]
        groups = [(g._reader, keys, ts) for g, (_, keys, ts) in zip(guarded, requests, strict=True)]
        return await guarded[0]._guard(get_many_views(groups, strings or ()))


@dataclass
class Backends:
    """What the routers reach: model clients by model key, and online features."""

    models: dict[str, ModelClient] = field(default_factory=dict)
    features: OnlineFeatures | None = None
    default_tenant: str = field(default_factory=lambda: get_settings().tenant)


# Every dependency below is `async def` on purpose: FastAPI runs a plain `def` dependency in a
# worker thread, and those thread hops cost more than the rest of a lookup route (profiled:
# 16 hops per request before).


def backends_of(request: HTTPConnection) -> Backends:
    return request.app.state.backends


async def get_backends(request: Request) -> Backends:
    return backends_of(request)


BackendsDep = Annotated[Backends, Depends(get_backends)]


async def get_principal(principal: AuthDep) -> Principal | None:
    """The authenticated caller, or None for an anonymous request (when auth is off).

    Resolved by `serving.auth.authorize` (the app-wide check; cached per request), so the
    token is verified before any route sees the caller."""
    return principal


PrincipalDep = Annotated[Principal | None, Depends(get_principal)]


async def get_tenant(
    conn: HTTPConnection,
    principal: PrincipalDep,
    x_tenant_id: Annotated[
        str | None,
        Header(
            description="Tenant id (default: the tenant the application serves, or the "
            "signed-in user's; only a super admin may name another tenant)"
        ),
    ] = None,
) -> str:
    """The request's tenant: the signed-in user's (a super admin's X-Tenant-ID choice; any
    other caller naming another tenant got 403 in `authorize`), or for an anonymous request
    (auth off) the `X-Tenant-ID` header, validated, or the app's default tenant."""
    if principal is not None:
        return getattr(conn.state, "tenant", None) or principal.tenant
    return validate_tenant(x_tenant_id) if x_tenant_id else backends_of(conn).default_tenant


TenantDep = Annotated[str, Depends(get_tenant)]


async def store_scope(principal: PrincipalDep) -> frozenset[str] | None:
    """The stores the caller may see: None for all of the tenant's (admins, analysts)."""
    return None if principal is None else principal.stores


StoreScopeDep = Annotated[frozenset[str] | None, Depends(store_scope)]


async def actor(principal: PrincipalDep) -> str | None:
    """The user id a write is recorded under (None for an anonymous request)."""
    return None if principal is None else principal.user_id


ActorDep = Annotated[str | None, Depends(actor)]


def ensure_store_allowed(scope: frozenset[str] | None, store_id: str) -> None:
    """403 unless the caller's store scope (`StoreScopeDep`) includes `store_id` (None: all)."""
    if scope is not None and store_id not in scope:
        raise Forbidden(
            f"store {store_id!r} is not one of your stores",
            details={"storeId": store_id, "stores": sorted(scope)},
        )


def allowed_stores(scope: frozenset[str] | None, store_ids: list[str] | None) -> list[str] | None:
    """The stores a multi-store request may cover: each named one checked (403), or, when
    none is named, every store of a store-scoped caller (None: all of the tenant's)."""
    if store_ids is None:
        return None if scope is None else sorted(scope)
    for store_id in store_ids:
        ensure_store_allowed(scope, store_id)
    return store_ids


def model(key: str) -> Callable[[Request], Awaitable[ModelClient]]:
    """Dependency factory: the client of model `key`, or 503 when it is not deployed."""

    async def dependency(request: Request) -> ModelClient:
        client = backends_of(request).models.get(key)
        if client is None:
            raise ModelNotReady(
                f"the {key} is not deployed in this application (configs/serve.yaml `models:`)",
                details={"model": key},
            )
        return client

    return dependency


async def online(request: Request) -> OnlineFeatures:
    features = backends_of(request).features
    if features is None:
        raise ModelNotReady("no online feature store is configured for this application")
    return features


SegmenterDep = Annotated[ModelClient, Depends(model("segmenter"))]
ForecasterDep = Annotated[ModelClient, Depends(model("forecaster"))]
RecommenderDep = Annotated[ModelClient, Depends(model("recommender"))]
AnomalyDep = Annotated[ModelClient, Depends(model("anomaly"))]
ChurnDep = Annotated[ModelClient, Depends(model("churn"))]
OnlineDep = Annotated[OnlineFeatures, Depends(online)]


async def warehouse(request: Request) -> Any:
    """The ingress's warehouse reads (`features.store_queries.Warehouse`), made on first use."""
    state = request.app.state
    if getattr(state, "warehouse", None) is None:
        from features.store_queries import Warehouse

        state.warehouse = Warehouse()
    return state.warehouse


WarehouseDep = Annotated[Any, Depends(warehouse)]
PricingDep = Annotated[ModelClient, Depends(model("pricing"))]
PromotionsDep = Annotated[ModelClient, Depends(model("promotions"))]
