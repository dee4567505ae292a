"""configs/serve.yaml deploys every model of the platform and leaves a CPU for training."""

from __future__ import annotations

from serving.config import load_serve_config
from serving.deployments import DEPLOYMENTS
from training.specs import MODELS


def test_every_model_has_a_deployment_and_is_enabled():
    cfg = load_serve_config()
    assert set(DEPLOYMENTS) == set(MODELS)
    assert {k for k, opts in cfg.models.items() if opts.enabled} == set(MODELS)


def test_serving_reserves_under_one_cpu_so_training_can_run_beside_it():
    # On 2 cores a Ray Tune trial or Train worker needs one whole free CPU while serving runs.
    cfg = load_serve_config()
    reserved = cfg.ingress.num_cpus * cfg.ingress.num_replicas + sum(
        o.num_cpus * o.num_replicas
        for o in cfg.models.values()
        if o.enabled and o.placement == "deployment"
    )
    assert reserved <= 1.0
