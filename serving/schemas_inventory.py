"""Request and response models of the inventory, reorder and next-best-action routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from training.inventory import MAX_SERVICE_LEVEL, MIN_SERVICE_LEVEL

MAX_INVENTORY_PRODUCTS = 100
MAX_PROTECTION_WEEKS = 8  # lead time + review period: the forecaster's horizon (8 weeks)
MAX_REORDER_LIMIT = 100
MAX_ACTIONS = 50
# The reorder route plans the store's best sellers of the last 16 weeks, at most this many.
REORDER_CANDIDATES = 200
ASSOCIATE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

ServiceLevel = Field(
    0.95,
    ge=MIN_SERVICE_LEVEL,
    le=MAX_SERVICE_LEVEL,
    description=f"Cycle service level (chance of no stockout per cycle), "
    f"{MIN_SERVICE_LEVEL}..{MAX_SERVICE_LEVEL}",
)
LeadTime = Field(
    1, ge=1, le=MAX_PROTECTION_WEEKS, description="Weeks from ordering to the goods on the shelf"
)
ReviewPeriod = Field(
    1, ge=0, le=MAX_PROTECTION_WEEKS - 1, description="Weeks between two order reviews (0 = daily)"
)


class _PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storeId: str = Field(min_length=1, max_length=64, description="Store id")
    serviceLevel: float = ServiceLevel
    leadTimeWeeks: int = LeadTime
    reviewPeriodWeeks: int = ReviewPeriod

    @model_validator(mode="after")
    def _within_horizon(self) -> _PolicyParams:
        weeks = self.leadTimeWeeks + self.reviewPeriodWeeks
        if weeks > MAX_PROTECTION_WEEKS:
            raise ValueError(
                f"leadTimeWeeks + reviewPeriodWeeks = {weeks} exceeds the maximum of "
                f"{MAX_PROTECTION_WEEKS} weeks (the forecaster's horizon)"
            )
        return self


class InventoryRequest(_PolicyParams):
    """Body of `POST /api/v1/predictions/inventory/optimize`."""

    productIds: list[int] = Field(
        min_length=1,
        max_length=MAX_INVENTORY_PRODUCTS,
        description=f"1..{MAX_INVENTORY_PRODUCTS} product ids",
    )
    orderingCost: float | None = Field(
        None, ge=0, description="Cost of placing one order (currency); with holdingCostRate → EOQ"
    )
    holdingCostRate: float | None = Field(
        None,
        gt=0,
        le=5,
        description="Yearly holding cost as a fraction of the unit value (e.g. 0.25)",
    )
    onHand: dict[int, float] | None = Field(
        None,
        description="Units on hand per product id (default: the inventory table, else the "
        "documented assumption, flagged in onHandSource)",
    )

    @field_validator("productIds")
    @classmethod
    def _unique_positive(cls, v: list[int]) -> list[int]:
        bad = [p for p in v if p < 1]
        if bad:
            raise ValueError(f"productIds must be positive (bad: {bad})")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _consistent(self) -> InventoryRequest:
        if (self.orderingCost is None) != (self.holdingCostRate is None):
            raise ValueError("give both orderingCost and holdingCostRate (for the EOQ) or neither")
        if self.onHand:
            negative = sorted(p for p, units in self.onHand.items() if units < 0)
            if negative:
                raise ValueError(f"onHand must be >= 0 (negative for products {negative})")
            extra = sorted(set(self.onHand) - set(self.productIds))
            if extra:
                raise ValueError(f"onHand names products not in productIds: {extra}")
        return self


class ReorderRequest(_PolicyParams):
    """Body of `POST /api/v1/recommendations/reorder`."""

    limit: int = Field(
        20, ge=1, le=MAX_REORDER_LIMIT, description=f"Products to return, 1..{MAX_REORDER_LIMIT}"
    )


class PeriodDemand(BaseModel):
    weeks: int
    mean: float = Field(description="Expected units over the period")
    sigma: float = Field(description="Standard deviation of units over the period")


class ProductPolicy(BaseModel):
    productId: int
    demandSource: str = Field(description="The forecaster's model kind, or its fallback rule")
    fallback: bool = Field(description="True when demand is not the model's (too little history)")
    fallbackReason: str | None = None
    leadTimeDemand: PeriodDemand
    protectionDemand: PeriodDemand = Field(description="Demand over lead time + review period")
    safetyStock: float
    reorderPoint: float
    orderUpToLevel: float
    onHand: float
    onHandSource: str = Field(description="'request', 'inventory table: …' or 'assumed: …'")
    reorderNow: bool
    orderQuantity: int = Field(description="Units to order now (0 when above the reorder point)")
    eoq: float | None = Field(None, description="Economic order quantity (when costs are given)")
    unitValue: float | None = Field(None, description="Shelf price used as the unit value")
    weeksOfCover: float | None = Field(description="On hand / mean weekly demand")
    reason: str | None = Field(None, description="One line: why (not) reorder now")


class InventoryPlan(BaseModel):
    storeId: str
    model: str
    modelVersion: str
    modelKind: str
    originWeek: int = Field(description="Demand is forecast for the weeks after this one")
    serviceLevel: float
    z: float = Field(description="Standard normal quantile of the service level")
    leadTimeWeeks: int
    reviewPeriodWeeks: int
    policy: str = Field(description="How the numbers are computed")
    products: list[ProductPolicy]


class ReorderList(InventoryPlan):
    candidates: int = Field(description="Best sellers of the store that were planned")


# -- next best actions -----------------------------------------------------------------------


class Action(BaseModel):
    kind: Literal["contact_customer", "reorder", "push_promotion"]
    subject: str = Field(description="Customer id, product id or promotion id")
    reason: str = Field(description="Why, in one line")
    model: str | None = None
    modelVersion: str | None = None
    details: dict[str, Any] = {}


class ActionGroup(BaseModel):
    available: bool
    reason: str | None = Field(None, description="Why the group is empty or unavailable")
    model: str | None = None
    modelVersion: str | None = None
    actions: list[Action] = []


class NextBestActions(BaseModel):
    associateId: str
    storeId: str
    models: dict[str, str] = Field(description="Model key → '<registered name> v<version>'")
    customers: ActionGroup = Field(description="Customers of this store at churn risk")
    reorder: ActionGroup = Field(description="Products to reorder now")
    promotions: ActionGroup = Field(description="Promotions to push")
