"""The LSTM forecaster on Ray Train (TorchTrainer) and Ray Tune (ASHA), same pure steps as `fit`.

Ray 2.60 runs Train V2 by default: `ray.train.report` inside a TorchTrainer worker,
`ray.tune.report` inside a Tune function trial, `ray.train.RunConfig` for trainers and
`ray.tune.RunConfig` for Tuners. Tune trials run the pure loop directly in their trial actor
(1 CPU each) rather than nesting a TorchTrainer per trial: on 2 cores a nested worker group per
trial would cost more than the trial itself (DESIGN §6: fixed cost per Train run).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.forecasting.config import ForecasterConfig, LSTMConfig
from training.forecasting.panel import Panel

METRIC = "val_loss"


@dataclass(frozen=True)
class WorkerConfig:
    """What `train_loop_per_worker` receives (typed from Ray's dict on its first line)."""

    lstm: LSTMConfig
    train_end_week: int
    panel_ref: Any  # ray.ObjectRef[Panel] (or a Panel, in-process)
    max_epochs: int
    final: bool = True  # train the ensemble (+ refit) and checkpoint it; False: one member (Tune)
    patience: int | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> WorkerConfig:
        lstm = config["lstm"]
        return cls(
            lstm=lstm if isinstance(lstm, LSTMConfig) else LSTMConfig.model_validate(lstm),
            train_end_week=int(config["train_end_week"]),
            panel_ref=config["panel_ref"],
            max_epochs=int(config["max_epochs"]),
            final=bool(config.get("final", True)),
            patience=config.get("patience"),
        )


def _get_panel(ref: Any) -> Panel:
    if isinstance(ref, Panel):
        return ref
    import ray

    return ray.get(ref)


def run_epochs(
    wc: WorkerConfig,
    report: Callable[[dict[str, Any], str | None], None],
    *,
    rank: int = 0,
    world: int = 1,
    prepare: Callable[[Any], Any] | None = None,
    started: float | None = None,
) -> None:
    """The loop every path runs (`training.trainers.forecast_steps.train_member`), `report` per epoch.

    With `wc.final` the run trains cfg.n_seeds members (refit on all weeks when cfg.refit) and
    makes one last report with the saved ensemble's directory (rank 0): the only checkpoint, so
    no epoch pays for one and the checkpoint is exactly what `fit` would return. `report` owns
    that temporary directory (it may delete it once persisted).
    """
    loop_start = started if started is not None else time.perf_counter()
    import torch

    from training.models.forecaster import LSTMForecaster, static_vocab_for, vocab_sizes_for
    from training.trainers.forecast_steps import train_member

    cfg = wc.lstm
    torch.set_num_threads(cfg.num_threads)
    panel = _get_panel(wc.panel_ref)
    forecaster = LSTMForecaster(
        cfg, vocab_sizes_for(panel, cfg), static_vocab=static_vocab_for(panel, cfg)
    )

    def on_epoch(record: dict[str, Any]) -> None:
        report({**record, "loop_s": time.perf_counter() - loop_start}, None)

    n_members = cfg.n_seeds if wc.final else 1
    for i in range(n_members):
        net = train_member(
            forecaster,
            panel,
            wc.train_end_week,
            cfg.seed + i,
            on_epoch,
            max_epochs=wc.max_epochs,
            patience=wc.patience,
            refit=cfg.refit if wc.final else False,
            rank=rank,
            world=world,
            prepare=prepare,
        )
        forecaster.nets.append(net)
    if not wc.final:
        return
    checkpoint_dir = None
    if rank == 0:
        checkpoint_dir = tempfile.mkdtemp(prefix="rp-fc-ckpt-")
        forecaster.save(checkpoint_dir)
    best = {}
    for h in forecaster.history:
        best[h["seed"]] = min(best.get(h["seed"], math.inf), h[METRIC])
    report(
        {
            "phase": "final",
            "members": n_members,
            METRIC: sum(best.values()) / len(best),  # mean early-stopping loss of the members
            "loop_s": time.perf_counter() - loop_start,
        },
        checkpoint_dir,
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: `run_epochs` with `ray.train.report` (+ Checkpoint) per epoch."""
    wc = WorkerConfig.from_dict(config)
    import ray.train
    import ray.train.torch  # imports torch: counted in the run's fixed cost, not in `loop_s`

    started = time.perf_counter()

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)  # SYNC upload: persisted when this returns
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    prepare = ray.train.torch.prepare_model if world > 1 else None
    run_epochs(wc, report, rank=rank, world=world, prepare=prepare, started=started)


def build_trainer(
    cfg: ForecasterConfig,
    panel: Panel,
    train_end_week: int,
    *,
    storage_path: str | Path | None = None,
    name: str | None = None,
    max_epochs: int | None = None,
    final: bool = True,
    callbacks: list[Any] | None = None,
    health_check_interval_s: float | None = None,
):
    """A TorchTrainer (cfg.num_workers workers, DDP when > 1) over `panel` up to train_end_week.

    The panel goes to the object store once (`ray.put`); workers get the malloc env.
    Train V2 keeps metrics only with checkpoints (`result.metrics`); per-epoch metrics of
    epochs without one reach `callbacks` (ray.train.UserCallback.after_report).
    """
    import ray

    from training.trainers.torch_trainer import torch_trainer

    storage = Path(storage_path) if storage_path else Path(tempfile.gettempdir()) / "rp-ray-train"
    loop_config = {
        "lstm": cfg.lstm.model_dump(),
        "train_end_week": int(train_end_week),
        "panel_ref": ray.put(panel),
        "max_epochs": int(max_epochs or cfg.lstm.max_epochs),
        "final": final,
        "patience": cfg.lstm.patience,
    }
    return torch_trainer(
        train_loop_per_worker,
        loop_config,
        num_workers=cfg.num_workers,
        name=name or f"forecaster-{time.strftime('%Y%m%dT%H%M%S')}",
        storage_path=storage,
        callbacks=callbacks,
        health_check_interval_s=health_check_interval_s,
    )


def load_checkpoint(result) -> Any:
    """The LSTMForecaster of a TorchTrainer result's best checkpoint."""
    from training.models.forecaster import LSTMForecaster

    ckpt = result.checkpoint
    if ckpt is None:
        raise RuntimeError("the training run reported no checkpoint")
    with ckpt.as_directory() as d:
        return LSTMForecaster.load(d)


def _tune_trial(
    config: dict[str, Any], *, panel: Panel, base: dict[str, Any], train_end_week: int
) -> None:
    """Tune function trainable: `run_epochs` for one sampled config, `tune.report` per epoch."""
    from ray import tune

    cfg = LSTMConfig.model_validate({**base, **config})
    best = [math.inf]

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        best[0] = min(best[0], metrics[METRIC])
        tune.report({**metrics, "best_val_loss": best[0]})

    # ASHA stops poor trials; early stopping would hide a late improver from it.
    wc = WorkerConfig(cfg, train_end_week, panel, cfg.max_epochs, final=False, patience=10**6)
    run_epochs(wc, report)


@dataclass
class TuneResult:
    """Best LSTM config found, every trial's config and score, wall time."""

    best_config: LSTMConfig
    best_val_loss: float
    trials: list[dict[str, Any]]
    duration_s: float


def tune_forecaster(
    panel: Panel,
    cfg: ForecasterConfig,
    train_end_week: int,
    *,
    storage_path: str | Path | None = None,
) -> TuneResult:
    """Ray Tune + ASHA over cfg.tune's search space (lr, sizes, lookback, dropout, loss).

    Scores trials on the validation window before train_end_week (never on test weeks).
    Starts Ray via core.ray_runtime.ensure_ray() unless one is already running.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if not ray.is_initialized():
        from core.ray_runtime import ensure_ray

        ensure_ray()
    start = time.perf_counter()
    t = cfg.tune
    base = cfg.lstm.model_dump() | {"max_epochs": t.max_epochs, "n_seeds": 1}
    space = {k: tune.choice(v) for k, v in t.search_space().items()}
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, panel=panel, base=base, train_end_week=train_end_week),
        {"cpu": t.cpus_per_trial},
    )
    storage = Path(storage_path) if storage_path else Path(tempfile.gettempdir()) / "rp-ray-tune"
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            num_samples=t.num_samples,
            max_concurrent_trials=t.max_concurrent_trials,
            scheduler=ASHAScheduler(
                max_t=t.max_epochs,
                grace_period=min(t.grace_period, t.max_epochs),
                reduction_factor=t.reduction_factor,
                time_attr="training_iteration",
            ),
            search_alg=None,
        ),
        run_config=tune.RunConfig(
            name=f"forecaster-tune-{time.strftime('%Y%m%dT%H%M%S')}",
            storage_path=str(storage),
            verbose=0,
        ),
    )
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    results = tuner.fit()
    trials = []
    for r in results:
        metrics = r.metrics or {}
        trials.append(
            {
                **r.config,
                "best_val_loss": metrics.get("best_val_loss"),
                "epochs": metrics.get("epoch"),
                "error": repr(r.error) if r.error else None,
            }
        )
    scored = [x for x in trials if x["best_val_loss"] is not None]
    if not scored:
        raise RuntimeError(f"every forecaster trial failed: {[x['error'] for x in trials]}")
    best = min(scored, key=lambda x: x["best_val_loss"])
    keys = t.search_space().keys()
    best_cfg = LSTMConfig.model_validate(cfg.lstm.model_dump() | {k: best[k] for k in keys})
    return TuneResult(best_cfg, float(best["best_val_loss"]), trials, time.perf_counter() - start)
