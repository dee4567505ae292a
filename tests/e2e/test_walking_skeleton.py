"""The whole slice on real services: ingest → features → Tune → MLflow → Ray Serve → HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from core.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(sample_warehouse, ray_session):
    """Features materialized, a tiny Tune run registered as champion, the Serve app running."""
    from ray import serve

    from pipelines.jobs.features import materialize
    from pipelines.jobs.serve import deploy
    from pipelines.jobs.train import train_segmenter as segmenter

    counts = materialize()
    assert counts["online_customers"] == 100
    outcome = segmenter(quick=True)
    assert outcome["promoted"], outcome
    base = deploy(port=free_port())
    with httpx.Client(base_url=base, timeout=60) as client:
        yield client, outcome
    serve.shutdown()


def test_served_segment_equals_the_registered_models_prediction(served) -> None:
    from features.offline import training_frame
    from training.registry import load_champion
    from training.specs import SEGMENTER

    client, outcome = served
    loaded = load_champion(SEGMENTER, "default")
    model, version = loaded.model.model, loaded.version
    frame = training_frame(tenant="default").set_index("customer_id")
    # the numpy path the deployment uses agrees with the sklearn pipeline on every customer
    every = frame[model.feature_names]
    np.testing.assert_array_equal(loaded.model.fast.predict(every.to_numpy()), model.predict(every))
    sample = frame.sample(12, random_state=1)
    expected = model.predict(sample[model.feature_names])
    for (customer_id, row), want in zip(sample.iterrows(), expected, strict=True):
        body = client.get(f"/api/v1/customers/{customer_id}/segment").json()
        assert body["success"] is True, body
        data = body["data"]
        assert data["segmentId"] == int(want)
        assert data["modelVersion"] == version
        # the online features are the latest offline snapshot of the same customer
        assert data["features"] == pytest.approx(row[model.feature_names].to_dict())


def test_segments_overview_matches_the_champion(served) -> None:
    client, _ = served
    body = client.get("/api/v1/analytics/customers/segments").json()
    assert body["success"] is True
    segments = body["data"]["segments"]
    assert sum(s["size"] for s in segments) == body["data"]["customers"] == 100
    assert pd.Series([s["share"] for s in segments]).sum() == pytest.approx(1.0)
    assert all(s["label"] for s in segments)


def test_bad_requests_get_clear_errors_not_500(served) -> None:
    client, _ = served
    unknown = client.get("/api/v1/customers/987654321/segment")
    assert unknown.status_code == 404
    assert "987654321" in unknown.json()["error"]["message"]
    bad = client.get("/api/v1/customers/abc/segment")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    health = client.get("/healthz").json()["data"]
    assert {m["model"]: m["ready"] for m in health["models"]}["segmenter"] is True
    assert client.get("/docs").status_code == 200


def test_pinning_a_version_switches_the_served_model(served) -> None:
    from pipelines.jobs.serve import deploy
    from pipelines.jobs.train import train_segmenter

    client, first = served
    second = train_segmenter(quick=True)  # registered as a new version, champion or not
    assert second["version"] != first["version"]
    deploy(port=client.base_url.port, model_versions={"segmenter": str(second["version"])})
    body = client.get("/api/v1/customers/1/segment").json()
    assert body["data"]["modelVersion"] == str(second["version"])
