"""The TorchTrainer every model trains with: Ray Train V2's, minus the actors a run here never uses.

Beside its controller, one SynchronizationActor and its workers, a Train V2 fit (Ray 2.60)
starts, each in a Python process of its own: a DatasetManager (even when the run has no Ray
Dataset; it also makes every worker import `ray.data` on the way to the first step), an
autoscaling coordinator (asks a cluster autoscaler for the workers' resources), a placement-group
cleaner (removes the workers' placement group should the controller die while the cluster lives
on; it polls the state API every second and costs up to a second to stop at the end) and a
preemption watcher (polls for node drains). In a 1-epoch forecaster run here the first three
used 2.6-4.1 s of CPU each (Ray-side CPU of the run 31 s before, 17-20 s after), on 2 cores and
partly on the path to the first training step. So:

- no Dataset given → no DatasetManager, anywhere;
- on the private local Ray this process started (`core.ray_runtime.start_local`), nothing else
  either: there is no autoscaler to ask, nothing drains its one node (`start_local` turns the
  watcher off), and the Ray dies with this process, so no placement group can outlive it. The
  controller also runs without a runtime_env when the local Ray's workers already have the
  variables Train propagates to it, so it takes a worker Ray pre-started at init instead of
  waiting for a new one;
- a one-worker run there forms no torch process group (`local_train.SingleWorkerConfig`),
  and its controller, defined with the other controller-side classes in the torch-free
  `training.trainers.local_train`, no longer imports torch: 13% less `fit()` wall time
  for one NCF epoch here (bench/train_overhead.py recommender).

On a cluster (`RAY_ADDRESS`, `RETAILPULSE_RAY_ADDRESS`, `ray job submit`) the trainer is Ray's,
but for the DatasetManager. Ray is pinned (2.60.0); the overrides below name the Train V2
internals they rely on, and `tests/integration/test_lean_torch_trainer.py` checks them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray._common.constants import RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR
from ray._raylet import RAY_NODE_ID_KEY
from ray.train import CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)
from ray.train.v2._internal.constants import (
    DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE,
    get_env_vars_to_propagate,
)
from ray.train.v2._internal.execution.scaling_policy import FixedScalingPolicy

from core.ray_runtime import (
    HEALTH_CHECK_ENV,
    LOCAL_TRAIN_ENV,
    MALLOC_ENV,
    started_local_ray,
    task_runtime_env,
)
from training.trainers.local_train import (
    LocalFixedScalingPolicy,
    LocalTrainController,
    SingleWorkerConfig,
)


class LeanTorchTrainer(TorchTrainer):
    """TorchTrainer without the DatasetManager when there is no Dataset, and without the
    cluster-only actors on a local Ray this process started (module docstring)."""

    def _create_default_callbacks(self):
        drop: tuple[type, ...] = () if self.datasets else (DatasetsCallback,)
        if started_local_ray():
            drop += (PlacementGroupCleanerCallback,)
        return [c for c in super()._create_default_callbacks() if not isinstance(c, drop)]

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        if not started_local_ray():
            return super()._initialize_and_run_controller(**controller_init_kwargs)
        policy = controller_init_kwargs["scaling_policy"]
        if type(policy) is FixedScalingPolicy:
            controller_init_kwargs["scaling_policy"] = LocalFixedScalingPolicy(
                policy.scaling_config
            )
        # As DataParallelTrainer._initialize_and_run_controller (Ray 2.60), but the env it gives
        # the controller as a runtime_env only if the local workers lack it.
        env_vars = get_env_vars_to_propagate()
        env_vars.setdefault(
            RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
            DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE,
        )
        controller_cls = ray.remote(
            num_cpus=0,
            label_selector={RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()},
            runtime_env=task_runtime_env(env_vars),
        )(LocalTrainController)
        controller = controller_cls.remote(**controller_init_kwargs)
        if threading.current_thread() is threading.main_thread():
            self._register_sigint_handler(controller)
        ray.get(controller.run.remote())
        return ray.get(controller.get_result.remote())


def torch_trainer(
    train_loop_per_worker: Callable[[dict[str, Any]], None],
    loop_config: dict[str, Any],
    *,
    num_workers: int,
    name: str,
    storage_path: str | Path,
    callbacks: list[Any] | None = None,
    health_check_interval_s: float | None = None,
):
    """A TorchTrainer (CPU, `num_workers` workers, DDP when > 1) keeping one checkpoint, with the
    malloc env for its workers and WARNING-level Train logs.

    The controller polls its workers every 2 s by default: dead time at the start and end of
    every run. Train reads the interval from the driver's environment when the run starts; a
    value already set there wins.
    """
    interval = LOCAL_TRAIN_ENV[HEALTH_CHECK_ENV]
    if health_check_interval_s is not None:
        interval = str(health_check_interval_s)
    os.environ.setdefault(HEALTH_CHECK_ENV, interval)
    return LeanTorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        # one worker on the local Ray: no torch process group, no torch in the controller
        torch_config=SingleWorkerConfig() if num_workers == 1 and started_local_ray() else None,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=False),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage_path),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            worker_runtime_env=task_runtime_env(MALLOC_ENV),
            callbacks=callbacks,
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )
