"""Which Ray `ensure_ray` joins: our setting, then RAY_ADDRESS (as in `ray job submit`), else a
private local one; and what a submitted job's own runtime_env already sets. No Ray started."""

from __future__ import annotations

import json

from core.ray_runtime import job_env_vars, ray_target


def test_our_setting_wins_over_ray_address() -> None:
    target = ray_target("ray://head:10001", {"RAY_ADDRESS": "127.0.0.1:6380"})
    assert (target.address, target.joins_cluster) == ("ray://head:10001", True)
    assert target.source == "RETAILPULSE_RAY_ADDRESS"


def test_a_submitted_job_joins_its_cluster_not_a_nested_one() -> None:
    target = ray_target(None, {"RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert target.address == "http://127.0.0.1:8265" and target.joins_cluster
    assert ray_target(None, {"RAY_ADDRESS": "auto"}).address == "auto"


def test_without_any_address_a_private_local_ray_starts() -> None:
    for env in ({}, {"RAY_ADDRESS": ""}, {"RAY_ADDRESS": "  "}):
        target = ray_target(None, env)
        assert (target.address, target.joins_cluster) == ("local", False)
    assert ray_target("", {}).address == "local"


def test_variables_the_job_already_sets_are_not_repeated() -> None:
    job = {"runtime_env": {"env_vars": {"RETAILPULSE_DATABASE_URL": "postgresql://db/x"}}}
    env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job)}
    assert job_env_vars(env) == {"RETAILPULSE_DATABASE_URL"}
    assert job_env_vars({}) == set()
    assert job_env_vars({"RAY_JOB_CONFIG_JSON_ENV_VAR": "not json"}) == set()
