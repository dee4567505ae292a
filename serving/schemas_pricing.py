"""Request and response models of the pricing and promotion routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CATEGORIES = 100
MAX_PRODUCTS = 500
MAX_CAMPAIGNS = 50
MAX_CHANGE_PCT = 50.0
MAX_PROMOTIONS = 50


def _sized(name: str, values: list | None, limit: int) -> list | None:
    if values is None:
        return None
    if not 1 <= len(values) <= limit:
        raise ValueError(f"{name} must hold 1..{limit} items (got {len(values)})")
    return list(dict.fromkeys(values))


def _positive(name: str, ids: list[int] | None) -> list[int] | None:
    bad = [i for i in ids or [] if i < 1]
    if bad:
        raise ValueError(f"{name} must be positive ids (bad: {bad[:10]})")
    return ids


# -- pricing ---------------------------------------------------------------------------------


class ElasticityRequest(BaseModel):
    """Body of `POST /api/v1/predictions/pricing/elasticity`: categories and/or products."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(
        None, description=f"Product categories (1..{MAX_CATEGORIES})"
    )
    productIds: list[int] | None = Field(
        None, description=f"Products whose categories to report (1..{MAX_PRODUCTS})"
    )

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str] | None) -> list[str] | None:
        return _sized("categories", v, MAX_CATEGORIES)

    @field_validator("productIds")
    @classmethod
    def _products(cls, v: list[int] | None) -> list[int] | None:
        return _positive("productIds", _sized("productIds", v, MAX_PRODUCTS))

    @model_validator(mode="after")
    def _some(self) -> ElasticityRequest:
        if self.categories is None and self.productIds is None:
            raise ValueError("give categories, productIds or both")
        return self


class CategoryElasticity(BaseModel):
    category: str
    department: str | None = None
    status: Literal["estimated", "insufficient variation"]
    elasticity: float | None = Field(description="% change in units per 1% change in shelf price")
    ciLow: float | None
    ciHigh: float | None
    standardError: float | None = Field(description="Clustered by product")
    pValue: float | None
    significant: bool
    nObservations: int = Field(description="Store x product x week rows used")
    nProducts: int
    nPriceChanges: int = Field(
        description="Week-to-week shelf-price moves within a store x product"
    )
    r2Within: float | None = Field(description="R² of the within (fixed-effects) regression")
    productIds: list[int] = Field(default_factory=list, description="Requested products in it")


class ElasticityAnswer(BaseModel):
    model: str
    modelVersion: str
    window: dict[str, Any] = Field(description="Weeks, rows and the estimator's settings")
    categories: list[CategoryElasticity]


class PricingRecommendationRequest(BaseModel):
    """Body of `POST /api/v1/recommendations/pricing`."""

    model_config = ConfigDict(extra="forbid")

    productIds: list[int] | None = Field(None, description=f"1..{MAX_PRODUCTS} products")
    category: str | None = Field(None, description="Every product of this category (best sellers)")
    objective: Literal["revenue", "units"] = "revenue"
    maxChangePct: float = Field(
        10.0, gt=0, le=MAX_CHANGE_PCT, description=f"Largest move, % (0 < x <= {MAX_CHANGE_PCT})"
    )
    limit: int = Field(50, ge=1, le=MAX_PRODUCTS, description="Products of a category, at most")

    @field_validator("productIds")
    @classmethod
    def _products(cls, v: list[int] | None) -> list[int] | None:
        return _positive("productIds", _sized("productIds", v, MAX_PRODUCTS))

    @model_validator(mode="after")
    def _one(self) -> PricingRecommendationRequest:
        if (self.productIds is None) == (self.category is None):
            raise ValueError("give exactly one of productIds or category")
        return self


class PriceSuggestion(BaseModel):
    productId: int
    category: str
    action: Literal["keep price", "raise price", "cut price"]
    changePct: float
    currentPrice: float | None = Field(description="Median shelf price of its last 4 sale weeks")
    suggestedPrice: float | None
    elasticity: float | None
    ciLow: float | None
    ciHigh: float | None
    significant: bool
    expectedUnitsChangePct: float | None
    expectedUnitsChangePctRange: list[float] | None = Field(description="At the CI's ends")
    expectedRevenueChangePct: float | None
    expectedRevenueChangePctRange: list[float] | None
    reason: str


class PricingRecommendations(BaseModel):
    model: str
    modelVersion: str
    objective: str
    maxChangePct: float
    recommendations: list[PriceSuggestion]


# -- promotions ------------------------------------------------------------------------------


class ImpactRequest(BaseModel):
    """Body of `POST /api/v1/predictions/promotions/impact`: one campaign or a list."""

    model_config = ConfigDict(extra="forbid")

    campaignId: int | None = Field(None, ge=1)
    campaignIds: list[int] | None = Field(None, description=f"1..{MAX_CAMPAIGNS} campaigns")

    @field_validator("campaignIds")
    @classmethod
    def _ids(cls, v: list[int] | None) -> list[int] | None:
        return _positive("campaignIds", _sized("campaignIds", v, MAX_CAMPAIGNS))

    @model_validator(mode="after")
    def _one(self) -> ImpactRequest:
        if (self.campaignId is None) == (self.campaignIds is None):
            raise ValueError("give exactly one of campaignId or campaignIds")
        return self

    @property
    def ids(self) -> list[int]:
        return [self.campaignId] if self.campaignId is not None else list(self.campaignIds or [])


class Uplift(BaseModel):
    perHouseholdWeek: float = Field(description="Matched DiD per household and week")
    ciLow: float
    ciHigh: float
    perHousehold: float | None = Field(None, description="Over the campaign window")
    total: float | None = Field(None, description="Over every matched treated household")
    naivePerHouseholdWeek: float = Field(description="Unmatched DiD, for comparison")


class BalanceRow(BaseModel):
    feature: str
    smdBefore: float
    smdAfter: float


class Balance(BaseModel):
    features: list[BalanceRow]
    maxAbsSmdBefore: float
    maxAbsSmdAfter: float


class Placebo(BaseModel):
    perHouseholdWeek: float
    ciLow: float
    ciHigh: float
    coversZero: bool


class CampaignImpact(BaseModel):
    model_config = ConfigDict(extra="allow")

    campaignId: int
    campaignType: str | None = None
    status: str = Field(description="'estimated', or why not (pre-period, households, window)")
    reason: str | None = None
    start: str
    end: str
    windowStart: str
    windowEnd: str
    windowDays: int
    preStart: str | None = None
    preDays: int
    exposedHouseholds: int
    coupons: int
    matched: dict[str, int] | None = None
    spend: Uplift | None = None
    baskets: Uplift | None = None
    balance: Balance | None = None
    placebo: Placebo | None = None


class PromotionImpacts(BaseModel):
    model: str
    modelVersion: str
    campaigns: list[CampaignImpact]


class PromotionToRun(BaseModel):
    model_config = ConfigDict(extra="allow")

    campaignId: int
    campaignType: str | None
    scope: Literal["store", "all stores"]
    storeId: str | None = None
    recommendation: str
    upliftPerHousehold: float | None
    ciLow: float | None
    ciHigh: float | None
    upliftPerHouseholdWeek: float | None
    significant: bool
    matchedHouseholds: int
    coupons: int | None
    windowDays: int
    maxAbsSmdAfter: float
    reason: str


class PromotionRecommendations(BaseModel):
    model: str
    modelVersion: str
    storeId: str | None
    promotions: list[PromotionToRun]
