"""Schema-driven fuzzing of the whole OpenAPI (schemathesis, in-process over ASGI) against a
real warehouse: nothing a client can send gets a 5xx other than 503 (no trained model, a
service down), and every error answer is our envelope `{success: false, error{code, message,
details}, metadata}`.

Each operation gets schema-valid and schema-violating requests, anonymously (auth off, the
default) and as a signed-in tenant admin. Models are not trained here, so model routes answer
503. The slow test covers every operation (`make test-all`; RP_FUZZ_EXAMPLES sets the examples
per operation and mode); the smoke test a handful of read routes in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from core.redis_keys import delete_matching
from tests.integration.conftest import Accounts, bearer

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("RP_FUZZ_EXAMPLES", "25"))
SMOKE_EXAMPLES = 8
SMOKE_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/api/v1/analytics/sales/realtime"),
    ("GET", "/api/v1/analytics/stores/comparison"),
    ("GET", "/api/v1/analytics/trends"),
    ("GET", "/api/v1/analytics/products/{productId}/performance"),
    ("POST", "/api/v1/analytics/basket/analysis"),
    ("GET", "/api/v1/alerts/history"),
    ("GET", "/api/v1/reports/templates"),
}
# Signing out ends the shared token's session (or all of the account's): it signs in afresh.
LOGOUT = ("POST", "/api/v1/users/logout")


CURL_CHARS = 600  # a reproduction longer than this is cut in the report


@dataclass(frozen=True)
class Finding:
    """One answer that breaks the contract, with a command that reproduces it."""

    operation: str
    mode: str
    status: int
    kind: str  # the exception's type, or what is wrong with the answer
    problem: str
    curl: str

    def __str__(self) -> str:
        curl = self.curl if len(self.curl) <= CURL_CHARS else self.curl[:CURL_CHARS] + "…"
        return f"{self.operation} [{self.mode}] {self.status}: {self.problem[:400]}\n    {curl}"


def contract_problem(status: int, body: Any) -> str | None:
    """What is wrong with an answer (None: nothing): a 5xx other than 503, or an error status
    whose body is not the error envelope."""
    if status >= 500 and status != 503:
        return "server error"
    if status < 400:
        return None
    if not isinstance(body, dict) or body.get("success") is not False:
        return "error answer without the envelope"
    error, meta = body.get("error"), body.get("metadata")
    if not isinstance(error, dict) or not all(
        isinstance(error.get(k), t) for k, t in (("code", str), ("message", str), ("details", dict))
    ):
        return "envelope without error{code, message, details}"
    if not isinstance(meta, dict) or not {"requestId", "timestamp", "processingTime"} <= set(meta):
        return "envelope without metadata"
    return None


class Fuzzer:
    """Sends generated cases and keeps the contract's breaches (the first of each operation,
    mode, status and kind)."""

    def __init__(self, headers_for: Callable[[tuple[str, str]], dict[str, str]]) -> None:
        self.headers_for = headers_for
        self.sent = 0
        self.findings: dict[tuple[str, str, int, str], Finding] = {}

    def check(self, key: tuple[str, str], mode: GenerationMode, case: schemathesis.Case) -> None:
        """Send `case` and record what is wrong with the answer, if anything."""
        self.sent += 1
        try:
            response = case.call(headers=self.headers_for(key))
        except Exception as exc:  # the app raised: a 500 the server would log
            kind = type(exc).__name__
            self._add(
                Finding(
                    f"{key[0]} {key[1]}",
                    mode.value,
                    500,
                    kind,
                    f"server error ({kind}: {exc})",
                    case.as_curl_command(),
                )
            )
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        problem = contract_problem(response.status_code, body)
        if problem is None:
            return
        kind = problem
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            problem += f" ({body['error'].get('message')})"
        else:
            problem += f" ({response.text[:200]!r})"
        self._add(
            Finding(
                f"{key[0]} {key[1]}",
                mode.value,
                response.status_code,
                kind,
                problem,
                case.as_curl_command(),
            )
        )

    def _add(self, found: Finding) -> None:
        self.findings.setdefault((found.operation, found.mode, found.status, found.kind), found)

    def run(self, strategy: Any, examples: int, send: Callable[[Any], None]) -> None:
        """`examples` cases drawn from `strategy`, each sent (no shrinking: every breach is
        kept, not the first one minimized)."""

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def each(case: schemathesis.Case) -> None:
            send(case)

        try:
            each()
        except Unsatisfiable:  # e.g. no way to violate an operation without parameters
            pass


def fuzz(
    app: Any,
    *,
    tenant: str,
    examples: int,
    headers_for: Callable[[tuple[str, str]], dict[str, str]] = lambda _: {},
    only: Iterable[tuple[str, str]] | None = None,
) -> tuple[int, int, list[Finding]]:
    """Fuzz every operation of `app`'s OpenAPI (or `only` those), `examples` cases per operation
    and generation mode: the numbers of operations fuzzed and requests sent, and the contract's
    breaches."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    wanted = set(only) if only is not None else None
    fuzzer = Fuzzer(headers_for)
    operations = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            if wanted is not None and key not in wanted:
                continue
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # schema-valid requests act in the fuzzed tenant (the one with data); invalid
                # ones may send any X-Tenant-ID (tenant validation and the cross-tenant 403)
                fixed = {"X-Tenant-ID": tenant} if mode is GenerationMode.POSITIVE else None
                strategy = operation.as_strategy(generation_mode=mode, headers=fixed)
                fuzzer.run(strategy, examples, partial(fuzzer.check, key, mode))
    finally:
        schemathesis_asgi.shutdown_lifespans()  # the app's report scheduler and workers
    return operations, fuzzer.sent, list(fuzzer.findings.values())


def report(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def quiet_outbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fuzzed webhook URLs are random hosts: one short try each. Rate limits out of the way
    (their own tests cover them): thousands of requests a minute are the point here."""
    from core.settings import get_settings

    for key, value in {
        "RETAILPULSE_WEBHOOK_ATTEMPTS": "1",
        "RETAILPULSE_WEBHOOK_TIMEOUT_S": "0.5",
        "RETAILPULSE_RATE_LIMIT_USER": "1000000",
        "RETAILPULSE_RATE_LIMIT_IP": "1000000",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def fuzz_warehouse(warehouse_env: str, accounts: Accounts, quiet_outbound: None) -> str:
    """A fresh warehouse with 100 Complete Journey households for the accounts' tenant: the
    fuzzer writes (users, rules, synced records, reports), so not into the session's."""
    from pipelines.ingest import ingest_completejourney
    from tests.conftest import SAMPLE_HOUSEHOLDS

    ingest_completejourney(tenant=accounts.tenant, households=SAMPLE_HOUSEHOLDS)
    return accounts.tenant


def _clear_tenant_cache(tenant: str) -> None:
    from accounts.sessions import sync_redis

    delete_matching(sync_redis(), f"analytics:{tenant}:*")


# ----------------------------------------------------------------------------- tests


def test_smoke_a_handful_of_routes_answer_no_500(
    sample_warehouse: dict[str, int], quiet_outbound: None
) -> None:
    from core.settings import get_settings
    from serving.app import create_api
    from serving.deps import Backends

    tenant = get_settings().tenant
    app = create_api(Backends(default_tenant=tenant))
    operations, sent, findings = fuzz(
        app, tenant=tenant, examples=SMOKE_EXAMPLES, only=SMOKE_ROUTES
    )
    assert operations == len(SMOKE_ROUTES) and sent >= 2 * operations
    assert not findings, report(findings)


@pytest.mark.slow
def test_fuzz_every_operation_anonymously(fuzz_warehouse: str) -> None:
    from serving.app import create_api
    from serving.deps import Backends

    app = create_api(Backends(default_tenant=fuzz_warehouse))
    try:
        operations, sent, findings = fuzz(app, tenant=fuzz_warehouse, examples=EXAMPLES)
    finally:
        _clear_tenant_cache(fuzz_warehouse)
    assert operations >= 50 and sent >= 2 * operations  # every operation of the API
    assert not findings, report(findings)


@pytest.mark.slow
def test_fuzz_every_operation_as_a_tenant_admin(fuzz_warehouse: str, accounts: Accounts) -> None:
    from serving.app import create_api
    from serving.deps import Backends

    app = create_api(Backends(default_tenant=fuzz_warehouse))
    client = accounts.app()
    admin = accounts.user("tenant_admin")
    token = accounts.tokens(client, admin)["accessToken"]
    # signing out may end every session of the account (`everywhere`): another admin signs out
    leaver = accounts.user("tenant_admin")

    def headers_for(key: tuple[str, str]) -> dict[str, str]:
        if key == LOGOUT:
            return bearer(accounts.tokens(client, leaver)["accessToken"])
        return bearer(token)

    try:
        operations, sent, findings = fuzz(
            app, tenant=fuzz_warehouse, examples=EXAMPLES, headers_for=headers_for
        )
    finally:
        _clear_tenant_cache(fuzz_warehouse)
    assert operations >= 50 and sent >= 2 * operations  # every operation of the API
    assert not findings, report(findings)
    # the shared token stayed valid to the end: every operation was fuzzed signed in
    assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
