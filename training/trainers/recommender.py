"""The NeuMF recommender on Ray Train (TorchTrainer) and Ray Tune (ASHA), same pure steps as
`fit_ncf`.

Ray 2.60 runs Train V2: `ray.train.report` inside TorchTrainer workers, `ray.tune.report` inside
Tune function trials. Tune trials run the pure loop in their trial actor (1 CPU each) instead of
nesting a TorchTrainer per trial: on 2 cores a worker group per trial costs more than the trial
(DESIGN §6). Validation (sampled HR@10) is only computed when the caller says the data is the
inner-validation split, so nothing here can select on the test split by accident.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.models.recommender import NCFConfig, NCFWeights
from training.recommending.config import RecommenderConfig

METRIC = "val_hr10"


@dataclass(frozen=True)
class WorkerConfig:
    """What `train_loop_per_worker` receives (typed from Ray's dict on its first line)."""

    ncf: NCFConfig
    data_ref: Any  # ray.ObjectRef[RecData] (or a RecData, in-process)
    epochs: int
    validate: bool = False  # data is the inner-validation split: report sampled HR@10
    checkpoint: bool = True

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> WorkerConfig:
        ncf = config["ncf"]
        return cls(
            ncf=ncf if isinstance(ncf, NCFConfig) else NCFConfig.model_validate(ncf),
            data_ref=config["data_ref"],
            epochs=int(config["epochs"]),
            validate=bool(config.get("validate", False)),
            checkpoint=bool(config.get("checkpoint", True)),
        )


def _get_data(ref: Any) -> Any:
    if hasattr(ref, "train"):
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
) -> NCFWeights:
    """The loop every path runs; `report(metrics, checkpoint_dir)` once per epoch.

    The last epoch's report carries a directory with the exported weights (rank 0, when
    `wc.checkpoint`): the only checkpoint, so no epoch pays for one. `report` owns that directory.
    """
    loop_start = started if started is not None else time.perf_counter()
    import numpy as np
    import torch

    from training.models.ncf_torch import (
        epoch_batches,
        export,
        make_model,
        make_optimizer,
        sampled_hit_rate,
        train_epoch,
    )
    from training.models.recommender import train_pairs

    cfg = wc.ncf
    torch.set_num_threads(cfg.num_threads)
    data = _get_data(wc.data_ref)
    pairs = train_pairs(data.train, cfg.pos_weight).shard(rank, world)
    model = make_model(cfg, *data.train.shape)
    if prepare is not None:
        model = prepare(model)
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed + rank)
    for epoch in range(1, wc.epochs + 1):
        t0 = time.perf_counter()
        loss, n = train_epoch(model, opt, epoch_batches(pairs, cfg, rng))
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss,
            "samples": n,
            "epoch_s": time.perf_counter() - t0,
        }
        if wc.validate:
            inner = getattr(model, "module", model)  # no DDP hooks for an eval pass
            metrics[METRIC] = sampled_hit_rate(
                inner, data.eval_users, data.positives, data.negatives
            )
        ckpt = None
        if epoch == wc.epochs and wc.checkpoint and rank == 0:
            ckpt = tempfile.mkdtemp(prefix="rp-ncf-ckpt-")
            export(model).save(ckpt)
        report({**metrics, "loop_s": time.perf_counter() - loop_start}, ckpt)
    return export(model)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: `run_epochs` with `ray.train.report` (+ final Checkpoint)."""
    wc = WorkerConfig.from_dict(config)
    import ray.train
    import ray.train.torch  # imports torch: counted in the run's fixed cost, not in `loop_s`

    started = time.perf_counter()

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)  # synchronous: persisted when it returns
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    prepare = ray.train.torch.prepare_model if world > 1 else None
    run_epochs(wc, report, rank=rank, world=world, prepare=prepare, started=started)


def build_trainer(
    cfg: RecommenderConfig,
    data_ref: Any,
    *,
    epochs: int | None = None,
    validate: bool = False,
    storage_path: str | Path | None = None,
    name: str | None = None,
    callbacks: list[Any] | None = None,
):
    """A TorchTrainer (cfg.num_workers CPU workers, DDP when > 1) over `data_ref` (a RecData or
    its `ray.put` ref; a RecData is put once here). Train V2 keeps metrics only with checkpoints
    (the last epoch); per-epoch metrics reach `callbacks` (ray.train.UserCallback)."""
    import ray

    from training.trainers.torch_trainer import torch_trainer

    if hasattr(data_ref, "train"):
        data_ref = ray.put(data_ref)
    storage = Path(storage_path or Path(tempfile.gettempdir()) / "rp-ray-train")
    loop_config = {
        "ncf": cfg.ncf.model_dump(),
        "data_ref": data_ref,
        "epochs": int(epochs or cfg.ncf.epochs),
        "validate": validate,
    }
    return torch_trainer(
        train_loop_per_worker,
        loop_config,
        num_workers=cfg.num_workers,
        name=name or f"recommender-{time.strftime('%Y%m%dT%H%M%S')}",
        storage_path=storage,
        callbacks=callbacks,
    )


def load_checkpoint(result: Any) -> NCFWeights:
    """The NCFWeights of a TorchTrainer result's checkpoint."""
    if result.checkpoint is None:
        raise RuntimeError("the training run reported no checkpoint")
    with result.checkpoint.as_directory() as d:
        return NCFWeights.load(d)


def fit_ncf(
    data: Any,
    cfg: RecommenderConfig | NCFConfig,
    *,
    epochs: int | None = None,
    validate: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> NCFWeights:
    """Train NeuMF in this process (the plain loop, same steps as the Ray paths)."""
    ncf = cfg.ncf if isinstance(cfg, RecommenderConfig) else cfg
    wc = WorkerConfig(ncf, data, int(epochs or ncf.epochs), validate=validate, checkpoint=False)
    return run_epochs(wc, lambda m, _d: on_epoch(m) if on_epoch else None)


def _tune_trial(config: dict[str, Any], *, data: Any, base: dict[str, Any]) -> None:
    """Tune function trainable: the pure loop for one sampled config, `tune.report` per epoch."""
    from ray import tune

    ncf = NCFConfig.model_validate({**base, **config})
    best = [0.0, 0]  # best val_hr10 so far and its epoch

    def report(metrics: dict[str, Any], _dir: str | None) -> None:
        if metrics[METRIC] > best[0]:
            best[:] = [metrics[METRIC], metrics["epoch"]]
        tune.report({**metrics, "best_val_hr10": best[0], "best_epoch": best[1]})

    run_epochs(WorkerConfig(ncf, data, ncf.epochs, validate=True, checkpoint=False), report)


@dataclass
class TuneResult:
    """Best NeuMF config (epochs = its best epoch), every trial's score, wall time."""

    best_config: NCFConfig
    best_val_hr10: float
    trials: list[dict[str, Any]]
    duration_s: float


def tune_ncf(
    inner: Any,
    cfg: RecommenderConfig,
    num_samples: int | None = None,
    *,
    storage_path: str | Path | None = None,
) -> TuneResult:
    """Ray Tune + ASHA over cfg.tune, scored by sampled HR@10 on `inner` (the inner-validation
    RecData: penultimate basket held out). Starts Ray via ensure_ray() unless one is running."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if not ray.is_initialized():
        from core.ray_runtime import ensure_ray

        ensure_ray()
    start = time.perf_counter()
    t = cfg.tune
    base = cfg.ncf.model_dump() | {"epochs": t.max_epochs}
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, data=inner, base=base), {"cpu": t.cpus_per_trial}
    )
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    tuner = tune.Tuner(
        trainable,
        param_space={k: tune.choice(v) for k, v in t.search_space().items()},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=num_samples or t.num_samples,
            max_concurrent_trials=t.max_concurrent_trials,
            scheduler=ASHAScheduler(
                max_t=t.max_epochs,
                grace_period=min(t.grace_period, t.max_epochs),
                reduction_factor=t.reduction_factor,
                time_attr="training_iteration",
            ),
        ),
        run_config=tune.RunConfig(
            name=f"recommender-tune-{time.strftime('%Y%m%dT%H%M%S')}",
            storage_path=str(storage_path or Path(tempfile.gettempdir()) / "rp-ray-tune"),
            verbose=0,
        ),
    )
    trials = []
    for r in tuner.fit():
        metrics = r.metrics or {}
        trials.append(
            {
                **r.config,
                "best_val_hr10": metrics.get("best_val_hr10"),
                "best_epoch": metrics.get("best_epoch"),
                "epochs_run": metrics.get("epoch"),
                "error": repr(r.error) if r.error else None,
            }
        )
    scored = [x for x in trials if x["best_val_hr10"] is not None]
    if not scored:
        raise RuntimeError(f"every recommender trial failed: {[x['error'] for x in trials]}")
    best = max(scored, key=lambda x: x["best_val_hr10"])
    update = {k: best[k] for k in t.search_space()} | {"epochs": best["best_epoch"] or t.max_epochs}
    best_cfg = NCFConfig.model_validate(cfg.ncf.model_dump() | update)
    return TuneResult(best_cfg, float(best["best_val_hr10"]), trials, time.perf_counter() - start)


@dataclass
class HybridFit:
    """The served hybrid (NCF trained on `data`, blend fitted on inner) and its inner twin."""

    scorer: Any  # HybridScorer over `data`
    inner_scorer: Any  # HybridScorer over the inner split (NCF trained on inner)
    timings: dict[str, float]


def fit_hybrid(
    inner: Any,
    data: Any,
    cfg: RecommenderConfig,
    *,
    ncf: NCFConfig | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> HybridFit:
    """NCF on `inner` -> blend fitted on inner validation -> NCF on `data` with that blend.

    `inner` is the inner-validation RecData (penultimate basket held out) of the same line
    items as `data`; nothing here looks at `data`'s held-out basket.
    """
    from training.recommending.hybrid import HybridScorer, fit_als, fit_blend

    ncf = ncf or cfg.ncf
    h = cfg.hybrid
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    inner_w = fit_ncf(inner, ncf, validate=True, on_epoch=on_epoch)
    t1 = time.perf_counter()
    sizes = {"n_neighbours": h.n_neighbours, "n_user_neighbours": h.n_user_neighbours,
             "pool": h.pool}  # fmt: skip
    inner_scorer = HybridScorer(inner_w, inner, **sizes, als=fit_als(inner.train, h.als))
    inner_scorer.blend = fit_blend(inner_scorer, h)
    t2 = time.perf_counter()
    weights = fit_ncf(data, ncf, on_epoch=on_epoch)
    t3 = time.perf_counter()
    scorer = HybridScorer(
        weights, data, inner_scorer.blend, **sizes, als=fit_als(data.train, h.als)
    )
    times |= {"ncf_inner_s": t1 - t0, "blend_s": t2 - t1, "ncf_s": t3 - t2}
    times["scorer_s"] = time.perf_counter() - t3
    return HybridFit(scorer, inner_scorer, times)
