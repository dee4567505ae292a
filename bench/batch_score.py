"""Ray Data batch scoring of recommendations vs the same scorer in one process.

    python bench/batch_score.py [--home DIR] [--tenant T] [--repeat 3] [--batch-size 128]
                                [--concurrency N] [--limit 20]

Uses the configured services (RETAILPULSE_* or `--home` for the embedded ones) and the tenant's
recommender champion: train one first (`retailpulse train recommender --quick`). Both paths
score the same rows: every household the model knows × its precomputed candidate set (the
hybrid's NCF and blend features re-computed, top `--limit` kept), output collected in the
driver as (entity, payload) rows. Measured: `pipelines.jobs.score.run_batches` (Ray Data
`map_batches` tasks on Ray's worker processes, the model put once into the object store and
unpickled once per worker process) end to end on a running Ray: model put, dataset creation,
scheduling, scoring, collection. Baseline: `training.scoring.RecommendationScorer` called batch
by batch in this process. Runs are interleaved, the median of `--repeat` is reported;
`ray.init` is reported apart (a submitted job finds its cluster running), and so is the first
Ray run (`ray_data_first_s`): it includes each worker process's first import of the model's
modules (torch, scipy, sklearn), which this process — the baseline — did before timing, when it
loaded the model. Nothing is written to PostgreSQL or Redis. The process re-runs itself with
core.ray_runtime.MALLOC_ENV so both sides share the malloc settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.ray_runtime import MALLOC_ENV  # noqa: E402


def _in_process(inputs, bundle, batch_size: int) -> tuple[float, int]:
    import pandas as pd

    from training.scoring import frame_of

    start = time.perf_counter()
    scorer = inputs.scorer(bundle, **inputs.kwargs)
    rows, parts = inputs.rows, []
    for s in range(0, len(rows), batch_size):
        part = rows.iloc[s : s + batch_size]
        parts.append(frame_of(scorer({c: part[c].to_numpy() for c in part.columns})))
    out = pd.concat(parts, ignore_index=True)
    return time.perf_counter() - start, len(out)


def _ray_data(inputs, bundle, batch_size: int, concurrency: int | None) -> tuple[float, int]:
    from pipelines.jobs.score import run_batches

    start = time.perf_counter()
    out = run_batches(inputs, bundle, batch_size=batch_size, concurrency=concurrency)
    return time.perf_counter() - start, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="RETAILPULSE_HOME holding the services and registry")
    parser.add_argument("--tenant", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    if args.home:
        os.environ["RETAILPULSE_HOME"] = args.home

    import ray

    from core.db import connect
    from core.ray_runtime import ensure_ray
    from core.services import get_endpoints
    from core.settings import get_settings
    from pipelines.jobs.score import load_model
    from pipelines.jobs.score_inputs import recommendations

    tenant = args.tenant or get_settings().tenant
    loaded = load_model("recommendations", tenant, None)
    with connect(get_endpoints().database_url) as conn:
        inputs = recommendations(conn, tenant, loaded.model, limit=args.limit)
    t0 = time.perf_counter()
    ensure_ray()
    init_s = time.perf_counter() - t0
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray_s, base_s = [], []
    for _ in range(args.repeat):
        s, n_ray = _ray_data(inputs, loaded.model, args.batch_size, args.concurrency)
        ray_s.append(s)
        s, n_base = _in_process(inputs, loaded.model, args.batch_size)
        base_s.append(s)
    assert n_ray == n_base == len(inputs), (n_ray, n_base, len(inputs))
    ray_med, base_med = statistics.median(ray_s), statistics.median(base_s)
    value, baseline = inputs.work / ray_med, inputs.work / base_med
    print(
        json.dumps(
            {
                "figure": "batch_score_recommendations",
                "data": f"tenant {tenant}: {len(inputs)} households x "
                f"{loaded.model.candidate_items.shape[1]} candidates, {loaded.name} "
                f"v{loaded.version}, top {args.limit}",
                "n": inputs.work,
                "value": round(value, 1),
                "unit": "household x candidate pairs/s (end to end, Ray running)",
                "baseline": "same RecommendationScorer in one process, same batches",
                "baseline_value": round(baseline, 1),
                "ratio": round(value / baseline, 3),
                "ray_data_s": [round(s, 3) for s in ray_s],
                "in_process_s": [round(s, 3) for s in base_s],
                "ray_data_first_s": round(ray_s[0], 3),
                "ray_init_s": round(init_s, 2),
                "batch_size": args.batch_size,
                "concurrency": args.concurrency or f"auto ({cpus} CPUs)",
                "repeat": args.repeat,
                "malloc_env": MALLOC_ENV,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
