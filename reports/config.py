"""Settings of report generation and the report scheduler (env `RETAILPULSE_REPORTS_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReportSettings(BaseSettings):
    """How the API process runs reports; read on each app start (not cached)."""

    model_config = SettingsConfigDict(
        env_prefix="RETAILPULSE_REPORTS_", env_file=".env", extra="ignore"
    )

    scheduler: bool = Field(
        default=True,
        description="Run the report scheduler inside the API process (turn off when a "
        "`retailpulse reports run-scheduler` job runs it instead; several replicas are safe)",
    )
    workers: int = Field(default=2, ge=1, le=32, description="Report worker threads per process")
    poll_seconds: float = Field(
        default=30.0, gt=0, description="How often the scheduler looks for due schedules"
    )
    stale_queued_minutes: float = Field(
        default=10.0,
        gt=0,
        description="A report still queued after this long (its process died) is run by the "
        "scheduler",
    )
    abandoned_running_minutes: float = Field(
        default=60.0,
        gt=0,
        description="A report still running after this long is marked failed (interrupted)",
    )
