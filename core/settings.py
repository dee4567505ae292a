"""Platform settings: one pydantic-settings object, read from RETAILPULSE_* env vars and .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the platform reads from its environment.

    With no service URL set, RetailPulse starts embedded services under `home`.
    """

    model_config = SettingsConfigDict(env_prefix="RETAILPULSE_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("~/.retailpulse"), description="State directory")
    database_url: str | None = Field(default=None, description="postgresql://… of the warehouse")
    redis_url: str | None = Field(default=None, description="redis://… of the online store")
    kafka_bootstrap: str | None = Field(default=None, description="host:port of a Kafka broker")
    tenant: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Tenant id used when none is given",
    )
    feast_project: str = Field(default="retailpulse", description="Feast project name")
    mlflow_database: str = Field(
        default="mlflow", description="Database on the warehouse server that holds MLflow runs"
    )
    connect_timeout_s: float = Field(
        default=3.0, gt=0, description="Seconds to wait for a configured service to answer"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ray_address: str | None = Field(default=None, description="Ray cluster address (ray://…)")

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` in tests)."""
    return Settings()
