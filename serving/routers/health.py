"""`/healthz`: the application is up, and which version of every deployed model answers."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request

from serving import envelope
from serving.deps import BackendsDep, TenantDep
from serving.schemas import Health, ModelHealth

router = APIRouter(tags=["ops"])
log = logging.getLogger(__name__)
INFO_TIMEOUT_S = 5.0


@router.get("/healthz")
async def healthz(
    request: Request, backends: BackendsDep, tenant: TenantDep
) -> envelope.Envelope[Health]:
    """Every deployed model's served version for the tenant; never fails because one is
    untrained or slow: that model is reported as not ready and the status as degraded."""

    async def one(key: str) -> ModelHealth:
        try:
            info = await asyncio.wait_for(backends.models[key].call("info", tenant), INFO_TIMEOUT_S)
        except Exception as exc:  # a slow or broken replica must not take /healthz down
            log.warning("healthz: %s did not answer: %r", key, exc)
            return ModelHealth(model=key, version=None, ready=False, detail="did not answer")
        version = info.get("version")
        detail = None if version else f"not trained yet: run `{info.get('trainCommand')}`"
        return ModelHealth(
            model=key,
            registeredName=info.get("registeredName"),
            version=version,
            ready=version is not None,
            detail=detail,
        )

    models = list(await asyncio.gather(*(one(key) for key in backends.models)))
    status = "ok" if all(m.ready for m in models) else "degraded"
    return envelope.ok(request, Health(status=status, tenant=tenant, models=models))
