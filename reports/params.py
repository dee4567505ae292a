"""Template parameters (pydantic): the period, stores and each template's own options.

JSON names are the API's: `from`, `to`, `lastDays`, `stores`, `topN`, … Periods are UTC
calendar days, both ends included. Left out, a period defaults to all the tenant's data (the
alert digest: the last 7 days up to today); `lastDays` gives a rolling window ending at `to`
or at the newest data, which is what a schedule wants ("every Monday, the last 7 days").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

EARLIEST, LATEST = date(1970, 1, 1), date(2100, 12, 31)


def _str_id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


StoreId = Annotated[
    str,
    BeforeValidator(_str_id),
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
]


class PeriodParams(BaseModel):
    """A period of UTC days (`from`..`to` or the last `lastDays` days)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date | None = Field(
        None, alias="from", description="First day, inclusive (default: the first day with data)"
    )
    end: date | None = Field(
        None, alias="to", description="Last day, inclusive (default: the newest day with data)"
    )
    last_days: int | None = Field(
        None,
        alias="lastDays",
        ge=1,
        le=3660,
        description="Instead of `from`: this many days ending at `to` (or the newest data)",
    )

    @field_validator("start", "end")
    @classmethod
    def _plausible(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError(f"must be between {EARLIEST} and {LATEST}")
        return value

    @field_validator("end")
    @classmethod
    def _ordered(cls, value: date | None, info: Any) -> date | None:
        start = info.data.get("start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"must be on or after 'from' ({start})")
        return value

    @field_validator("last_days")
    @classmethod
    def _not_both(cls, value: int | None, info: Any) -> int | None:
        if value is not None and info.data.get("start") is not None:
            raise ValueError("give either 'from' or 'lastDays', not both")
        return value

    def public(self) -> dict[str, Any]:
        """The parameters as the API names them, for the document and the database."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StoreParams(PeriodParams):
    stores: list[StoreId] | None = Field(
        None, min_length=1, max_length=1000, description="Only these store ids (default: all)"
    )


@dataclass(frozen=True)
class Period:
    """Resolved period: UTC days `start`..`end`, both included."""

    start: date
    end: date

    @property
    def lower(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def upper(self) -> datetime:
        """Exclusive upper bound: midnight after `end`."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def resolve_period(params: PeriodParams, span: tuple[date, date] | None) -> Period | None:
    """The period the parameters mean, given the data's span (first, last day); None when
    the parameters leave an end open and there is no data to close it."""
    end = params.end or (span[1] if span else None)
    if end is None:
        return None
    if params.last_days is not None:
        return Period(end - timedelta(days=params.last_days - 1), end)
    start = params.start or (span[0] if span else None)
    if start is None:
        return None
    if start > end:  # `from` after the newest data with `to` left open
        return Period(start, start)
    return Period(start, end)


class SalesSummaryParams(StoreParams):
    top_n: int = Field(10, alias="topN", ge=1, le=100, description="Top products listed")


class StoreComparisonParams(StoreParams):
    rank_by: Literal["revenue", "baskets", "customers", "avg_basket", "units"] = Field(
        "revenue", alias="rankBy", description="The KPI stores are ranked by"
    )


class ForecastAccuracyParams(StoreParams):
    """The period selects predicted weeks by their start day."""

    version: int | None = Field(
        None, ge=1, description="Forecaster version whose predictions are checked (default: latest)"
    )


class SegmentProfileParams(StoreParams):
    source: Literal["auto", "segmenter", "rfm"] = Field(
        "auto",
        description="segmenter: the segmenter's batch scores; rfm: recency/frequency tertiles "
        "of the period's baskets; auto: the segmenter's when scored, else rfm",
    )


class AlertDigestParams(PeriodParams):
    """The period defaults to the last 7 days up to today."""

    severities: list[Literal["info", "warning", "critical"]] | None = Field(
        None, min_length=1, description="Only these severities (default: all)"
    )


def scope_to_stores(params: PeriodParams, stores: frozenset[str] | None) -> PeriodParams:
    """Parameters limited to the stores a caller may see (None: every store).

    A store manager or sales associate who names no stores gets their own; naming a store
    outside them is 403. Templates without a store filter (the alert digest) are unchanged.
    """
    if stores is None or not isinstance(params, StoreParams):
        return params
    if params.stores is None:
        return params.model_copy(update={"stores": sorted(stores)})
    outside = sorted(set(params.stores) - stores)
    if outside:
        from core.errors import Forbidden

        raise Forbidden(
            f"params.stores: you may not report on store(s) {', '.join(outside)}",
            details={"field": "params.stores", "stores": outside},
        )
    return params
