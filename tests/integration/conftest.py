"""Fixtures of the integration tests: users who sign in, and the API app on the test's
warehouse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.redis_keys import delete_matching

PASSWORD = "correct horse battery staple"


# ----------------------------------------------------------------------------- helpers


@dataclass
class Accounts:
    """A tenant of its own on the session's services, and helpers to act in it."""

    tenant: str
    other_tenant: str

    def app(self, backends: Any = None) -> TestClient:
        from serving.app import create_api
        from serving.deps import Backends

        api = create_api(backends or Backends(default_tenant=self.tenant))
        return TestClient(api, raise_server_exceptions=False)

    def user(
        self,
        role: str,
        *,
        tenant: str | None = None,
        stores: list[str] | None = None,
        email: str | None = None,
    ) -> Any:
        """An account of `role` (created directly in the warehouse)."""
        from accounts import passwords, repo
        from core.db import connect

        with connect(autocommit=True) as conn:
            return repo.insert_user(
                conn,
                tenant=tenant or self.tenant,
                user_id=uuid.uuid4().hex,
                email=email or f"{role}-{uuid.uuid4().hex[:6]}@example.com",
                name=role.replace("_", " ").title(),
                role=role,
                store_ids=stores,
                hashed_password=passwords.hash_password(PASSWORD),
            )

    def login(self, client: TestClient, user: Any, **extra: Any) -> Any:
        body = {"email": user.email, "password": PASSWORD, **extra}
        return client.post(
            "/api/v1/users/login", json=body, headers={"X-Tenant-ID": user.tenant_id}
        )

    def tokens(self, client: TestClient, user: Any) -> dict[str, Any]:
        response = self.login(client, user)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def audit(self, **where: Any) -> list[dict[str, Any]]:
        from accounts import repo
        from core.db import connect

        with connect(autocommit=True) as conn:
            rows, _ = repo.list_audit(
                conn, tenant=where.pop("tenant", self.tenant), limit=200, offset=0
            )
        return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def _clear_redis_keys(patterns: tuple[str, ...]) -> None:
    from accounts.sessions import sync_redis

    delete_matching(sync_redis(), *patterns)


@pytest.fixture
def accounts(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Accounts]:
    """Cheap argon2 (tests only: the default stays OWASP's), no login throttle unless a
    test sets one, and two fresh tenants."""
    from core.settings import get_settings

    for key, value in {
        "RETAILPULSE_ARGON2_TIME_COST": "1",
        "RETAILPULSE_ARGON2_MEMORY_KIB": "64",
        "RETAILPULSE_ARGON2_PARALLELISM": "1",
        "RETAILPULSE_LOGIN_IP_PER_MINUTE": "100000",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    made = Accounts(tenant=f"acc{uuid.uuid4().hex[:8]}", other_tenant=f"oth{uuid.uuid4().hex[:8]}")
    yield made
    get_settings.cache_clear()
    # the route matrix also fills the analytics cache of the tenant
    _clear_redis_keys(
        ("session:*", "pwreset:*", "mfa:used:*", "rl:*", f"analytics:{made.tenant}:*")
    )


@pytest.fixture
def api(warehouse_env: str) -> Iterator[TestClient]:
    """The API app on the test's warehouse, default tenant, authentication off (every store,
    no actor); a module may define its own `api`."""
    from serving.app import create_api
    from serving.deps import Backends

    with TestClient(create_api(Backends(default_tenant="default"))) as client:
        yield client
