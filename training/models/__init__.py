"""Pure model code (no Ray, no MLflow), shared by training and serving.

The segmenter's names are re-exported lazily: importing one model's module (a Ray Train worker
unpickling the recommender's training loop imports `training.models.recommender`) must not pay
for the segmenter's scikit-learn imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOG_FEATURES", "CustomerSegmenter", "segment_silhouette", "validate_features"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from training.models import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
