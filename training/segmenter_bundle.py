"""The registered segmenter as serving and scoring load it: pipeline, numpy twin, profiles,
training-time assignments (the `ModelSpec.load` of the segmenter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.models.segmenter import CustomerSegmenter, FastSegmenter
from training.specs import SEGMENTER

METRIC = SEGMENTER.metric
PLOT_ARTIFACT = "silhouette_by_k.png"
TRIALS_ARTIFACT = "trials.json"
PROFILES_ARTIFACT = "profiles.json"
ASSIGNMENTS_ARTIFACT = "assignments.json"


@dataclass(frozen=True)
class SegmenterBundle:
    """A registered segmenter as serving and scoring use it.

    `model` is the sklearn-backed `CustomerSegmenter` (batch work, re-scoring); `fast` its
    numpy twin for one row at a time; `profiles` the training-time segment profiles.
    """

    model: CustomerSegmenter
    fast: FastSegmenter
    profiles: list[dict[str, Any]]
    assignments: dict[int, list[Any]] | None = None  # segment -> customer ids (training time)

    def members(self, segment: int) -> list[Any] | None:
        """Customers assigned to `segment` at training time ([] for an unknown segment); None
        for a version logged before assignments were kept."""
        if self.assignments is None:
            return None
        return list(self.assignments.get(int(segment), []))

    def label(self, segment: int) -> str:
        return next((p["label"] for p in self.profiles if p["id"] == segment), str(segment))


def load_bundle(model_uri: str, run_id: str) -> SegmenterBundle:
    """The `ModelSpec.load` of the segmenter: pipeline (mlflow.sklearn) + profiles.json."""
    import mlflow.artifacts
    import mlflow.sklearn

    model = CustomerSegmenter.from_pipeline(mlflow.sklearn.load_model(model_uri))
    profiles = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILES_ARTIFACT}")["segments"]
    try:
        raw = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ASSIGNMENTS_ARTIFACT}")
    except Exception:  # an older version without assignments: members() answers None
        raw = None
    assignments = None
    if raw is not None:
        assignments = {}
        for cid, seg in zip(raw["customer_ids"], raw["segments"], strict=True):
            assignments.setdefault(int(seg), []).append(cid)
    return SegmenterBundle(model=model, fast=FastSegmenter(model), profiles=profiles,
                           assignments=assignments)  # fmt: skip
