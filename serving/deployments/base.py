"""What every model deployment shares: per-tenant versions from the registry, hot switching."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from training.specs import ModelSpec

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
AQUERY_CONNECTIONS = 4  # warehouse connections of one event loop (`ModelDeployment._aquery`)


class _LoopPool:
    """Idle async warehouse connections of one event loop, and how many may be in use."""

    def __init__(self) -> None:
        import asyncio

        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(AQUERY_CONNECTIONS)


# per event loop, dropped with it (a test's short-lived loops leave nothing behind)
_LOOP_POOLS: weakref.WeakKeyDictionary[Any, _LoopPool] = weakref.WeakKeyDictionary()


def blocking(method: F | None = None, *, when: Callable[..., bool] | None = None) -> Any:
    """Mark a model method that does blocking I/O (the warehouse): hosted in the ingress, it
    runs in a worker thread so the event loop keeps answering other requests.

    `when(self, *args)` narrows it to the calls that really query (e.g. only when a request
    asks for recent purchases); the others run on the loop, without a thread hop.
    """

    def mark(fn: F) -> F:
        fn.__rp_blocking__ = when or True  # type: ignore[attr-defined]
        return fn

    return mark(method) if method is not None else mark


class ModelDeployment:
    """Holds one loaded registry version per tenant of the model `spec`.

    `model_version` ("champion" or a version number) applies to the default tenant; other
    tenants are served their champion. A tenant without a model is re-checked every
    `reload_interval_s`, so a model trained after start-up is picked up without a restart.
    Serve calls `reconfigure` with the deployment's user_config after `__init__` and whenever
    only the user_config changes: that is how versions switch in place.
    """

    spec: ModelSpec
    _conn: Any = None

    def __init__(self, default_tenant: str = "default") -> None:
        self._default_tenant = default_tenant
        self._want = "champion"
        self._reload_interval_s = 10.0
        self._loaded: dict[str, Any] = {}
        self._checked: dict[str, float] = {}

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """`{"model_version": "champion" | "<n>", "reload_interval_s": s, ...}`: load the
        versions now wanted for every tenant served so far, then switch to them in one step.

        Requests keep being answered by the old versions while the new ones load (a live
        promotion drops nothing); a tenant whose new version cannot be loaded keeps its old
        one. Other keys (e.g. a promotion counter) only force this reload.
        """
        want = str(user_config.get("model_version", "champion"))
        self._reload_interval_s = float(user_config.get("reload_interval_s", 10))
        tenants = set(self._loaded) | {self._default_tenant}
        fresh: dict[str, Any] = {}
        for tenant in sorted(tenants):
            loaded = self._load(tenant, want, reuse=self._loaded.get(tenant))
            if loaded is not None:
                fresh[tenant] = loaded
            elif tenant in self._loaded and self._loaded[tenant] is not None:
                fresh[tenant] = self._loaded[tenant]
        self._want = want
        self._loaded = fresh  # one assignment: a request sees either the old map or the new
        self._checked = {t: time.monotonic() for t in tenants if t not in fresh}

    def ready(self, tenant: str) -> bool:
        """True when a call for `tenant` will not touch the registry: its version is loaded,
        or the registry was checked for it less than `reload_interval_s` ago."""
        if tenant in self._loaded:
            return True
        return time.monotonic() - self._checked.get(tenant, -1e9) < self._reload_interval_s

    def _load(self, tenant: str, want: str, reuse: Any | None = None) -> Any | None:
        from training import registry

        wanted = want if tenant == self._default_tenant else registry.CHAMPION_ALIAS
        try:
            loaded = registry.load(self.spec, tenant, wanted, reuse=reuse)
        except Exception:  # registry unreachable or artifact broken: stay up, answer 503
            log.exception("could not load %s for tenant %s", self.spec.key, tenant)
            return None
        if loaded is not None and loaded is not reuse:
            log.info("%s version %s loaded", loaded.name, loaded.version)
        return loaded

    def _get(self, tenant: str) -> Any | None:
        """The tenant's loaded version (registry.Loaded), loading it if due; None without one."""
        loaded = self._loaded.get(tenant)
        if loaded is not None:
            return loaded
        now = time.monotonic()
        if now - self._checked.get(tenant, -1e9) < self._reload_interval_s:
            return None
        self._checked[tenant] = now
        loaded = self._load(tenant, self._want)
        if loaded is not None:
            self._loaded = {**self._loaded, tenant: loaded}
        return loaded

    def info(self, tenant: str) -> dict[str, Any]:
        """Model key, registered name and the served version (None when there is none)."""
        loaded = self._get(tenant)
        return {
            "model": self.spec.key,
            "registeredName": self.spec.registered_name(tenant),
            "version": loaded.version if loaded else None,
            "trainCommand": self.spec.train_command,
        }

    def _watermark(self, tenant: str, table: str | None = None) -> Any:
        """When `retailpulse features materialize` last wrote `table` (None: any feature
        table) for `tenant` (`feature_watermarks.computed_at`), or None: a cheap freshness
        token for what a replica keeps per state of the warehouse. Read it before the data it
        stands for: that data is then at least as new as the token."""
        query = "SELECT max(computed_at) FROM feature_watermarks WHERE tenant_id = %s"
        params: tuple[str, ...] = (tenant,)
        if table is not None:
            query += " AND feature_table = %s"
            params = (tenant, table)
        row = self._connection().execute(query, params).fetchone()
        return None if row is None else row[0]

    def preload(self, tenant: str) -> None:
        """Load the tenant's version if due (blocking: the caller runs it off the event loop
        before an `async` model method, see `serving.deps.ModelClient`)."""
        self._get(tenant)

    async def _aquery(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        """Rows of one warehouse query, awaited on the running loop (no worker thread): a
        few autocommit connections per loop (asyncio connections belong to their loop), at
        most `AQUERY_CONNECTIONS` at once, reopened when closed."""
        import asyncio

        import psycopg

        from core.db import libpq_url
        from core.services import get_endpoints

        loop = asyncio.get_running_loop()
        pool = _LOOP_POOLS.get(loop)
        if pool is None:
            pool = _LOOP_POOLS[loop] = _LoopPool()
        async with pool.slots:
            conn = pool.idle.pop() if pool.idle else None
            if conn is None or conn.closed:
                url = libpq_url(get_endpoints(start=False).database_url)
                conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            try:
                rows = await (await conn.execute(query, params)).fetchall()
            except BaseException:
                await conn.close()
                raise
            pool.idle.append(conn)
            return rows

    def _connection(self) -> Any:
        """A warehouse connection of this replica (autocommit; reopened when closed)."""
        import psycopg

        from core.db import libpq_url
        from core.services import get_endpoints

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                libpq_url(get_endpoints(start=False).database_url), autocommit=True
            )
        return self._conn
