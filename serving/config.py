"""Typed Serve configuration, loaded from configs/serve.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class DeploymentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(default=1, ge=1)
    num_cpus: float = Field(default=0.25, gt=0)
    max_ongoing_requests: int = Field(default=64, ge=1)
    # A dead replica leaves the routing tables at its next failed health check: Serve's 10 s
    # default let requests reach a killed replica for up to 15 s in the drill.
    health_check_period_s: float = Field(default=2.0, gt=0)
    health_check_timeout_s: float = Field(default=10.0, gt=0)

    def ray_options(self) -> dict:
        return {
            "num_replicas": self.num_replicas,
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
        }


class ModelOptions(DeploymentOptions):
    """One entry of the `models:` map: a model deployment and the version it serves."""

    enabled: bool = True
    placement: Literal["ingress", "deployment"] = Field(
        default="ingress",
        description="'ingress': the model runs inside the ingress replica (no handle hop, "
        "the fast path); 'deployment': its own Serve deployment, scaled and placed on its own",
    )
    model_version: str = Field(
        default="champion", description="'champion' follows the alias; a number pins a version"
    )
    reload_interval_s: float = Field(default=10, ge=0)

    def user_config(self) -> dict:
        return {"model_version": self.model_version, "reload_interval_s": self.reload_interval_s}


class ServeConfig(BaseModel):
    """What `build_app` needs: HTTP binding, the ingress, and the model deployments."""

    model_config = ConfigDict(extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    route_prefix: str = "/"
    direct_port: int | None = Field(
        default=8100,
        ge=1,
        le=65000,
        description="first direct-ingress HTTP port of the ingress replicas (None: Ray's 30000)",
    )
    online_timeout_ms: float = Field(
        default=50, gt=0, le=5000, description="timeout of an online feature read (Redis)"
    )
    ingress: DeploymentOptions = DeploymentOptions()
    models: dict[str, ModelOptions] = Field(default_factory=dict)


def load_serve_config(path: Path | None = None, **overrides) -> ServeConfig:
    """Read configs/serve.yaml (or `path`) and apply keyword overrides."""
    raw = yaml.safe_load((path or CONFIG_DIR / "serve.yaml").read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return ServeConfig.model_validate(raw)
