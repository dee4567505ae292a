"""Request and response models of the report routes (serving/routers/reports.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "/api/v1/reports"
FormatName = Literal["pdf", "xlsx", "csv", "zip", "json"]
StatusName = Literal["queued", "running", "done", "failed"]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field(description="Template name (GET /api/v1/reports/templates)")
    format: FormatName = Field("pdf", description="Output format")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The template's parameters (see its JSON schema)"
    )


class ScheduleRequest(GenerateRequest):
    cron: str = Field(
        description="Five-field cron expression (minute hour day month weekday), e.g. "
        "'0 6 * * 1' for Mondays at 06:00",
        max_length=200,
    )
    timezone: str = Field(
        "UTC", max_length=64, description="IANA time zone of the cron's wall clock"
    )
    enabled: bool = True


class ReportStatus(BaseModel):
    id: str
    template: str
    format: str
    status: StatusName
    params: dict[str, Any]
    error: str | None = None
    requestedBy: str | None = None
    scheduleId: str | None = None
    createdAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    sizeBytes: int | None = None
    statusUrl: str
    downloadUrl: str | None = Field(None, description="Set once the report is done")


class ReportPage(BaseModel):
    items: list[ReportStatus]
    page: int
    limit: int
    total: int
    pages: int


class TemplateInfo(BaseModel):
    name: str
    title: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of `params`")
    formats: list[str]


class FormatInfo(BaseModel):
    name: str
    contentType: str
    description: str


class TemplateCatalog(BaseModel):
    templates: list[TemplateInfo]
    formats: list[FormatInfo]


class ScheduleInfo(BaseModel):
    id: str
    template: str
    format: str
    params: dict[str, Any]
    cron: str
    timezone: str
    nextRunAt: datetime
    enabled: bool
    createdBy: str | None = None
    createdAt: datetime
    lastRunAt: datetime | None = None
    lastReportId: str | None = None


def report_status(row: dict[str, Any]) -> ReportStatus:
    rid = row["report_id"]
    done = row["status"] == "done"
    return ReportStatus(
        id=rid,
        template=row["template"],
        format=row["format"],
        status=row["status"],
        params=row["params"],
        error=row["error"],
        requestedBy=row["requested_by"],
        scheduleId=row["schedule_id"],
        createdAt=row["created_at"],
        startedAt=row["started_at"],
        finishedAt=row["finished_at"],
        sizeBytes=row["size_bytes"],
        statusUrl=f"{PREFIX}/{rid}",
        downloadUrl=f"{PREFIX}/{rid}/download" if done else None,
    )


def schedule_info(row: dict[str, Any]) -> ScheduleInfo:
    return ScheduleInfo(
        id=row["schedule_id"],
        template=row["template"],
        format=row["format"],
        params=row["params"],
        cron=row["cron"],
        timezone=row["timezone"],
        nextRunAt=row["next_run_at"],
        enabled=row["enabled"],
        createdBy=row["created_by"],
        createdAt=row["created_at"],
        lastRunAt=row["last_run_at"],
        lastReportId=row["last_report_id"],
    )
