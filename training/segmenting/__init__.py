"""Segmentation under PROTOCOLS §3: RFM frame, protocol space and scores, segment names."""

from training.segmenting.labels import segment_labels
from training.segmenting.protocol import (
    RFM_COLUMNS,
    bootstrap_ari,
    kmeans_baseline,
    protocol_space,
    rfm_frame,
    score_assignments,
)

__all__ = [
    "RFM_COLUMNS",
    "bootstrap_ari",
    "kmeans_baseline",
    "protocol_space",
    "rfm_frame",
    "score_assignments",
    "segment_labels",
]
