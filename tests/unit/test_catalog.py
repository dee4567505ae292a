"""The feature catalog, the warehouse schema and the feature code name the same features."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.schema.features import CHURN_FEATURES, customer_churn_features
from features.catalog import CUSTOMER_CHURN, FEATURE_SERVICES, FEATURE_VIEWS
from features.churn import FEATURE_NAMES
from training.specs import MODELS

MIGRATION = Path(__file__).parents[2] / "core/migrations/versions/0004_customer_churn_features.py"


def test_churn_feature_names_agree_everywhere():
    spec = importlib.util.spec_from_file_location("m0004", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert tuple(CUSTOMER_CHURN.feature_names) == FEATURE_NAMES
    assert CHURN_FEATURES == FEATURE_NAMES == migration.FEATURES
    assert set(FEATURE_NAMES) < {c.name for c in customer_churn_features.columns}


def test_every_model_reads_a_registered_feature_service():
    for spec in MODELS.values():
        assert FEATURE_SERVICES[spec.feature_service.name] is spec.feature_service
        for view in spec.feature_service.views:
            assert FEATURE_VIEWS[view.name] is view
        assert spec.registered_name("acme") == f"acme.{spec.key}"
