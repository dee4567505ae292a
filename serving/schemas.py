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
