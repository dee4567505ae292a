"""Names shared by the Feast definitions, the feature clients and the models that read them."""

from __future__ import annotations

ENTITY = "customer"
JOIN_KEY = "customer_id"
SOURCE = "customer_rfm_source"
FEATURE_VIEW = "customer_rfm_fv"
FEATURE_SERVICE = "segmenter_v1"
RFM_TABLE = "customer_rfm"
TIMESTAMP_FIELD = "event_timestamp"

# Column order of the warehouse table `customer_rfm` and of every feature vector we hand out.
SEGMENTER_FEATURES: list[str] = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_basket_value",
    "avg_items_per_basket",
    "distinct_products",
    "discount_share",
    "coupon_share",
    "tenure_days",
    "weekend_share",
    "stores_visited",
]

# "<feature_view>:<feature>" references, the form Feast's read APIs take.
SEGMENTER_REFS: list[str] = [f"{FEATURE_VIEW}:{name}" for name in SEGMENTER_FEATURES]
