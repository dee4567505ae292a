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


class SegmenterTuneConfig(BaseModel):
    """Search space and budget of the segmenter's Ray Tune grid (k x PCA components)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str = Field("retailpulse-segmenter", min_length=1, description="MLflow experiment")
    k_values: list[int] = Field([3, 4, 5, 6, 7, 8], min_length=1, description="K-Means k grid")
    pca_components: list[int] = Field([3, 5, 8], min_length=1, description="PCA dims grid")
    max_trials: int | None = Field(
        None, ge=1, description="Trial budget; None runs the whole grid, else a seeded subset"
    )
    max_concurrent_trials: int = Field(2, ge=1, description="Trials running at once (1 CPU each)")
    seed: int = Field(42, description="random_state of PCA/K-Means, holdout split, trial subset")
    n_init: int = Field(10, ge=1, description="K-Means restarts per fit")
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

    def grid(self) -> list[dict[str, int]]:
        """The trials to run: every (k, n_components), or a seeded subset of max_trials."""
        combos = [{"k": k, "n_components": c} for k in self.k_values for c in self.pca_components]
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
