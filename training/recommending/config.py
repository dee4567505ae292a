"""The recommender's configuration (configs/recommender.yaml): NCF, its Tune search, the hybrid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from training.models.recommender import NCFConfig
from training.profiles import read_profiled
from training.recommending.blend import HybridConfig

CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "recommender.yaml"


class TuneSpace(BaseModel):
    """Ray Tune + ASHA search over NeuMF (lists to sample from)."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(4, ge=1)
    max_concurrent_trials: int = Field(2, ge=1)
    max_epochs: int = Field(4, ge=1, description="ASHA max_t")
    grace_period: int = Field(1, ge=1)
    reduction_factor: int = Field(2, ge=2)
    cpus_per_trial: float = Field(1.0, gt=0)
    lr: list[float] = Field([1e-3, 2e-3, 4e-3], min_length=1)
    n_neg: list[int] = Field([2, 4], min_length=1)
    weight_decay: list[float] = Field([0.0, 1e-6], min_length=1)
    pos_weight: list[str] = Field(["none", "log"], min_length=1)

    def search_space(self) -> dict[str, list[Any]]:
        """Parameter name -> candidate values."""
        return {k: getattr(self, k) for k in ("lr", "n_neg", "weight_decay", "pos_weight")}


class RecommenderConfig(BaseModel):
    """Everything configs/recommender.yaml sets (after applying a profile)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str = Field("retailpulse-recommender", min_length=1)
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP when > 1)")
    ncf: NCFConfig = NCFConfig()
    tune: TuneSpace = TuneSpace()
    hybrid: HybridConfig = HybridConfig()


def load_recommender_config(
    path: str | Path | None = None, *, profile: str | None = None
) -> RecommenderConfig:
    """Read configs/recommender.yaml (or `path`) and apply `profile`; unknown keys raise."""
    path = Path(path) if path is not None else CONFIG_PATH
    return RecommenderConfig.model_validate(read_profiled(path, profile, "recommender"))
