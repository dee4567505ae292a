"""The served platform the end-to-end tests share: seven models trained on the first 100
households and the Serve app running (package scope: trained once for every module here)."""

from __future__ import annotations

import httpx
import pytest
import yaml

from core.services import free_port
from training.forecasting.config import FORECASTER_CONFIG
from training.models.anomaly import CONFIG_PATH as ANOMALY_CONFIG


@pytest.fixture(scope="package")
def served(sample_warehouse, ray_session, tmp_path_factory):
    """Features materialized, a tiny Tune run registered as champion, the Serve app running."""
    from ray import serve

    from pipelines.jobs.features import materialize
    from pipelines.jobs.serve import deploy
    from pipelines.jobs.train import (
        train_anomaly,
        train_churn,
        train_forecaster,
        train_pricing,
        train_promotions,
        train_recommender,
    )
    from pipelines.jobs.train import train_segmenter as segmenter

    counts = materialize()
    assert counts["online_customers"] == 100
    outcome = segmenter(quick=True)
    assert outcome["promoted"], outcome
    # the quick profile's LSTM for 3 epochs instead of 12 (these tests check the pipeline and
    # the routes, not the forecast's quality): its three trainings took 230 s of this setup
    forecaster_cfg = yaml.safe_load(FORECASTER_CONFIG.read_text())
    forecaster_cfg["profiles"]["quick"]["lstm"].update(max_epochs=3, patience=1)
    forecaster_yaml = tmp_path_factory.mktemp("cfg") / "forecaster.yaml"
    forecaster_yaml.write_text(yaml.safe_dump(forecaster_cfg))
    forecast = train_forecaster(quick=True, tune=False, challenger=False, config=forecaster_yaml)
    assert forecast["promoted"], forecast
    churn = train_churn(quick=True)
    assert churn["promoted"], churn
    # 100 households: the busiest stores sell on ~200 days, so the tenant's config asks for
    # 100 days of sales (Complete Journey's default is 300)
    config = tmp_path_factory.mktemp("cfg") / "anomaly.yaml"
    config.write_text(ANOMALY_CONFIG.read_text() + "\nmin_days: 100\nmin_history_days: 20\n")
    anomaly = train_anomaly(quick=True, config=config)
    assert anomaly["promoted"], anomaly
    recommender = train_recommender(quick=True)
    assert recommender["promoted"], recommender
    pricing = train_pricing(quick=True)
    assert pricing["promoted"], pricing
    promotions = train_promotions(quick=True)
    assert promotions["promoted"], promotions
    served = deploy(port=free_port())
    # the conftest's Ray runs with RAY_SERVE_THROUGHPUT_OPTIMIZED=1, as `retailpulse serve`
    assert served.direct is not None, "the ingress's direct port did not answer"
    with httpx.Client(base_url=served.url, timeout=60) as client:
        client.served = served
        client.forecast = forecast  # the forecaster's training summary
        client.churn = churn
        client.anomaly = anomaly
        client.recommender = recommender
        client.pricing = pricing
        client.promotions = promotions
        yield client, outcome
    serve.shutdown()
