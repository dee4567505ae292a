"""Churn: features, labels, the churn_cj protocol and its config (configs/churn.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.models.churn import ChurnParams

CHURN_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "churn.yaml"


class ChurnSearchSpace(BaseModel):
    """Ray Tune search space: each key is a list of values to sample from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_rounds: list[int] = Field([200, 400, 800], min_length=1)
    learning_rate: list[float] = Field([0.01, 0.02, 0.05], min_length=1)
    num_leaves: list[int] = Field([3, 4, 7, 15], min_length=1)
    min_data_in_leaf: list[int] = Field([20, 40, 80], min_length=1)
    feature_fraction: list[float] = Field([0.3, 0.5, 0.8], min_length=1)
    lambda_l2: list[float] = Field([0.0, 5.0], min_length=1)


class ChurnConfig(BaseModel):
    """Model hyperparameters, protocol settings and the Tune search of the churn model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ChurnParams = ChurnParams()
    splits: int = Field(20, ge=1, description="protocol repeats (seeds 0..splits-1)")
    test_size: float = Field(0.25, gt=0.0, lt=1.0)
    clean_weeks: int = Field(10, ge=1, description="clean = active in the last N feature weeks")
    search: ChurnSearchSpace = ChurnSearchSpace()
    tune_samples: int = Field(24, ge=1, description="Ray Tune trials")
    tune_folds: int = Field(5, ge=2, description="inner CV folds on split 0's training part")


def load_churn_config(path: str | Path | None = None, **overrides: Any) -> ChurnConfig:
    """Read the YAML at `path` (default configs/churn.yaml), apply non-None `overrides`."""
    path = Path(path) if path is not None else CHURN_CONFIG
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return ChurnConfig.model_validate(raw)
