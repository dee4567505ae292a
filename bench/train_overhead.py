"""Ray Train overhead for the LSTM forecaster: TorchTrainer (1 worker) vs the same loop in-process.

    python bench/train_overhead.py [forecaster] [--epochs 3] [--repeat 3]
    python bench/train_overhead.py recommender [...]   (runs bench/train_overhead_recommender.py)

Both paths run `training.trainers.forecaster.run_epochs` on the same protocol panel (500 series,
origin 44) for the same epochs. Prints one JSON object: training samples/s inside the loop
(ratio Ray / plain, median over interleaved repeats) and the fixed cost per run: `warm` = a
TorchTrainer.fit on an already-running Ray minus the loop's own time, `cold` = that plus
ray.init and ray.shutdown (what a one-off CLI run pays). Ray starts as `retailpulse train`
starts it (core.ray_runtime.start_local: MALLOC_ENV in the raylet's environment, so workers need
no runtime_env and actors can take pre-started processes), alternated with the start used
before (MALLOC_ENV as the job's runtime_env: `fixed_cost_cold_previous_start_s`). On the former
the trainer (training.trainers.torch_trainer) also leaves out Train V2's cluster-only actors
(autoscaling coordinator, placement-group cleaner, preemption watcher) and runs its controller
without a runtime_env; on the latter it is Ray's TorchTrainer but for the unused DatasetManager.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.ray_runtime import MALLOC_ENV  # noqa: E402


def _plain(wc) -> dict:
    from training.trainers.forecaster import run_epochs

    reports: list[dict] = []
    start = time.perf_counter()

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        reports.append(metrics)
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    run_epochs(wc, report)
    wall = time.perf_counter() - start
    epochs = [r for r in reports if "samples" in r]
    samples = sum(r["samples"] for r in epochs)
    train_s = sum(r["epoch_s"] for r in epochs)
    return {"samples_per_s": samples / train_s, "wall_s": wall, "loop_s": reports[-1]["loop_s"]}


def ray_init(tmp: str, platform: bool = True) -> float:
    """Start a private local Ray (2 CPUs, malloc env for every worker); returns the seconds it
    took. `platform`: as `retailpulse train` starts it (core.ray_runtime.start_local: the env
    through the raylet's environment); else as before (the env as the job's runtime_env), for
    comparison in the same run."""
    import ray

    from core.ray_runtime import start_local

    options = {
        "include_dashboard": False,
        "_temp_dir": tmp,
        "logging_level": "ERROR",
        "log_to_driver": False,
    }
    start = time.perf_counter()
    if platform:
        start_local(MALLOC_ENV, num_cpus=2, **options)
    else:
        ray.init(address="local", num_cpus=2, runtime_env={"env_vars": dict(MALLOC_ENV)}, **options)
    return time.perf_counter() - start


def _epoch_log(path: str):
    """A Train V2 callback (runs in the controller) appending every epoch's metrics to `path`:
    V2 keeps metrics only with checkpoints, and the loop checkpoints only on improvement."""
    from ray.train import UserCallback

    class EpochLog(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            with open(path, "a") as fh:
                fh.write(json.dumps(metrics[0]) + "\n")

    return EpochLog()


def _ray(cfg, panel, epochs: int, storage: str) -> dict:
    from training.trainers.forecaster import build_trainer

    log = tempfile.mktemp(prefix="rp-epochs-", suffix=".jsonl", dir=storage.rsplit("/", 1)[0])
    start = time.perf_counter()
    trainer = build_trainer(
        cfg, panel, 44, storage_path=storage, max_epochs=epochs, callbacks=[_epoch_log(log)]
    )
    trainer.fit()
    wall = time.perf_counter() - start
    hist = [json.loads(line) for line in Path(log).read_text().splitlines()]
    epochs_ = [h for h in hist if "samples" in h]
    samples = sum(h["samples"] for h in epochs_)
    train_s = sum(h["epoch_s"] for h in epochs_)
    loop_s = float(hist[-1]["loop_s"])  # from the worker function's entry: imports included
    return {
        "samples_per_s": samples / train_s,
        "wall_s": wall,
        "loop_s": loop_s,
        "fixed_s": wall - loop_s,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "recommender":  # NCF: its own script, same output
        script = Path(__file__).with_name("train_overhead_recommender.py")
        os.execv(sys.executable, [sys.executable, str(script), *sys.argv[2:]])
    if len(sys.argv) > 1 and sys.argv[1] == "forecaster":
        sys.argv.pop(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

    import ray

    from training.forecasting.config import load_forecaster_config
    from training.forecasting.evaluate import protocol_panel
    from training.forecasting.panel import protocol_frame
    from training.trainers.forecaster import WorkerConfig

    cfg = load_forecaster_config()
    # One member, fixed epochs, no refit: both paths do the same work and save one checkpoint.
    lstm = cfg.lstm.model_copy(update={"patience": 10**6, "n_seeds": 1, "refit": False})
    cfg = cfg.model_copy(update={"lstm": lstm})
    panel = protocol_panel(protocol_frame(cfg.n_series), cfg.n_series)
    wc = WorkerConfig(cfg.lstm, 44, panel, args.epochs, final=True, patience=10**6)

    tmp = tempfile.mkdtemp(prefix="rpbench", dir="/tmp")
    plain, rayed, cold, cold_bare = [], [], [], []

    def cold_run(tag: str, platform: bool) -> tuple[dict, float]:
        init_s = ray_init(f"{tmp}/{tag}", platform=platform)
        run = _ray(cfg, panel, args.epochs, f"{tmp}/store")
        start = time.perf_counter()
        ray.shutdown()
        shutdown_s = time.perf_counter() - start
        print(
            f"{tag}: ray {run['samples_per_s']:.0f}/s, platform start {platform}, init {init_s:.1f}s"
            f" fixed {run['fixed_s']:.1f}s shutdown {shutdown_s:.1f}s",
            file=sys.stderr,
        )
        return run, init_s + run["fixed_s"] + shutdown_s

    try:
        for i in range(args.repeat):
            plain.append(_plain(wc))
            print(f"repeat {i}: plain {plain[-1]['samples_per_s']:.0f}/s", file=sys.stderr)
            # the platform's start and the previous one, alternated
            for platform in (True, False) if i % 2 == 0 else (False, True):
                run, total = cold_run(f"r{i}{'p' if platform else 'b'}", platform)
                if platform:
                    rayed.append(run)
                    cold.append(total)
                else:
                    cold_bare.append(total)
        # warm: one Ray, several fits in a row (how train-all and Tune use it)
        ray_init(f"{tmp}/warm")
        warm = [_ray(cfg, panel, args.epochs, f"{tmp}/store") for _ in range(args.repeat)]
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratios = [r["samples_per_s"] / p["samples_per_s"] for r, p in zip(rayed, plain, strict=True)]
    med = statistics.median
    print(
        json.dumps(
            {
                "figure": "forecaster_train_overhead",
                "data": f"forecast_cj panel, {panel.n_series} series, origin 44, {args.epochs} epochs, "
                f"LSTM {cfg.lstm.hidden1}/{cfg.lstm.hidden2}, lookback {cfg.lstm.lookback}",
                "n": args.repeat,
                "value": round(med(r["samples_per_s"] for r in rayed), 1),
                "unit": "training samples/s (TorchTrainer, 1 worker)",
                "baseline": "same run_epochs loop in a plain process",
                "baseline_value": round(med(p["samples_per_s"] for p in plain), 1),
                "ratio": round(med(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
                "fixed_cost_cold_s": round(med(cold), 1),
                "fixed_cost_warm_s": round(med(w["fixed_s"] for w in warm), 1),
                "fixed_cost_cold_runs_s": [round(c, 1) for c in cold],
                "fixed_cost_cold_previous_start_s": round(med(cold_bare), 1),
                "fixed_cost_cold_previous_start_runs_s": [round(c, 1) for c in cold_bare],
                "fixed_cost_warm_runs_s": [round(w["fixed_s"], 1) for w in warm],
                "plain_wall_s": round(med(p["wall_s"] for p in plain), 1),
                "ray_wall_s": round(med(r["wall_s"] for r in rayed), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
