"""Reports (seed §2.7): `/api/v1/reports/...` — generate in the background, poll, download;
templates; schedules; history.

`POST /generate` validates the template, format and parameters, stores a queued report and
hands it to the process's report workers (a small thread pool: SQL is sync psycopg), answering
202 with the status URL. The file is kept in PostgreSQL, so any replica serves the download.
A tenant only ever sees its own reports: every query carries the tenant from `TenantDep`, and
another tenant's report id is a 404 like an unknown one.

`lifespan` (entered by serving/app.py) starts the report scheduler in this process unless
`RETAILPULSE_REPORTS_SCHEDULER=false`, and stops it and the workers on shutdown.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from core.errors import NotFoundError, ServiceUnavailable
from reports import store
from reports.config import ReportSettings
from reports.errors import ReportFailed, ReportNotReady
from reports.formats import FORMATS
from reports.params import scope_to_stores
from reports.runner import ReportRunner, get_format
from reports.scheduler import Scheduler, check_cron, check_timezone, next_run
from reports.templates import TEMPLATES, get_template, validate_params
from serving import envelope
from serving.deps import ActorDep, StoreScopeDep, TenantDep
from serving.schemas_reports import (
    PREFIX,
    FormatInfo,
    GenerateRequest,
    ReportPage,
    ReportStatus,
    ScheduleInfo,
    ScheduleRequest,
    StatusName,
    TemplateCatalog,
    TemplateInfo,
    report_status,
    schedule_info,
)

router = APIRouter(tags=["reports"])
FIRST_TICK_DELAY_S = 5.0
DOWN = "The warehouse (PostgreSQL) or another backing service is not reachable"


# ----------------------------------------------------------------------------- runtime


def warehouse_url() -> str:
    """The warehouse's URL without starting anything (503 when there is none running)."""
    from core.services import get_endpoints

    url = get_endpoints(start=False).database_url
    if not url:
        raise ServiceUnavailable(
            "the warehouse (PostgreSQL) is not running; start it with `retailpulse services up`",
            details={"service": "postgres"},
            retry_after=5,
        )
    return url


def _runner(app: FastAPI) -> ReportRunner:
    runner = getattr(app.state, "report_runner", None)
    if runner is None:
        runner = ReportRunner(ReportSettings().workers, url_of=warehouse_url)
        app.state.report_runner = runner
    return runner


async def get_runner(request: Request) -> ReportRunner:
    return _runner(request.app)


RunnerDep = Annotated[ReportRunner, Depends(get_runner)]


async def own_only(actor: ActorDep, scope: StoreScopeDep) -> str | None:
    """Whose reports a caller sees: a caller limited to some stores only their own (a report
    on all stores must not reach them through the history); everyone else the tenant's."""
    return actor if scope is not None else None


OwnerDep = Annotated[str | None, Depends(own_only)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the in-process report scheduler (unless turned off); on shutdown stop it and the
    report workers, so nothing keeps running after the app."""
    settings = ReportSettings()
    # a short first delay: an app that lives a moment (a test client) never touches the DB
    delay = min(FIRST_TICK_DELAY_S, settings.poll_seconds)
    scheduler = (
        Scheduler(warehouse_url, settings, first_delay=delay) if settings.scheduler else None
    )
    if scheduler is not None:
        scheduler.start()
    try:
        yield
    finally:
        if scheduler is not None:
            await anyio.to_thread.run_sync(scheduler.stop)
        runner = getattr(app.state, "report_runner", None)
        if runner is not None:
            await anyio.to_thread.run_sync(lambda: runner.shutdown(wait=True))
            app.state.report_runner = None


def _db(fn: Any, **kwargs: Any) -> Any:
    """`fn(conn, **kwargs)` on a fresh connection to the warehouse (called in a thread)."""
    from core.db import connect

    with connect(warehouse_url()) as conn:
        return fn(conn, **kwargs)


async def _in_thread(fn: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: _db(fn, **kwargs))


# ----------------------------------------------------------------------------- routes


@router.get(
    f"{PREFIX}/templates",
    response_model=envelope.Envelope[TemplateCatalog],
    responses=envelope.errors(_503=DOWN),
)
async def templates(request: Request) -> dict:
    """The report templates (name, description, parameters' JSON schema) and the formats."""
    formats = [FormatInfo(name=f.name, contentType=f.content_type, description=f.description)
               for f in FORMATS.values()]  # fmt: skip
    items = [TemplateInfo(**t.describe(), formats=list(FORMATS)) for t in TEMPLATES.values()]
    return envelope.ok(request, TemplateCatalog(templates=items, formats=formats))


@router.post(
    f"{PREFIX}/generate",
    status_code=202,
    response_model=envelope.Envelope[ReportStatus],
    responses=envelope.errors(_503=DOWN),
)
async def generate(
    request: Request,
    response: Response,
    body: GenerateRequest,
    tenant: TenantDep,
    actor: ActorDep,
    scope: StoreScopeDep,
    runner: RunnerDep,
) -> dict:
    """Queue a report and generate it in the background; poll `statusUrl` until `done`, then
    GET `downloadUrl`. Unknown template, bad parameters or dates → 422 naming the field; a
    caller limited to some stores reports on those (others → 403)."""
    spec = get_template(body.template)
    params = scope_to_stores(validate_params(spec, body.params), scope).public()
    get_format(body.format)
    row = await _in_thread(store.insert_report, tenant=tenant, template=spec.name,
                           params=params, fmt=body.format, requested_by=actor)  # fmt: skip
    runner.submit(tenant=tenant, report_id=row["report_id"])
    status = report_status(row)
    response.headers["Location"] = status.statusUrl
    return envelope.ok(request, status)


@router.post(
    f"{PREFIX}/schedule",
    status_code=201,
    response_model=envelope.Envelope[ScheduleInfo],
    responses=envelope.errors(_503=DOWN),
)
async def schedule(request: Request, body: ScheduleRequest, tenant: TenantDep,
                   actor: ActorDep, scope: StoreScopeDep) -> dict:  # fmt: skip
    """Generate a report on a cron schedule (the platform's scheduler runs it; each run is a
    report in the history). Bad cron, time zone, template or parameters → 422 naming the
    field."""
    spec = get_template(body.template)
    params = scope_to_stores(validate_params(spec, body.params), scope).public()
    cron = check_cron(body.cron)
    check_timezone(body.timezone)
    upcoming = next_run(cron, body.timezone, datetime.now(UTC))
    row = await _in_thread(store.insert_schedule, tenant=tenant, template=spec.name,
                           params=params, fmt=body.format, cron=cron, timezone=body.timezone,
                           next_run_at=upcoming, created_by=actor,
                           enabled=body.enabled)  # fmt: skip
    return envelope.ok(request, schedule_info(row))


@router.get(
    f"{PREFIX}/schedules",
    response_model=envelope.Envelope[list[ScheduleInfo]],
    responses=envelope.errors(_503=DOWN),
)
async def schedules(request: Request, tenant: TenantDep, owner: OwnerDep) -> dict:
    """The tenant's report schedules."""
    rows = await _in_thread(store.list_schedules, tenant=tenant, created_by=owner)
    return envelope.ok(request, [schedule_info(r) for r in rows])


@router.delete(
    f"{PREFIX}/schedules/{{schedule_id}}",
    response_model=envelope.Envelope[dict[str, str]],
    responses=envelope.errors(_404="No such schedule for this tenant", _503=DOWN),
)
async def delete_schedule(request: Request, schedule_id: str, tenant: TenantDep,
                          owner: OwnerDep) -> dict:  # fmt: skip
    """Remove a schedule (the reports it made stay in the history)."""
    if not await _in_thread(store.delete_schedule, tenant=tenant, schedule_id=schedule_id,
                            created_by=owner):  # fmt: skip
        raise NotFoundError(f"report schedule {schedule_id!r} not found",
                            details={"scheduleId": schedule_id})  # fmt: skip
    return envelope.ok(request, {"deleted": schedule_id})


@router.get(
    f"{PREFIX}/history",
    response_model=envelope.Envelope[ReportPage],
    responses=envelope.errors(_503=DOWN),
)
async def history(
    request: Request,
    tenant: TenantDep,
    owner: OwnerDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    sort: Annotated[
        Literal["created_at", "finished_at", "template", "status", "size_bytes"], Query()
    ] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    template: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[StatusName | None, Query()] = None,
) -> dict:
    """The tenant's reports, newest first by default; filter by template and status."""
    rows, total = await _in_thread(store.list_reports, tenant=tenant, page=page, limit=limit,
                                   sort=sort, order=order, template=template,
                                   status=status, requested_by=owner)  # fmt: skip
    data = ReportPage(items=[report_status(r) for r in rows], page=page, limit=limit, total=total,
                      pages=math.ceil(total / limit) if total else 0)  # fmt: skip
    return envelope.ok(request, data)


def _not_found(report_id: str) -> NotFoundError:
    return NotFoundError(f"report {report_id!r} not found", details={"reportId": report_id})


@router.get(
    f"{PREFIX}/{{report_id}}",
    response_model=envelope.Envelope[ReportStatus],
    responses=envelope.errors(_404="No such report for this tenant", _503=DOWN),
)
async def get_status(request: Request, report_id: str, tenant: TenantDep,
                        owner: OwnerDep) -> dict:  # fmt: skip
    """A report's status (queued, running, done or failed with the error)."""
    row = await _in_thread(store.get_report, tenant=tenant, report_id=report_id)
    if row is None or (owner is not None and row["requested_by"] != owner):
        raise _not_found(report_id)
    return envelope.ok(request, report_status(row))


@router.get(
    f"{PREFIX}/{{report_id}}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The report file",
            "content": {f.content_type: {} for f in FORMATS.values()},
        },
        **envelope.errors(
            _404="No such report for this tenant",
            _409="The report is not done yet (queued or running), or it failed (the error)",
            _503=DOWN,
        ),
    },  # fmt: skip
)
async def download(report_id: str, tenant: TenantDep, owner: OwnerDep) -> Response:
    """The report file, with its content type and an attachment file name."""

    def fetch(conn: Any) -> tuple[dict[str, Any] | None, tuple[str, str, bytes] | None]:
        row = store.get_report(conn, tenant=tenant, report_id=report_id)
        if row is not None and owner is not None and row["requested_by"] != owner:
            return None, None
        if row is None or row["status"] != "done":
            return row, None
        return row, store.get_file(conn, tenant=tenant, report_id=report_id)

    row, file = await _in_thread(fetch)
    if row is None:
        raise _not_found(report_id)
    if row["status"] == "failed":
        raise ReportFailed(f"report {report_id} failed: {row['error']}",
                           details={"reportId": report_id, "status": "failed",
                                    "error": row["error"]})  # fmt: skip
    if row["status"] != "done" or file is None:
        raise ReportNotReady(f"report {report_id} is {row['status']}; poll "
                             f"{PREFIX}/{report_id} until it is done",
                             details={"reportId": report_id, "status": row["status"]})  # fmt: skip
    name, content_type, content = file
    return Response(
        content=content,
        media_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
