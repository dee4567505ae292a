"""Typed config of the demand forecaster, loaded from configs/forecaster.yaml (extra keys rejected).

The YAML holds the defaults plus named `profiles` (e.g. `quick`) that override any subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.profiles import deep_merge, read_profiled

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
FORECASTER_CONFIG = CONFIG_DIR / "forecaster.yaml"
MAX_LOOKBACK = 16  # the online store holds lags 1..16
PAST_COVARIATES = ("display", "mailer", "discount_depth", "shelf_price")
FUTURE_COVARIATES = ("display", "mailer")
STATIC_FEATURES = ("department", "product_category", "brand", "store_id")


class LSTMConfig(BaseModel):
    """The LSTM's architecture, inputs and training budget."""

    model_config = ConfigDict(extra="forbid")

    lookback: int = Field(16, ge=4, le=MAX_LOOKBACK, description="weeks of history per sample")
    horizon: int = Field(8, ge=1, le=16, description="weeks forecast from one origin")
    hidden1: int = Field(128, ge=4, description="units of the first LSTM")
    hidden2: int = Field(64, ge=4, description="units of the second LSTM")
    dense: int = Field(32, ge=4, description="units of the ReLU layer before the output")
    dropout: float = Field(0.2, ge=0.0, lt=0.9, description="after each LSTM")
    embedding_dim: int = Field(8, ge=1, description="max size of each static embedding")
    train_series: int = Field(
        500,
        ge=1,
        description="top series by train units the global model trains on (>= n_series; only "
        "the top n_series are forecast and scored)",
    )
    covariates: list[str] = Field(
        ["display", "mailer", "discount_depth"], description="past per-week inputs"
    )
    future_covariates: list[str] = Field(
        ["display", "mailer"], description="inputs known for the forecast weeks (promotions plan)"
    )
    calendar: bool = Field(True, description="holiday count and week-of-year inputs")
    static: list[str] = Field(
        ["department", "product_category", "store_id"], description="embedded series attributes"
    )
    loss: Literal["pinball", "pinball_p50"] = Field(
        "pinball", description="pinball over p10/p50/p90; _p50 doubles the median's weight"
    )
    lr: float = Field(2e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(256, ge=8)
    max_epochs: int = Field(40, ge=1)
    patience: int = Field(6, ge=1, description="early stopping on the validation window")
    val_weeks: int = Field(8, ge=1, description="last weeks before train_end held for validation")
    refit: bool = Field(True, description="retrain on all weeks for the early-stopped epochs")
    n_seeds: int = Field(1, ge=1, description="ensemble members (quantiles averaged)")
    seed: int = 42
    num_threads: int = Field(1, ge=1, description="torch intra-op threads")
    fused_adam: bool = Field(True, description="Adam(fused=True) where the build supports it")

    @field_validator("covariates")
    @classmethod
    def _known_past(cls, v: list[str]) -> list[str]:
        return _known(v, PAST_COVARIATES, "past covariates")

    @field_validator("future_covariates")
    @classmethod
    def _known_future(cls, v: list[str]) -> list[str]:
        return _known(v, FUTURE_COVARIATES, "future covariates")

    @field_validator("static")
    @classmethod
    def _known_static(cls, v: list[str]) -> list[str]:
        return _known(v, STATIC_FEATURES, "static features")


def _known(values: list[str], allowed: Sequence[str], what: str) -> list[str]:
    """`values` unchanged, or ValueError naming the unknown ones and the choices."""
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise ValueError(f"unknown {what} {bad}; choose from {allowed}")
    return values


class TFTConfig(BaseModel):
    """The pytorch-forecasting challenger's size and budget."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(16, ge=4)
    attention_head_size: int = Field(2, ge=1)
    hidden_continuous_size: int = Field(8, ge=2)
    dropout: float = Field(0.1, ge=0.0, lt=0.9)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(128, ge=8)
    max_epochs: int = Field(8, ge=1)
    limit_train_batches: int | None = Field(None, ge=1, description="batches per epoch cap")
    seed: int = 42


class TuneConfig(BaseModel):
    """Ray Tune + ASHA search over the LSTM (values are lists to sample from)."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(12, ge=1, description="trials")
    max_concurrent_trials: int = Field(2, ge=1)
    max_epochs: int = Field(30, ge=1, description="ASHA max_t")
    grace_period: int = Field(4, ge=1, description="ASHA grace period (epochs)")
    reduction_factor: int = Field(3, ge=2)
    cpus_per_trial: float = Field(1.0, gt=0)
    lr: list[float] = Field([5e-4, 1e-3, 2e-3, 4e-3], min_length=1)
    hidden1: list[int] = Field([64, 128], min_length=1)
    hidden2: list[int] = Field([32, 64], min_length=1)
    lookback: list[int] = Field([8, 12, 16], min_length=1)
    dropout: list[float] = Field([0.1, 0.2, 0.3], min_length=1)
    loss: list[str] = Field(["pinball", "pinball_p50"], min_length=1)

    @field_validator("lookback")
    @classmethod
    def _lookback_fits(cls, v: list[int]) -> list[int]:
        if any(not 4 <= x <= MAX_LOOKBACK for x in v):
            raise ValueError(f"every lookback must be in 4..{MAX_LOOKBACK}, got {v}")
        return v

    def search_space(self) -> dict[str, list[Any]]:
        """Parameter name -> candidate values (each trial draws one of each)."""
        return {
            "lr": self.lr,
            "hidden1": self.hidden1,
            "hidden2": self.hidden2,
            "lookback": self.lookback,
            "dropout": self.dropout,
            "loss": self.loss,
        }


class ForecasterConfig(BaseModel):
    """Everything configs/forecaster.yaml sets (after applying a profile)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str = Field("retailpulse-forecaster", min_length=1, description="MLflow experiment")
    n_series: int = Field(500, ge=1, description="top (store, product) series by train units")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP when > 1)")
    lstm: LSTMConfig = LSTMConfig()
    tft: TFTConfig = TFTConfig()
    tune: TuneConfig = TuneConfig()

    @model_validator(mode="after")
    def _trains_on_the_scored_series(self) -> ForecasterConfig:
        if self.lstm.train_series < self.n_series:
            raise ValueError(
                f"lstm.train_series ({self.lstm.train_series}) must be >= n_series "
                f"({self.n_series}): the model trains on every series it forecasts"
            )
        return self


def load_forecaster_config(
    path: str | Path | None = None, *, profile: str | None = None, **overrides: Any
) -> ForecasterConfig:
    """Read configs/forecaster.yaml (or `path`), apply `profile` then non-None `overrides`."""
    path = Path(path) if path is not None else FORECASTER_CONFIG
    raw = read_profiled(path, profile, "forecaster")
    raw = deep_merge(raw, {k: v for k, v in overrides.items() if v is not None})
    return ForecasterConfig.model_validate(raw)
