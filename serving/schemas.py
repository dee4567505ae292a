"""Request and response models of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SegmentProfile(BaseModel):
    segmentId: int
    label: str
    size: int = Field(description="Customers in this segment in the training snapshot")
    share: float = Field(description="Share of all customers, 0..1")
    means: dict[str, float] = Field(description="Mean of each feature in this segment")


class SegmentsOverview(BaseModel):
    model: str
    modelVersion: str
    customers: int
    segments: list[SegmentProfile]


class CustomerSegment(BaseModel):
    customerId: int
    segmentId: int
    label: str
    modelVersion: str
    features: dict[str, float]


class Health(BaseModel):
    status: str
    model: str
    modelVersion: str | None
