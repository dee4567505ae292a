"""One `ModelSpec` per model: what every layer needs to know about it, in one place.

The registry, the CLI, serving and batch scoring are generic over these specs; adding a model
adds a spec here (plus its model, trainer, deployment and router), never an `if model == …`.
Loaders are import strings so that reading a spec imports neither torch nor sklearn.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.tenants import validate_tenant
from features.catalog import (
    ANOMALY_V1,
    CHURN_V1,
    FORECASTER_V1,
    PRICING_V1,
    PROMOTIONS_V1,
    RECOMMENDER_V1,
    SEGMENTER_V1,
    FeatureServiceSpec,
)


@dataclass(frozen=True)
class ModelSpec:
    """A model of the platform.

    `load` names a function `(model_uri, run_id) -> object` that turns a registered version's
    artifacts into the object serving and scoring use. `metric` is the primary metric on the
    `evaluation_window`; promotion compares challenger and champion on it.
    """

    key: str
    title: str
    feature_service: FeatureServiceSpec
    metric: str
    higher_is_better: bool
    evaluation_window: str
    load: str
    experiment: str

    @property
    def entity_keys(self) -> tuple[str, ...]:
        return self.feature_service.views[0].join_keys

    @property
    def train_command(self) -> str:
        return f"retailpulse train {self.key}"

    def registered_name(self, tenant: str) -> str:
        """Registry name: one registered model per tenant and model (`<tenant>.<key>`)."""
        return f"{validate_tenant(tenant)}.{self.key}"

    def loader(self) -> Callable[[str, str], Any]:
        module, _, func = self.load.partition(":")
        return getattr(importlib.import_module(module), func)

    def better(self, ours: float, theirs: float) -> bool:
        """Strictly better on the primary metric (a tie keeps the champion)."""
        return ours > theirs if self.higher_is_better else ours < theirs


SEGMENTER = ModelSpec(
    key="segmenter",
    title="customer segmenter",
    feature_service=SEGMENTER_V1,
    metric="silhouette",
    higher_is_better=True,
    evaluation_window="customers held back from the tenant's newest RFM snapshot (seeded split)",
    load="training.segmenter_bundle:load_bundle",
    experiment="retailpulse-segmenter",
)

FORECASTER = ModelSpec(
    key="forecaster",
    title="demand forecaster",
    feature_service=FORECASTER_V1,
    metric="mase",
    higher_is_better=False,
    evaluation_window="the tenant's last 8 complete weeks, forecast from the week before them",
    load="training.forecaster:load_bundle",
    experiment="retailpulse-forecaster",
)

RECOMMENDER = ModelSpec(
    key="recommender",
    title="product recommender",
    feature_service=RECOMMENDER_V1,
    metric="ndcg_at_10",
    higher_is_better=True,
    evaluation_window="each household's last basket held out (recsys_cj on the tenant's data)",
    load="training.bundles:load_registered",
    experiment="retailpulse-recommender",
)

ANOMALY = ModelSpec(
    key="anomaly",
    title="sales-anomaly detector",
    feature_service=ANOMALY_V1,
    metric="roc_auc",
    higher_is_better=True,
    evaluation_window="the tenant's last 60 days with injected spikes and drops (seeds 42..51)",
    load="training.bundles:load_registered",
    experiment="retailpulse-anomaly",
)

CHURN = ModelSpec(
    key="churn",
    title="churn model",
    feature_service=CHURN_V1,
    metric="roc_auc",
    higher_is_better=True,
    evaluation_window="the tenant's last 9 weeks as the churn window, 4 lead weeks, 20 splits",
    load="training.bundles:load_registered",
    experiment="retailpulse-churn",
)

PRICING = ModelSpec(
    key="pricing",
    title="price-elasticity model",
    feature_service=PRICING_V1,
    metric="rmse_log_units",
    higher_is_better=False,
    evaluation_window="the tenant's last 8 weeks of store x product log units, fit on the weeks before",
    load="training.bundles:load_registered",
    experiment="retailpulse-pricing",
)

PROMOTIONS = ModelSpec(
    key="promotions",
    title="promotion-impact model",
    feature_service=PROMOTIONS_V1,
    metric="max_abs_smd",
    higher_is_better=False,
    evaluation_window="every campaign of the tenant: mean largest |SMD| after matching",
    load="training.bundles:load_registered",
    experiment="retailpulse-promotions",
)

MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (SEGMENTER, FORECASTER, RECOMMENDER, ANOMALY, CHURN, PRICING, PROMOTIONS)
}


def get_spec(key: str) -> ModelSpec:
    """The spec of model `key`, or ValueError listing the known models."""
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(MODELS)}") from None
