"""What every model deployment shares: per-tenant versions from the registry, hot switching."""

from __future__ import annotations

import logging
import time
from typing import Any

from training.specs import ModelSpec

log = logging.getLogger(__name__)


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
        """`{"model_version": "champion" | "<n>", "reload_interval_s": s}`; reloads models."""
        self._want = str(user_config.get("model_version", "champion"))
        self._reload_interval_s = float(user_config.get("reload_interval_s", 10))
        tenants = set(self._loaded) | {self._default_tenant}
        self._loaded.clear()
        self._checked.clear()
        for tenant in tenants:
            self._get(tenant)

    def _get(self, tenant: str) -> Any | None:
        """The tenant's loaded version (registry.Loaded), loading it if due; None without one."""
        loaded = self._loaded.get(tenant)
        if loaded is not None:
            return loaded
        now = time.monotonic()
        if now - self._checked.get(tenant, -1e9) < self._reload_interval_s:
            return None
        self._checked[tenant] = now
        from training import registry

        want = self._want if tenant == self._default_tenant else registry.CHAMPION_ALIAS
        try:
            loaded = registry.load(self.spec, tenant, want)
        except Exception:  # registry unreachable or artifact broken: stay up, answer 503
            log.exception("could not load %s for tenant %s", self.spec.key, tenant)
            return None
        if loaded is not None:
            self._loaded[tenant] = loaded
            log.info("%s version %s loaded", loaded.name, loaded.version)
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
