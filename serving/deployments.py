"""Ray Serve deployments and the typed app builder.

Graph: HTTP → `Ingress` (FastAPI; reads online features from Redis itself, because a handle hop
costs more than the read) → `Segmenter` (model replica, loaded from the MLflow `champion` alias;
`reconfigure` switches versions without a restart).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serving.api import MODEL_NAME, create_api
from serving.config import ServeConfig, load_serve_config

log = logging.getLogger(__name__)


class Segmenter:
    """One replica of the customer segmenter; holds the model and its training-time profiles."""

    def __init__(self, model_version: str = "champion", reload_interval_s: float = 10) -> None:
        # Serve passes the deployment's user_config to `reconfigure` right after this, and
        # again whenever only the user_config changes: that is how versions switch in place.
        self._want = model_version
        self._reload_interval_s = reload_interval_s
        self._checked = 0.0
        self._model = None
        self._profiles: list[dict[str, Any]] = []
        self._version: str | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Switch model version (`{"model_version": "champion" | "<n>"}`) without a restart."""
        self._want = str(user_config.get("model_version", "champion"))
        self._reload_interval_s = float(user_config.get("reload_interval_s", 10))
        self._load()

    def _load(self) -> None:
        from training.registry import load_champion, load_version

        self._checked = time.monotonic()
        try:
            loaded = load_champion() if self._want == "champion" else load_version(self._want)
        except Exception:  # registry unreachable: stay up, answer 503, retry later
            log.exception("could not load the segmenter from the registry")
            return
        if loaded is not None:
            self._model, self._profiles, self._version = loaded
            log.info("segmenter version %s loaded", self._version)

    def _ready(self) -> bool:
        if self._model is None and time.monotonic() - self._checked > self._reload_interval_s:
            self._load()  # a model may have been trained since this replica started
        return self._model is not None

    def assign(self, features: dict[str, float]) -> dict[str, Any] | None:
        """Segment id, label and model version for one feature row; None without a model."""
        if not self._ready():
            return None
        frame = pd.DataFrame([features], columns=self._model.feature_names)
        segment = int(self._model.predict(frame)[0])
        label = next((p["label"] for p in self._profiles if p["id"] == segment), str(segment))
        return {"segmentId": segment, "label": label, "modelVersion": self._version}

    def overview(self) -> dict[str, Any] | None:
        """Segment sizes and profiles of the loaded model; None without a model."""
        if not self._ready():
            return None
        segments = [
            {
                "segmentId": p["id"],
                "label": p["label"],
                "size": p["size"],
                "share": p["share"],
                "means": p["means"] or {},
            }
            for p in self._profiles
        ]
        return {
            "model": MODEL_NAME,
            "modelVersion": self._version,
            "customers": sum(s["size"] for s in segments),
            "segments": segments,
        }


class OnlineFeatures(BaseModel):
    """Where the ingress reads online features (Feast's Redis layout)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str
    project: str


@serve.ingress()
class Ingress:
    """HTTP entry point: FastAPI routes, online feature reads, calls to the model deployment."""

    def __init__(self, segmenter: DeploymentHandle, online: OnlineFeatures) -> None:
        from features.names import FEATURE_VIEW, SEGMENTER_FEATURES
        from features.online import OnlineFeatureReader

        self._segmenter = segmenter
        self._reader = OnlineFeatureReader(
            online.redis_url, online.project, FEATURE_VIEW, SEGMENTER_FEATURES
        )
        self._overview: dict[str, Any] | None = None
        self._overview_at = 0.0

    def __serve_build_asgi_app__(self):
        return create_api(self)

    def online_features(self, customer_id: int) -> dict[str, float] | None:
        return self._reader.get(customer_id)

    async def assign(self, features: dict[str, float]) -> dict[str, Any] | None:
        return await self._segmenter.assign.remote(features)

    async def overview(self) -> dict[str, Any] | None:
        # The overview changes only with the model; a short cache saves a hop per call.
        if self._overview is None or time.monotonic() - self._overview_at > 5:
            self._overview = await self._segmenter.overview.remote()
            self._overview_at = time.monotonic()
        return self._overview


class AppArgs(BaseModel):
    """Arguments of `build_app` (also what `serve run serving.deployments:build_app` takes)."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = None
    feast_project: str | None = None
    config_path: str | None = None
    model_version: str | None = None  # overrides serve.yaml: "champion" or a version number


def build_app(args: AppArgs | dict) -> Application:
    """Typed app builder: the Serve graph Ingress → Segmenter with options from serve.yaml."""
    from core.services import get_endpoints
    from core.settings import get_settings

    args = AppArgs.model_validate(args) if isinstance(args, dict) else args
    cfg: ServeConfig = load_serve_config(Path(args.config_path) if args.config_path else None)
    if args.model_version:
        cfg.segmenter.model_version = args.model_version
    online = OnlineFeatures(
        redis_url=args.redis_url or get_endpoints().redis_url,
        project=args.feast_project or get_settings().feast_project,
    )
    seg_opts = cfg.segmenter
    segmenter = serve.deployment(Segmenter, name="Segmenter").options(
        **seg_opts.ray_options(),
        user_config={
            "model_version": seg_opts.model_version,
            "reload_interval_s": seg_opts.reload_interval_s,
        },
    )
    ingress = serve.deployment(Ingress, name="Ingress").options(**cfg.ingress.ray_options())
    return ingress.bind(segmenter.bind(), online)
