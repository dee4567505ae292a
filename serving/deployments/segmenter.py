"""The customer segmenter deployment: numpy inference on the champion's fitted arithmetic."""

from __future__ import annotations

from typing import Any

from serving.deployments.base import ModelDeployment
from training.specs import SEGMENTER


class Segmenter(ModelDeployment):
    """One replica of the segmenter (all tenants; per-tenant registry versions)."""

    spec = SEGMENTER

    def assign(self, tenant: str, features: dict[str, float]) -> dict[str, Any] | None:
        """Segment id, label and model version for one feature row; None without a model."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        segment = bundle.fast.predict_one(features)
        return {
            "segmentId": segment,
            "label": bundle.label(segment),
            "modelVersion": loaded.version,
        }

    def overview(self, tenant: str) -> dict[str, Any] | None:
        """Segment sizes and profiles of the served version; None without a model."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        segments = [
            {
                "segmentId": p["id"],
                "label": p["label"],
                "size": p["size"],
                "share": p["share"],
                "means": p["means"] or {},
            }
            for p in loaded.model.profiles
        ]
        return {
            "model": loaded.name,
            "modelVersion": loaded.version,
            "customers": sum(s["size"] for s in segments),
            "segments": segments,
        }

    def members(self, tenant: str, segment: int) -> list[int] | None:
        """Customer ids the served version assigned to `segment` at training time ([] for an
        unknown segment); None without a model (or one that kept no assignments)."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        return loaded.model.members(int(segment))
