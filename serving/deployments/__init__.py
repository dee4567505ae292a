"""Ray Serve deployments: one module per model, plus the HTTP ingress.

`DEPLOYMENTS` maps a model key of `configs/serve.yaml`'s `models:` map to its deployment class;
the typed app builder (`serving.builder.build_app`) binds the ones the config enables.
"""

from __future__ import annotations

DEPLOYMENTS: dict[str, str] = {
    "segmenter": "serving.deployments.segmenter:Segmenter",
    "forecaster": "serving.deployments.forecaster:Forecaster",
    "recommender": "serving.deployments.recommender:Recommender",
    "anomaly": "serving.deployments.anomaly:Anomaly",
    "churn": "serving.deployments.churn:Churn",
    "pricing": "serving.deployments.pricing:Pricing",
    "promotions": "serving.deployments.promotions:Promotions",
}
