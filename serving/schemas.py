"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class SegmentProfile(BaseModel):
    segmentId: int
    label: str
    size: int = Field(description="Customers in this segment in the training snapshot")
    share: float = Field(description="Share of all customers, 0..1")
    means: dict[str, float] = Field(description="Mean of each feature in this segment")


class SegmentsOverview(BaseModel):
    model: str = Field(description="Registered model name (<tenant>.segmenter)")
    modelVersion: str
    customers: int
    segments: list[SegmentProfile]


class CustomerSegment(BaseModel):
    customerId: int
    segmentId: int
    label: str
    modelVersion: str
    features: dict[str, float]


class ModelHealth(BaseModel):
    model: str = Field(description="Model key, e.g. segmenter")
    registeredName: str | None = Field(None, description="Registry name, <tenant>.<model>")
    version: str | None = Field(description="Served registry version; null when untrained")
    ready: bool
    detail: str | None = None


class Health(BaseModel):
    status: str = Field(description="ok when every deployed model has a version, else degraded")
    tenant: str
    models: list[ModelHealth]


ALLOWED_QUANTILES = (0.1, 0.5, 0.9)
MAX_HORIZON = 8
MAX_PRODUCTS = 100


class ForecastRequest(BaseModel):
    """Body of `POST /api/v1/predictions/demand/forecast`."""

    model_config = {"extra": "forbid"}

    storeId: str = Field(min_length=1, max_length=64, description="Store id")
    productIds: list[int] = Field(
        min_length=1, max_length=MAX_PRODUCTS, description=f"1..{MAX_PRODUCTS} product ids"
    )
    horizon: int = Field(
        4, ge=1, le=MAX_HORIZON, description=f"Weeks ahead, 1..{MAX_HORIZON} (the model's limit)"
    )
    quantiles: list[float] | None = Field(
        None, description="Subset of [0.1, 0.5, 0.9] (default: all three)"
    )

    @field_validator("quantiles")
    @classmethod
    def _known_quantiles(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        bad = [q for q in v if q not in ALLOWED_QUANTILES]
        if bad or not v:
            raise ValueError(
                f"quantiles must be a non-empty subset of {list(ALLOWED_QUANTILES)}, got {v}"
            )
        return sorted(set(v))

    @field_validator("productIds")
    @classmethod
    def _unique_positive(cls, v: list[int]) -> list[int]:
        bad = [p for p in v if p < 1]
        if bad:
            raise ValueError(f"product ids must be positive, got {bad}")
        return list(dict.fromkeys(v))


class WeekForecast(BaseModel):
    week: int = Field(description="Retailer week number forecast")
    weekStart: str = Field(description="First day of that week (ISO date)")
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None


class ProductForecast(BaseModel):
    productId: int
    method: str = Field(description="model, or the fallback used for this product")
    fallback: bool = Field(description="True when the answer is not the model's")
    reason: str | None = Field(None, description="Why a fallback answered")
    featureTimestamp: str | None = Field(
        description="Event time of the newest online feature row used"
    )
    source: Literal["live", "batch"] = Field(
        "live",
        description="live: computed for this request; batch: the served version's batch score "
        "(`retailpulse score forecasts`), used only while its inputs are still current",
    )
    scoredAt: str | None = Field(None, description="When the batch score was computed (batch)")
    weeks: list[WeekForecast]


class DemandForecast(BaseModel):
    storeId: str
    model: str = Field(description="Registered model name (<tenant>.forecaster)")
    modelVersion: str
    modelKind: str = Field(description="Which forecaster the version holds (lstm, lightgbm, …)")
    originWeek: int = Field(description="Last week of history the forecasts start from")
    horizon: int
    quantiles: list[float]
    forecasts: list[ProductForecast]
