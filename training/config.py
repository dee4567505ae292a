"""Typed training configs, loaded from configs/*.yaml (unknown keys are rejected)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.catalog import SEGMENTER_FEATURES

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SEGMENTER_CONFIG = CONFIG_DIR / "segmenter.yaml"


RFM_FEATURES = ("recency_days", "frequency", "monetary")


class SegmenterEnsemble(BaseModel):
    """Bagged K-Means (`training.segmenting.centroids`): `bags` bootstrap fits of `n_init`
    restarts each, aligned to the fit on all rows and averaged; 0 bags = plain K-Means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bags: int = Field(0, ge=0, description="Bootstrap K-Means fits averaged (0 = off)")
    n_init: int = Field(3, ge=1, description="K-Means restarts per bag")


class SegmenterTuneConfig(BaseModel):
    """Search space, budget and selection criterion of the segmenter's Ray Tune grid.

    Grid: feature set (name -> {feature: weight}) x k x PCA components (clipped to the set's
    feature count). Criterion: among trials with k >= min_k, smallest segment >=
    min_segment_share and bootstrap ARI >= min_ari (all on training rows), the highest
    held-back silhouette in the protocol space wins; see `training.segmenter.pick_best`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str = Field("retailpulse-segmenter", min_length=1, description="MLflow experiment")
    k_values: list[int] = Field([3, 4, 5, 6, 7, 8], min_length=1, description="K-Means k grid")
    pca_components: list[int] = Field([3, 5, 8], min_length=1, description="PCA dims grid")
    feature_sets: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"rfm": dict.fromkeys(RFM_FEATURES, 1.0)},
        min_length=1,
        description="Feature sets to try: name -> {feature: weight after standardising}",
    )
    min_k: int = Field(4, ge=2, description="Smallest k the criterion accepts")
    min_segment_share: float = Field(
        0.05, ge=0.0, lt=0.5, description="Smallest segment share the criterion accepts"
    )
    min_ari: float = Field(0.9, ge=-1.0, le=1.0, description="Bootstrap ARI the criterion needs")
    n_bootstrap: int = Field(20, ge=0, description="Bootstrap refits per trial for the ARI")
    max_trials: int | None = Field(
        None, ge=1, description="Trial budget; None runs the whole grid, else a seeded subset"
    )
    max_concurrent_trials: int = Field(2, ge=1, description="Trials running at once (1 CPU each)")
    seed: int = Field(42, description="random_state of PCA/K-Means, holdout split, trial subset")
    n_init: int = Field(10, ge=1, description="K-Means restarts per fit")
    ensemble: SegmenterEnsemble = Field(
        default_factory=SegmenterEnsemble, description="Bagged K-Means (bags 0 = off)"
    )
    soft_temperature: float = Field(
        0.45,
        ge=0.0,
        le=10.0,
        description="Soft refinement of the centroids: mixture variance as a fraction of the "
        "mean within-segment variance per dimension (0 = off)",
    )
    sample_size: int | None = Field(
        5000, ge=10, description="Rows used to compute the silhouette (None = all rows)"
    )
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Share of customers held back to score each trial"
    )

    @field_validator("k_values")
    @classmethod
    def _k_at_least_two(cls, v: list[int]) -> list[int]:
        bad = [k for k in v if k < 2]
        if bad:
            raise ValueError(f"every k must be >= 2, got {bad}")
        return sorted(set(v))

    @field_validator("pca_components")
    @classmethod
    def _pca_in_range(cls, v: list[int]) -> list[int]:
        n = len(SEGMENTER_FEATURES)
        bad = [c for c in v if not 1 <= c <= n]
        if bad:
            raise ValueError(f"every PCA component count must be in 1..{n}, got {bad}")
        return sorted(set(v))

    @field_validator("feature_sets")
    @classmethod
    def _feature_sets_known(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, weights in v.items():
            unknown = [f for f in weights if f not in SEGMENTER_FEATURES]
            if unknown:
                raise ValueError(f"feature set {name!r}: unknown feature(s) {unknown}")
            # Segment names are read off mean R, F and M, so every set keeps them.
            missing = [f for f in RFM_FEATURES if f not in weights]
            if missing:
                raise ValueError(f"feature set {name!r} must include {missing}")
            if any(w <= 0 for w in weights.values()):
                raise ValueError(f"feature set {name!r}: weights must be > 0")
        return v

    def centroid_options(self) -> dict[str, Any]:
        """`CustomerSegmenter` keyword arguments saying how its centroids are estimated."""
        return {
            "bags": self.ensemble.bags,
            "bag_n_init": self.ensemble.n_init,
            "temperature": self.soft_temperature,
        }

    def grid(self) -> list[dict[str, Any]]:
        """The trials to run: every (feature set, k, n_components), or a seeded subset."""
        combos = [
            {"features": name, "k": k, "n_components": c}
            for name, weights in self.feature_sets.items()
            for k in self.k_values
            for c in sorted({min(c, len(weights)) for c in self.pca_components})
        ]
        if self.max_trials is None or self.max_trials >= len(combos):
            return combos
        picked = random.Random(self.seed).sample(range(len(combos)), self.max_trials)
        return [combos[i] for i in sorted(picked)]


def load_segmenter_config(path: str | Path | None = None, **overrides: Any) -> SegmenterTuneConfig:
    """Read the YAML at `path` (default configs/segmenter.yaml), apply non-None `overrides`."""
    path = Path(path) if path is not None else SEGMENTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"segmenter config not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return SegmenterTuneConfig.model_validate(raw)
