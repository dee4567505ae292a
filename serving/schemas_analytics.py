"""Request and response models of the analytics routes (serving/routers/analytics.py)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.values import Text

EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def _business_day(value: date) -> date:
    # the routes step back from a day by whole periods: a day near date.min overflows
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValueError(f"must be from {EARLIEST_DAY} to {LATEST_DAY}")
    return value


BusinessDate = Annotated[date, AfterValidator(_business_day)]
"""A business day a request may name (1900-01-01 to 2199-12-31)."""


class Totals(BaseModel):
    revenue: float
    units: int
    baskets: int
    discounts: float
    avgBasket: float


class RealtimeBucket(BaseModel):
    key: str = Field(description="Business-local hour (0-23) or store id")
    revenue: float
    units: int
    baskets: int
    previousRevenue: float
    previousBaskets: int
    revenueChange: float | None = Field(description="vs the same weekday a week earlier")


class RealtimeSales(BaseModel):
    asOf: date
    comparedWith: date
    by: Literal["hour", "store"]
    untilHour: int | None
    totals: Totals
    previousTotals: Totals
    change: dict[str, float | None]
    breakdown: list[RealtimeBucket]


class ProductWeek(BaseModel):
    week: date = Field(description="Monday of the business week")
    revenue: float
    units: int
    lines: int
    discounts: float


class ProductTrend(BaseModel):
    unitsSlopePerWeek: float | None = Field(
        description="Least-squares slope of weekly units, as a share of the mean week"
    )
    last4VsPrevious4: float | None


class ProductPerformance(BaseModel):
    productId: int
    product: dict[str, str | None]
    startWeek: date
    endWeek: date
    source: str
    units: int
    revenue: float
    discounts: float
    lines: int
    avgPrice: float | None
    weeksWithSales: int
    unitsPerWeek: float
    margin: float | None
    marginNote: str
    turnover: float | None
    onHand: int | None
    turnoverNote: str
    trend: ProductTrend
    weeks: list[ProductWeek]


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    pages: int


class StoreRow(BaseModel):
    storeId: str
    revenue: float
    units: int
    baskets: int
    discounts: float
    basketSize: float
    previousRevenue: float | None
    growth: float | None = Field(description="Revenue change vs the previous period (share)")


class StoreComparison(BaseModel):
    startDate: date
    endDate: date
    previousStartDate: date
    previousEndDate: date
    sort: str
    order: str
    pagination: Pagination
    stores: list[StoreRow]


class TrendPoint(BaseModel):
    period: date
    revenue: float
    units: int
    baskets: int | None = Field(description="null with a department/category filter")
    revenueMovingAvg: float | None
    revenueChange: float | None = Field(
        description="vs the same weekday a week earlier (daily) or the previous week (weekly)"
    )


class Trends(BaseModel):
    startDate: date
    endDate: date
    interval: Literal["day", "week"]
    window: int
    department: str | None
    category: str | None
    source: str
    points: list[TrendPoint]


class BasketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    startDate: BusinessDate | None = Field(None, description="Default: 27 days before endDate")
    endDate: BusinessDate | None = Field(None, description="Default: the tenant's latest sale day")
    storeIds: list[Text] | None = Field(None, max_length=1000)
    level: Literal["category", "department"] = "category"
    minSupport: float = Field(0.01, gt=0, le=1)
    minConfidence: float = Field(0.1, ge=0, le=1)
    maxRules: int = Field(20, ge=1, le=500)

    @model_validator(mode="after")
    def _ordered(self) -> BasketRequest:
        if self.startDate and self.endDate and self.startDate > self.endDate:
            raise ValueError("startDate must not be after endDate")
        return self


class RuleItem(BaseModel):
    department: str
    category: str | None
    baskets: int


class Rule(BaseModel):
    antecedent: RuleItem
    consequent: RuleItem
    baskets: int
    support: float
    confidence: float
    lift: float


class BasketAnalysis(BaseModel):
    startDate: date
    endDate: date
    level: str
    baskets: int
    minSupport: float
    minConfidence: float
    frequentItems: int
    pairsCounted: int
    rules: list[Rule]
