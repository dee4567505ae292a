"""The parts of the lean trainer (training.trainers.torch_trainer) that run in Ray Train's
controller process, kept free of torch.

The controller unpickles its class, its scaling policy and the run's backend config. With Ray's
`TorchConfig` (module `ray.train.torch.config`, which imports torch) and classes defined beside
`TorchTrainer`, every run's controller imported torch (about 2 s here) before it could start a
worker, only to set up a torch process group. A single worker has no process group to form (DDP
is only prepared for 2 or more), so one-worker runs on the local Ray take `SingleWorkerConfig`:
no torch in the controller, no process-group round trips to the worker.
"""

from __future__ import annotations

import os

import ray
from ray.train.backend import Backend, BackendConfig
from ray.train.v2._internal.execution.controller import TrainController
from ray.train.v2._internal.execution.scaling_policy import FixedScalingPolicy
from ray.train.v2._internal.execution.worker_group import WorkerGroup
from ray.train.v2._internal.util import TrainingFramework


class LocalFixedScalingPolicy(FixedScalingPolicy):
    """Fixed workers, no resource requests: a local Ray has no autoscaler to send them to."""

    def after_controller_start(self, train_run_context) -> None:
        self._requester_id = f"train-{train_run_context.run_id}"

    def _maybe_send_resource_request(self) -> None:
        return None

    def _send_resource_request(self) -> None:
        return None

    def _cancel_resource_request(self) -> None:
        return None


class InheritingWorkerGroup(WorkerGroup):
    """Workers get Train's variables as a runtime_env only if they would not inherit them: a
    controller without a runtime_env on a local Ray has them from the raylet, as a new worker
    will, which can then be a pre-started one."""

    @staticmethod
    def _get_worker_runtime_env(custom_runtime_env):
        runtime_env = WorkerGroup._get_worker_runtime_env(custom_runtime_env)
        own = ray.get_runtime_context().runtime_env or {}
        env_vars = runtime_env.get("env_vars") or {}
        if set(runtime_env) <= {"env_vars"} and not own and _inherited(env_vars):
            return {}
        return runtime_env


def _inherited(env_vars: dict[str, str]) -> bool:
    return all(os.environ.get(k) == v for k, v in env_vars.items())


class LocalTrainController(TrainController):
    """The controller on a local Ray this process started (see InheritingWorkerGroup)."""

    worker_group_cls = InheritingWorkerGroup


class _SingleWorkerBackend(Backend):
    """No torch process group: one worker trains alone (Backend's hooks are no-ops)."""


class SingleWorkerConfig(BackendConfig):
    """The backend config of a one-worker TorchTrainer run on the local Ray (module docstring).
    `backend` is what TorchTrainer reads to pick a process-group backend; none is formed."""

    backend = "none"

    @property
    def backend_cls(self):
        return _SingleWorkerBackend

    @property
    def framework(self):
        return TrainingFramework.TORCH
