"""Pure model code (no Ray, no MLflow), shared by training and serving."""

from training.models.segmenter import (
    LOG_FEATURES,
    CustomerSegmenter,
    segment_silhouette,
    validate_features,
)

__all__ = ["LOG_FEATURES", "CustomerSegmenter", "segment_silhouette", "validate_features"]
