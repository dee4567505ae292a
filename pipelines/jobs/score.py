"""Batch scoring on Ray Data: every entity of a model scored, written to PostgreSQL and Redis.

For one model: load the tenant's registered version (champion, or `version`) on the driver,
put it once into Ray's object store, read the input rows (pipelines/jobs/score_inputs.py),
and run them through `ray.data ... map_batches(training.scoring.score_shared)`: map *tasks*,
not an actor pool. Ray reuses its warm worker processes for tasks, and each worker process
builds the scorer from the model ref once per run (a per-process cache keyed by the ref), so a
run pays neither actor start-up nor a model import per actor: with an actor pool those fixed
costs were 9–13 s per run here against ~3 s of work (bench/batch_score.py: 0.24–0.26× of one
process; with tasks 0.89–0.94×). A driver's first run still pays each worker's first import
of the model's modules (torch, sklearn: ~4–5 s on a busy 2-core machine). Workers need no
database, registry or artifact store, which is what makes `ray job submit -- retailpulse
score all` work on a multi-node cluster (tasks spread over its nodes, each fetches the model
from the object store). The driver collects the score rows and writes them with COPY in one
transaction per (tenant, model, version) — a failure anywhere before the commit leaves the
previous rows — then publishes the Redis keys (core/predictions.py). Re-running a version
replaces its rows; rows of other versions stay beside them (the table is keyed by version),
Redis holds the latest scored version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core import events
from core.errors import ModelNotReady, NotFoundError, ValidationFailed
from core.events import Landed
from core.settings import get_settings

# `retailpulse score <target>` → the registered model it scores.
TARGETS = {
    "segments": "segmenter",
    "churn": "churn",
    "recommendations": "recommender",
    "forecasts": "forecaster",
    "anomalies": "anomaly",
}
DEFAULT_BATCH = {"recommendations": 128, "forecasts": 256, "anomalies": 64}
DEFAULT_BATCH_SIZE = 1024
ProgressFn = Callable[[int, int | None], None]  # (rows done so far, total or None)
# `score all` skips a model on these (no champion yet; its features not materialized).
SKIPPABLE = (ModelNotReady, ValidationFailed)


def _spec(target: str) -> Any:
    from training.specs import get_spec

    if target not in TARGETS:
        raise ValidationFailed(
            f"unknown model {target!r}; choose one of: {', '.join(TARGETS)} or all",
            details={"model": target},
        )
    return get_spec(TARGETS[target])


def check_tenant(conn: Any, tenant: str) -> None:
    """NotFoundError unless the warehouse has customers or stores of `tenant`."""
    from core.tenants import validate_tenant

    validate_tenant(tenant)
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = %s)"
        " OR EXISTS (SELECT 1 FROM stores WHERE tenant_id = %s)",
        (tenant, tenant),
    ).fetchone()[0]
    if not found:
        raise NotFoundError(
            f"unknown tenant {tenant!r}: the warehouse has no customers or stores for it",
            details={"tenant": tenant},
        )


def load_model(target: str, tenant: str, version: int | None) -> Any:
    """The registry version to score (registry.Loaded), or a clear error naming what to do."""
    from training import registry

    spec = _spec(target)
    if version is None:
        loaded = registry.load_champion(spec, tenant)
        if loaded is None:
            raise ModelNotReady(
                f"{spec.registered_name(tenant)} has no champion yet: run "
                f"`{spec.train_command}" + (f" --tenant {tenant}`" if tenant != "default" else "`"),
                details={"model": spec.key, "tenant": tenant},
            )
        return loaded
    loaded = registry.load_version(spec, tenant, version)
    if loaded is None:
        known = [r["version"] for r in registry.versions(spec, tenant)]
        raise NotFoundError(
            f"{spec.registered_name(tenant)} has no version {version}"
            f" (registered: {', '.join(sorted(known, key=int)) or 'none'})",
            details={"model": spec.key, "version": str(version)},
        )
    return loaded


# A block holds at most this many batches. Few, big blocks cost less fixed time (measured on
# 2 CPUs: 8 blocks ~0.4 s slower than 2–4 for 2,467 households); two per task slot still let
# a fast worker take over a slow one's share and keep the progress bar moving.
MAX_BATCHES_PER_BLOCK = 32


def block_count(n_rows: int, batch_size: int, slots: int) -> int:
    """How many blocks to cut `n_rows` into for `slots` concurrent tasks: two per slot, more
    only when a block would exceed MAX_BATCHES_PER_BLOCK batches, never more than batches."""
    batches = max(1, -(-n_rows // batch_size))
    return min(batches, max(2 * slots, -(-batches // MAX_BATCHES_PER_BLOCK)))


def run_batches(
    inputs: Any,
    model: Any,
    *,
    batch_size: int,
    concurrency: int | None = None,
    on_progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Score `inputs.rows` with Ray Data map tasks (`inputs.scorer` built once per worker
    process), return the concatenated (entity, payload) rows in the driver. `concurrency`
    caps the tasks running at once (default: as many as the cluster has CPUs)."""
    import ray
    import ray.data

    from core.ray_runtime import ensure_ray
    from training.scoring import score_shared

    ensure_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows its own; Ray's go to the log
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    n = len(inputs.rows)
    if n == 0:
        return pd.DataFrame({"entity": [], "payload": []})
    slots = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    parts = block_count(n, batch_size, slots)
    # Blocks are cut on the driver (views of its frame), not by a repartition task.
    if isinstance(inputs.rows, pd.DataFrame):
        step = -(-n // parts)
        ds = ray.data.from_pandas([inputs.rows.iloc[s : s + step] for s in range(0, n, step)])
    else:
        ds = ray.data.from_items(inputs.rows, override_num_blocks=parts)
    ref = ray.put(model)
    scored = ds.map_batches(
        score_shared,
        fn_args=([ref], inputs.scorer, inputs.kwargs),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.TaskPoolStrategy(size=concurrency) if concurrency else None,
        num_cpus=1,
        zero_copy_batch=True,
    )
    chunks, done = [], 0
    total = n if inputs.scorer.__name__ != "AnomalyScorer" else None
    for batch in scored.iter_batches(batch_size=None, batch_format="pandas"):
        chunks.append(batch[["entity", "payload"]])
        done += len(batch)
        if on_progress:
            on_progress(done, total)
    if not chunks:
        return pd.DataFrame({"entity": [], "payload": []})
    return pd.concat(chunks, ignore_index=True)


def score_model(
    target: str,
    *,
    tenant: str | None = None,
    version: int | None = None,
    limit: int = 20,
    horizon: int = 4,
    days: int = 28,
    batch_size: int | None = None,
    concurrency: int | None = None,
    on_step: Callable[[str], None] | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Score every entity of one model for a tenant; write Postgres + Redis; return a summary
    {target, model, version, run_id, rows, seconds, ...}."""
    import redis

    from core import predictions
    from core.db import connect
    from core.services import get_endpoints
    from pipelines.jobs.score_inputs import BUILDERS

    step = on_step or (lambda text: None)
    tenant = tenant or get_settings().tenant
    spec = _spec(target)
    if not 1 <= limit <= 100:
        raise ValidationFailed(f"limit {limit} is outside 1..100", details={"limit": limit})
    if not 1 <= horizon <= 8:
        raise ValidationFailed(f"horizon {horizon} is outside 1..8", details={"horizon": horizon})
    if not 1 <= days <= 92:
        raise ValidationFailed(f"days {days} is outside 1..92", details={"days": days})
    if batch_size is not None and batch_size < 1:
        raise ValidationFailed("batch size must be at least 1", details={"batch_size": batch_size})
    endpoints = get_endpoints()
    start = time.perf_counter()
    with connect(endpoints.database_url) as conn:
        check_tenant(conn, tenant)
        step(f"{target}: loading {spec.registered_name(tenant)}")
        loaded = load_model(target, tenant, version)
        step(f"{target}: reading inputs for v{loaded.version}")
        inputs = BUILDERS[target](
            conn, tenant, loaded.model, limit=limit, horizon=horizon, days=days
        )
    size = batch_size or DEFAULT_BATCH.get(target, DEFAULT_BATCH_SIZE)
    step(f"{target}: scoring {len(inputs):,} rows on Ray Data (v{loaded.version})")
    scored_at = datetime.now(UTC)
    rows = run_batches(
        inputs, loaded.model, batch_size=size, concurrency=concurrency, on_progress=on_progress
    )
    scoring_s = time.perf_counter() - start
    step(f"{target}: writing {len(rows):,} rows")
    with connect(endpoints.database_url) as conn:
        written = predictions.replace_predictions(
            conn,
            tenant=tenant,
            model=spec.key,
            version=int(loaded.version),
            run_id=loaded.run_id,
            scored_at=scored_at,
            rows=rows,
        )
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        keys = predictions.publish(
            client,
            tenant=tenant,
            model=spec.key,
            version=int(loaded.version),
            run_id=loaded.run_id,
            scored_at=scored_at,
            rows=rows,
            meta=inputs.meta,
        )
    finally:
        client.close()
    events.after_commit(
        Landed(
            tenant=tenant,
            source="score",
            model=spec.key,
            details=(("version", int(loaded.version)),),
        )
    )
    return {
        "target": target,
        "model": spec.key,
        "tenant": tenant,
        "version": loaded.version,
        "run_id": loaded.run_id,
        "inputs": len(inputs),
        "work": inputs.work,
        "rows": written,
        "redis_keys": keys,
        "scored_at": scored_at.isoformat(),
        "seconds": round(time.perf_counter() - start, 2),
        "scoring_seconds": round(scoring_s, 2),
        "notes": inputs.notes,
    }


def score_all(
    *,
    tenant: str | None = None,
    on_model: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Score every model that has a champion; the others come back as
    {target, skipped: reason} (not trained yet → the command to run)."""
    out = []
    for target in TARGETS:
        try:
            summary = score_model(target, tenant=tenant, **options)
        except SKIPPABLE as exc:
            summary = {"target": target, "skipped": exc.message}
        out.append(summary)
        if on_model:
            on_model(summary)
    return out
