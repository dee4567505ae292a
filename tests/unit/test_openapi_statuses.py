"""OpenAPI declares the error statuses every route can answer (in the error envelope)."""

from __future__ import annotations

from serving.app import create_api
from serving.deps import Backends


def test_every_api_route_declares_its_error_statuses() -> None:
    spec = create_api(Backends(default_tenant="default")).openapi()
    missing = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            codes = set(op["responses"])
            success = {c for c in codes if c.startswith("2")}  # 200, or 201/202 (reports)
            want = {"422", "503"} | ({"404"} if "{" in path else set())
            if not want <= codes or not success:
                missing.append(f"{method.upper()} {path}: {sorted(want - codes) or 'no 2xx'}")
            for code in codes - success:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("ErrorEnvelope"), (path, code)
    assert not missing, missing
