"""MLflow set-up: every experiment we create keeps its artifacts under RETAILPULSE_HOME."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_every_experiment_created_in_a_process_stores_artifacts_under_home(service_env):
    import mlflow

    from core.settings import get_settings
    from training.tracking import configure_mlflow

    root = (get_settings().home_dir / "mlartifacts").as_uri()
    names = [f"rp-test-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:  # the second call runs after MLflow exported MLFLOW_TRACKING_URI
        configure_mlflow(name)
    for name in names:
        location = mlflow.get_experiment_by_name(name).artifact_location
        assert location.startswith(root), location
