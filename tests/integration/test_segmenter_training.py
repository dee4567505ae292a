"""Segmenter: real Ray Tune grid + MLflow tracking store in a fresh PostgreSQL database.

Uses the session's `ray_session` from tests/conftest.py (one Ray per test session).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from core.settings import get_settings
from features.catalog import SEGMENTER_FEATURES
from tests.factories import make_customers

pytestmark = pytest.mark.integration

MODEL = "t1.segmenter"  # registered names are per tenant


@pytest.fixture(scope="module")
def mlflow_env(service_env, tmp_path_factory):
    """Fresh warehouse + MLflow databases, RETAILPULSE_* pointing at them; dropped afterwards."""
    server = service_env["RETAILPULSE_DATABASE_URL"].rsplit("/", 1)[0]
    admin = psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3)
    name = f"rp_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    home = tmp_path_factory.mktemp("rp_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETAILPULSE_DATABASE_URL", f"{server}/{name}")
        mp.setenv("RETAILPULSE_MLFLOW_DATABASE", f"{name}_mlflow")  # created by configure_mlflow
        mp.setenv("RETAILPULSE_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        get_settings.cache_clear()
        yield {"home": home, "mlflow_db": f"{name}_mlflow"}
    get_settings.cache_clear()
    import mlflow

    mlflow.set_tracking_uri(None)
    for db in (f"{name}_mlflow", name):
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return make_customers(n_per_group=80)[0]


@pytest.fixture(scope="module")
def first_run(ray_session, mlflow_env, customers):
    """Tune a 2x2 grid, register the best: the first version becomes champion."""
    from training.config import load_segmenter_config
    from training.registry import register_and_promote
    from training.segmenter import holdout_evaluator, tune_segmenter
    from training.specs import SEGMENTER

    cfg = load_segmenter_config(k_values=[3, 4], pca_components=[2, 3], n_init=3)
    seen = []
    outcome = tune_segmenter(customers, cfg, tenant="t1", on_trial=seen.append)
    result = register_and_promote(
        SEGMENTER,
        outcome.run_id,
        outcome.silhouette,
        tenant="t1",
        evaluate=holdout_evaluator(outcome.holdout, sample_size=None, seed=cfg.seed),
    )
    return outcome, result, seen


def test_tune_picks_the_true_k_and_logs_to_mlflow(first_run, mlflow_env):
    from mlflow import MlflowClient

    outcome, _, seen = first_run
    assert len(outcome.trials) == 4 and len(seen) == 4
    assert all(t.error is None and -1 <= t.silhouette <= 1 for t in outcome.trials)
    assert outcome.best.k == 4  # four archetypes were generated

    client = MlflowClient()
    parent = client.get_run(outcome.run_id)
    assert parent.info.run_name == "segmenter-tune"
    assert parent.data.params["best_k"] == "4"
    assert parent.data.metrics["silhouette"] == pytest.approx(outcome.silhouette)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{outcome.run_id}'",
    )
    assert sorted((r.data.params["k"], r.data.params["n_components"]) for r in children) == [
        ("3", "2"),
        ("3", "3"),
        ("4", "2"),
        ("4", "3"),
    ]
    assert all("silhouette" in r.data.metrics for r in children)
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"profiles.json", "silhouette_by_k.png", "trials.json"} <= artifacts
    # Artifacts live under RETAILPULSE_HOME, the tracking store in its own database.
    assert parent.info.artifact_uri.startswith((mlflow_env["home"] / "mlartifacts").as_uri())
    png = Path(client.download_artifacts(outcome.run_id, "silhouette_by_k.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_first_version_becomes_champion_and_serves_the_same_labels(first_run, customers):
    from mlflow import MlflowClient

    from training.registry import load_champion, load_version
    from training.specs import SEGMENTER

    outcome, result, _ = first_run
    assert result["promoted"] is True and result["version"] == "1"
    assert result["name"] == MODEL
    assert str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == "1"

    loaded = load_champion(SEGMENTER, "t1")
    assert loaded.version == "1" and loaded.name == MODEL
    bundle = loaded.model
    assert bundle.model.feature_names == SEGMENTER_FEATURES
    expected = outcome.model.predict(customers)
    np.testing.assert_array_equal(bundle.model.predict(customers), expected)
    np.testing.assert_array_equal(bundle.fast.predict(customers.to_numpy()), expected)
    assert bundle.profiles == outcome.profiles
    assert sum(p["size"] for p in bundle.profiles) == len(customers)
    assert load_version(SEGMENTER, "t1", 1).version == "1"
    assert load_version(SEGMENTER, "t1", 99) is None
    # Another tenant's registry entry is its own: nothing promoted there.
    assert load_champion(SEGMENTER, "t2") is None


def test_worse_run_from_the_cli_is_registered_but_not_promoted(
    first_run, customers, tmp_path, monkeypatch
):
    """Over-segmenting four groups (k=7, 8) scores lower on the same held-back customers."""
    from mlflow import MlflowClient

    import features.offline
    from pipelines import cli_train
    from training.registry import load_champion, register_and_promote
    from training.specs import SEGMENTER

    monkeypatch.setattr(
        features.offline, "training_frame", lambda *, tenant, as_of=None: customers.reset_index()
    )
    cfg = tmp_path / "worse.yaml"
    cfg.write_text("k_values: [7, 8]\npca_components: [2]\nn_init: 3\nseed: 42\n")
    summary = cli_train.segmenter(tenant="t1", config=cfg)

    assert summary["best_k"] in (7, 8) and summary["trials"] == 2
    assert summary["version"] == "2" and summary["promoted"] is False
    assert "does not beat champion v1" in summary["reason"]
    assert str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert load_champion(SEGMENTER, "t1").version == "1"

    # Without an evaluator the logged metrics (same window) are compared; still not better.
    again = register_and_promote(SEGMENTER, summary["run_id"], summary["silhouette"], tenant="t1")
    assert again["basis"] == "logged on the same window" and again["promoted"] is False
    assert again["champion_metric"] == pytest.approx(first_run[0].silhouette)
