"""Ray Train overhead for NeuMF: TorchTrainer (1 worker, and 2-worker DDP) vs the plain loop.

    python bench/train_overhead_recommender.py [--households 800] [--epochs 1] [--repeat 2]

Both paths run `training.trainers.recommender.run_epochs` on the same recsys_cj train matrix
(first N Complete Journey households, test split) for the same epochs. Prints one JSON object:
training samples/s inside the loop (ratio TorchTrainer / plain, median over interleaved
repeats), the fixed cost per TorchTrainer run (`warm`: fit on a running Ray minus the loop's
own time; `cold`: plus ray.init and ray.shutdown), and the 2-worker DDP throughput.
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

from train_overhead import ray_init  # noqa: E402  (same folder: bench/)

from core.ray_runtime import MALLOC_ENV  # noqa: E402


def _plain(data, cfg, epochs: int) -> dict:
    from training.trainers.recommender import WorkerConfig, run_epochs

    reports: list[dict] = []
    start = time.perf_counter()
    run_epochs(WorkerConfig(cfg.ncf, data, epochs), lambda m, d: _keep(reports, m, d))
    wall = time.perf_counter() - start
    samples = sum(r["samples"] for r in reports)
    return {"samples_per_s": samples / sum(r["epoch_s"] for r in reports), "wall_s": wall}


def _keep(reports: list[dict], metrics: dict, checkpoint_dir: str | None) -> None:
    reports.append(metrics)
    if checkpoint_dir:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _epoch_log(path: str):
    """A Train V2 callback appending every rank's per-epoch metrics to `path` (V2 keeps metrics
    only with checkpoints, which the loop writes on its last epoch only)."""
    from ray.train import UserCallback

    class EpochLog(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            with open(path, "a") as fh:
                fh.write(json.dumps(metrics) + "\n")

    return EpochLog()


def _ray(data_ref, cfg, epochs: int, storage: str) -> dict:
    from training.trainers.recommender import build_trainer

    log = tempfile.mktemp(prefix="rp-rec-epochs-", suffix=".jsonl", dir=storage.rsplit("/", 1)[0])
    start = time.perf_counter()
    trainer = build_trainer(
        cfg, data_ref, epochs=epochs, storage_path=storage, callbacks=[_epoch_log(log)]
    )
    trainer.fit()
    wall = time.perf_counter() - start
    hist = [json.loads(line) for line in Path(log).read_text().splitlines()]
    # every rank trains on its shard at the same time: throughput = all ranks' samples / time
    samples = sum(sum(r["samples"] for r in ranks) for ranks in hist)
    train_s = sum(max(r["epoch_s"] for r in ranks) for ranks in hist)
    loop_s = max(r["loop_s"] for r in hist[-1])  # from the worker function's entry
    return {
        "samples_per_s": samples / train_s,
        "wall_s": wall,
        "loop_s": loop_s,
        "fixed_s": wall - loop_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

    import ray

    from training.datasets import cj_line_items
    from training.recommending.config import load_recommender_config
    from training.recommending.data import protocol_split

    cfg = load_recommender_config()
    data = protocol_split(*cj_line_items(args.households))
    tmp = tempfile.mkdtemp(prefix="rpbench-rec", dir="/tmp")
    plain, rayed, cold = [], [], []
    try:
        for i in range(args.repeat):
            plain.append(_plain(data, cfg, args.epochs))
            init_s = ray_init(f"{tmp}/r{i}")
            rayed.append(_ray(ray.put(data), cfg, args.epochs, f"{tmp}/store"))
            start = time.perf_counter()
            ray.shutdown()
            cold.append(init_s + rayed[-1]["fixed_s"] + time.perf_counter() - start)
            print(
                f"repeat {i}: plain {plain[-1]['samples_per_s']:.0f}/s, "
                f"ray {rayed[-1]['samples_per_s']:.0f}/s, fixed {rayed[-1]['fixed_s']:.1f}s",
                file=sys.stderr,
            )
        ray_init(f"{tmp}/warm")
        ref = ray.put(data)
        warm = [_ray(ref, cfg, args.epochs, f"{tmp}/store") for _ in range(args.repeat)]
        ddp_cfg = cfg.model_copy(update={"num_workers": 2})
        ddp = _ray(ref, ddp_cfg, args.epochs, f"{tmp}/store")
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratios = [r["samples_per_s"] / p["samples_per_s"] for r, p in zip(rayed, plain, strict=True)]
    med = statistics.median
    plain_sps = med(p["samples_per_s"] for p in plain)
    print(
        json.dumps(
            {
                "figure": "recommender_train_overhead",
                "data": f"recsys_cj test split of the first {args.households} CJ households "
                f"({data.n_users} users x {data.n_items} items, {data.train.nnz} positives, "
                f"n_neg {cfg.ncf.n_neg}), {args.epochs} epoch(s), NeuMF {cfg.ncf.gmf_dim}/"
                f"{cfg.ncf.mlp_layers}",
                "n": args.repeat,
                "value": round(med(r["samples_per_s"] for r in rayed), 1),
                "unit": "training samples/s (TorchTrainer, 1 worker)",
                "baseline": "same run_epochs loop in a plain process",
                "baseline_value": round(plain_sps, 1),
                "ratio": round(med(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
                "goal_ratio": 0.95,
                "fixed_cost_cold_s": round(med(cold), 1),
                "fixed_cost_warm_s": round(med(w["fixed_s"] for w in warm), 1),
                "fixed_cost_cold_runs_s": [round(c, 1) for c in cold],
                "fixed_cost_warm_runs_s": [round(w["fixed_s"], 1) for w in warm],
                "goal_fixed_cost_s": 10,
                "ddp_2_workers_samples_per_s": round(ddp["samples_per_s"], 1),
                "ddp_2_workers_ratio_to_plain": round(ddp["samples_per_s"] / plain_sps, 3),
                "ddp_2_workers_fixed_s": round(ddp["fixed_s"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
