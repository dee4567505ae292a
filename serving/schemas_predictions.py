"""Request and response models of the recommendation, anomaly and churn routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serving.schemas_analytics import BusinessDate

MAX_RECOMMENDATIONS = 100
MAX_EXCLUDE_DAYS = 365
MAX_ANOMALY_DAYS = 92  # one quarter: a detection request scores at most stores x 92 days
MAX_ANOMALY_STORES = 500
MAX_CHURN_CUSTOMERS = 1000


# -- recommendations -------------------------------------------------------------------------


class RecommendedProduct(BaseModel):
    productId: int
    rank: int = Field(description="1 = best")
    score: float = Field(description="Blended score of the served model (higher = better)")
    reason: str = Field(description="Why this product, in one line")
    department: str | None = None
    productCategory: str | None = None
    brand: str | None = None


class RecommendationRules(BaseModel):
    usualStore: str | None = Field(description="The store of most of the customer's baskets")
    assortmentRule: bool = Field(
        description="True when products not sold at the usual store were left out"
    )
    maxPerCategory: int | None = Field(description="Diversity cap per product category")
    dropped: dict[str, int] = Field(description="Candidates each rule removed")


class ProductRecommendations(BaseModel):
    customerId: int
    model: str | None = Field(description="Registered model name (<tenant>.recommender)")
    modelVersion: str | None
    fallback: bool = Field(description="True when the answer is not the model's (no history)")
    fallbackReason: str | None = None
    excludedPurchasedDays: int | None = Field(
        description="Products bought in this many days before the data's newest day were left out"
    )
    asOf: str | None = Field(None, description="The data's newest day (ISO date)")
    rules: RecommendationRules | None = Field(
        None, description="The business rules applied to the model's candidates"
    )
    recommendations: list[RecommendedProduct]


# -- anomalies -------------------------------------------------------------------------------


class AnomalyRequest(BaseModel):
    """Body of `POST /api/v1/predictions/anomalies/detect`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    storeIds: list[str] | None = Field(
        None,
        max_length=MAX_ANOMALY_STORES,
        description=f"Stores to scan (default: every store; at most {MAX_ANOMALY_STORES})",
    )
    from_: BusinessDate = Field(alias="from", description="First business day to scan (ISO date)")
    to: BusinessDate = Field(description="Last business day to scan, inclusive (ISO date)")

    @field_validator("storeIds")
    @classmethod
    def _non_empty_ids(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        bad = [s for s in v if not s or len(s) > 64]
        if bad or not v:
            raise ValueError("storeIds must be a non-empty list of ids of 1..64 characters")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _range(self) -> AnomalyRequest:
        if self.to < self.from_:
            raise ValueError(f"'to' ({self.to}) is before 'from' ({self.from_})")
        days = (self.to - self.from_).days + 1
        if days > MAX_ANOMALY_DAYS:
            raise ValueError(
                f"date range of {days} days exceeds the maximum of {MAX_ANOMALY_DAYS} days "
                "(MAX_ANOMALY_DAYS): split the request"
            )
        return self


class FlaggedDay(BaseModel):
    storeId: str
    date: str = Field(description="Business day (ISO date; a day runs 05:00 to 05:00 UTC)")
    sales: float = Field(description="Observed sales that day")
    expected: float = Field(description="What the detector expected")
    score: float = Field(description="Ensemble anomaly score, 0..1 (higher = more anomalous)")
    direction: Literal["spike", "drop"]
    detectors: list[str] = Field(description="The detectors that voted for this day")


class AnomalyReport(BaseModel):
    model: str
    modelVersion: str
    from_: str = Field(serialization_alias="from")
    to: str
    storesScanned: int
    daysScanned: int
    skipped: dict[str, int] = Field(description="Store-days not scored, by reason")
    anomalies: list[FlaggedDay]


# -- churn -----------------------------------------------------------------------------------


class ChurnRequest(BaseModel):
    """Body of `POST /api/v1/predictions/churn/analyze`: customer ids or one segment."""

    model_config = ConfigDict(extra="forbid")

    customerIds: list[int] | None = Field(
        None, max_length=MAX_CHURN_CUSTOMERS, description=f"1..{MAX_CHURN_CUSTOMERS} customers"
    )
    segmentId: int | None = Field(None, ge=0, description="Every customer of this segment")

    @field_validator("customerIds")
    @classmethod
    def _positive_ids(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        bad = [c for c in v if c < 1]
        if bad or not v:
            raise ValueError(f"customerIds must be a non-empty list of positive ids (bad: {bad})")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _one_of(self) -> ChurnRequest:
        if (self.customerIds is None) == (self.segmentId is None):
            raise ValueError("give exactly one of customerIds or segmentId")
        return self


class ChurnDriver(BaseModel):
    feature: str
    value: float = Field(description="The customer's value of the feature")
    contribution: float = Field(description="SHAP contribution to the churn log-odds")
    description: str | None = None


class CustomerChurn(BaseModel):
    customerId: int
    probability: float = Field(description="Calibrated probability of churning, 0..1")
    riskBand: Literal["low", "medium", "high"]
    drivers: list[ChurnDriver] = Field(description="Top 3 features pushing toward churn")


class ChurnAnalysis(BaseModel):
    model: str
    modelVersion: str
    riskBands: dict[str, str] = Field(description="Probability range of each band")
    featureTimestamp: str | None = Field(None, description="As-of time of the features used")
    segmentId: int | None = None
    customers: list[CustomerChurn]
