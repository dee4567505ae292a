"""The whole slice on real services: ingest → features → Tune → MLflow → Ray Serve → HTTP
(the `served` fixture, tests/e2e/conftest.py): the segmenter's routes, pinning and promotion."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration


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
    proxy_port = int(client.served.proxy.rsplit(":", 1)[1])
    deploy(port=proxy_port, model_versions={"segmenter": str(second["version"])})
    body = client.get("/api/v1/customers/1/segment").json()
    assert body["data"]["modelVersion"] == str(second["version"])


def test_promotion_under_load_switches_the_running_app_without_a_failed_request(
    served,
) -> None:
    """`retailpulse models promote` reaches the running application through `reconfigure`
    while requests keep coming: none fails, and the new champion answers afterwards."""
    import threading

    from pipelines import cli_models
    from pipelines.jobs.serve import write_serving_record
    from pipelines.jobs.train import train_segmenter
    from training import registry
    from training.specs import SEGMENTER

    client, _ = served
    challenger = train_segmenter(quick=True)["version"]
    champion = registry.load_champion(SEGMENTER, "default").version
    target = next(
        r["version"] for r in registry.versions(SEGMENTER, "default") if r["version"] != champion
    )
    assert target != champion
    write_serving_record(client.served, tenant=None, model_versions={})  # what `serve` writes
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=client.served.url, timeout=30) as http:
            while not stop.is_set():
                reply = http.get("/api/v1/customers/1/segment")
                statuses.append(reply.status_code)
                if reply.status_code == 200:
                    versions.append(reply.json()["data"]["modelVersion"])

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        result = cli_models.promote("segmenter", int(target), tenant="default")
        time.sleep(1.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    assert result["reloaded"] is True and challenger
    assert len(statuses) > 20
    assert [s for s in statuses if s != 200] == []
    assert versions[-1] == str(target)
    assert client.get("/api/v1/customers/1/segment").json()["data"]["modelVersion"] == target
