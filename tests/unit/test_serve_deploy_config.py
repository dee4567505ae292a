"""`serve deploy configs/serve_deploy.yaml` builds the same application as `retailpulse serve`."""

from __future__ import annotations

from pathlib import Path

import yaml

from serving.builder import AppArgs, build_app

ROOT = Path(__file__).resolve().parents[2]


def _shape(app) -> dict:
    """Deployment names → (options that decide replicas/resources, user_config)."""
    from ray.serve._private.build_app import build_app as flatten

    built = flatten(app, name="retailpulse")
    return {
        d.name: (d.num_replicas, (d.ray_actor_options or {}).get("num_cpus"), d.user_config)
        for d in built.deployments
    }


def test_declarative_config_validates_and_builds_the_cli_application(monkeypatch) -> None:
    from ray.serve.schema import ServeDeploySchema

    monkeypatch.setenv("RETAILPULSE_REDIS_URL", "redis://127.0.0.1:6379/0")
    raw = yaml.safe_load((ROOT / "configs" / "serve_deploy.yaml").read_text())
    config = ServeDeploySchema.model_validate(raw)
    (app,) = config.applications
    assert app.import_path == "serving.builder:build_app"
    declarative = build_app(app.args)
    cli = build_app(AppArgs())  # what `retailpulse serve` deploys
    assert _shape(declarative) == _shape(cli)
    assert "Ingress" in _shape(cli)


def test_a_new_generation_changes_only_the_user_config(monkeypatch) -> None:
    monkeypatch.setenv("RETAILPULSE_REDIS_URL", "redis://127.0.0.1:6379/0")
    before, after = _shape(build_app(AppArgs())), _shape(build_app(AppArgs(generation=7)))
    assert before.keys() == after.keys()
    for name in before:
        assert before[name][:2] == after[name][:2]  # replicas and resources unchanged
    models = after["Ingress"][2]["models"]
    assert models and all(cfg["generation"] == 7 for cfg in models.values())
