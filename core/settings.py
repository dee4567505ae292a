"""Platform settings: one pydantic-settings object, read from RETAILPULSE_* env vars and .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
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
    # Outgoing mail (alert notifications, password reset): RETAILPULSE_SMTP_*
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no mail is sent")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port")
    smtp_from: str = Field(default="retailpulse@localhost", description="Sender address")
    smtp_user: str | None = Field(default=None, description="SMTP login user (optional)")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP login password")
    smtp_tls: bool = Field(default=False, description="Upgrade the connection with STARTTLS")
    smtp_timeout_s: float = Field(default=5.0, gt=0, description="Seconds per SMTP operation")
    # Accounts and API security (accounts/, serving/auth.py): RETAILPULSE_AUTH_*, _JWT_*, ...
    auth_required: bool = Field(
        default=True,
        description="Every non-public route needs a bearer token (false, for a trusted network "
        "or a private demo only: anonymous requests act as the X-Tenant-ID / default tenant; a "
        "request carrying a token is always verified)",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key of access tokens; unset: generated once into "
        "RETAILPULSE_HOME/secrets/jwt_secret (set it explicitly on a multi-node cluster)",
    )
    data_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts stored MFA secrets; unset: generated once into "
        "RETAILPULSE_HOME/secrets/data_key",
    )
    access_token_minutes: int = Field(default=15, ge=1, le=1440, description="Access token life")
    refresh_token_days: int = Field(default=7, ge=1, le=90, description="Refresh token life")
    password_min_length: int = Field(default=10, ge=8, le=128, description="Shortest password")
    # OWASP's argon2id configuration (Password Storage Cheat Sheet: 19 MiB, 2 passes, 1 lane):
    # ~32 ms of CPU per sign-in here; RFC 9106's 64 MiB / 3 / 4 took ~340 ms, so a few sign-ins
    # a second held a 2-core server's other requests up. Raise them on bigger machines.
    argon2_time_cost: int = Field(default=2, ge=1, description="argon2id iterations")
    argon2_memory_kib: int = Field(default=19456, ge=8, description="argon2id memory (KiB)")
    argon2_parallelism: int = Field(default=1, ge=1, description="argon2id lanes")
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins in a row that lock an account"
    )
    login_lockout_minutes: int = Field(default=15, ge=1, description="How long a lockout lasts")
    login_ip_per_minute: int = Field(
        default=30, ge=1, description="Login attempts per client IP per minute"
    )
    rate_limit_window_s: int = Field(default=60, ge=1, description="Rate-limit window (seconds)")
    rate_limit_user: int = Field(
        default=3000, ge=1, description="Requests per user per window (authenticated calls)"
    )
    rate_limit_ip: int = Field(
        default=6000, ge=1, description="Requests per client IP per window (authenticated calls)"
    )
    password_reset_minutes: int = Field(
        default=30, ge=1, le=1440, description="How long a password-reset token stays valid"
    )
    password_reset_url: str | None = Field(
        default=None,
        description="Link put in reset mails, the token appended as ?token=… (unset: the mail "
        "carries the token and the API route to post it to)",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Bytes of any request body (more: 413); the integration sync routes "
        "take the larger RETAILPULSE_INTEGRATION_MAX_BYTES",
    )
    # Integration API (integrations/, docs/integrations.md): RETAILPULSE_INTEGRATION_*
    integration_max_records: int = Field(
        default=5000, ge=1, description="Records per sync batch (more: 413)"
    )
    integration_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Bytes of a sync request body (more: 413)"
    )
    webhook_attempts: int = Field(default=4, ge=1, le=10, description="Tries per webhook event")
    webhook_backoff_s: float = Field(
        default=1.0, ge=0, description="Seconds before the 2nd try; doubles after each failure"
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="Seconds per webhook try")

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` in tests)."""
    return Settings()
