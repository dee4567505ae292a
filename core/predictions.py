"""Batch predictions: the `predictions` table (PostgreSQL) and the serving keys (Redis).

Table: one row per (tenant_id, model, model_version, entity) with the MLflow run id, the time
of scoring and a JSON payload. `replace_predictions` swaps a version's rows in one
transaction (DELETE + COPY): a failure midway leaves the previous rows; other versions' rows
stay beside them, so a champion and a challenger can be compared row by row.

Redis, what serving reads (one JSON string per entity, `pred:{tenant}:{model}:{entity}`):
`{"model", "version", "runId", "scoredAt", ...payload}`, the latest scored version of the
model; `predmeta:{tenant}:{model}` holds {version, runId, scoredAt, rows} and what the model's
scorer adds (the forecaster: the state of its inputs, origin week and horizon, which the
forecast route checks before it answers from these keys). A re-run overwrites
the keys and deletes those of entities it no longer scored. Feast's keys are binary entity
keys ending with the project name and never start with `pred`, so they are not touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from core.bulk import copy_frame

COLUMNS = ["tenant_id", "model", "model_version", "entity", "run_id", "scored_at", "payload"]
REDIS_CHUNK = 1000


def redis_key(tenant: str, model: str, entity: str) -> str:
    """The serving key of one entity's batch prediction."""
    return f"pred:{tenant}:{model}:{entity}"


def meta_key(tenant: str, model: str) -> str:
    return f"predmeta:{tenant}:{model}"


def inputs_digest(values: np.ndarray, labels: Sequence[str]) -> str:
    """A short digest of one entity's model inputs (numbers compared as float32, the model's
    precision, and text labels): kept with a batch score so that serving can tell whether the
    inputs it reads now are the ones that were scored."""
    digest = hashlib.blake2b(np.ascontiguousarray(values, np.float32).tobytes(), digest_size=8)
    digest.update("\x1f".join(labels).encode())
    return digest.hexdigest()


def forecast_digest(
    history: np.ndarray, labels: Sequence[str], *, lookback: int, active: bool
) -> str:
    """`inputs_digest` of what decides a forecast: the last `lookback` weeks of the units
    history (what the model reads), whether the model answers at all (`active`: enough weeks
    with sales; else the mean of the last 4 weeks) and the static values. Older weeks are
    left out: the online row of a pair does not cover its oldest week when its newest row is
    after the origin, while the offline tables the batch reads do."""
    values = np.append(np.asarray(history, np.float64)[-lookback:], float(active))
    return inputs_digest(values, labels)


def replace_predictions(
    conn: psycopg.Connection,
    *,
    tenant: str,
    model: str,
    version: int,
    run_id: str,
    scored_at: datetime,
    rows: pd.DataFrame,
) -> int:
    """Replace the rows of (tenant, model, version) with `rows` (columns entity, payload as a
    JSON string) in one transaction via COPY; returns rows written. Duplicate or empty
    entities are refused before anything is deleted."""
    if scored_at.tzinfo is None:
        raise ValueError("scored_at must be timezone-aware")
    entities = rows["entity"]
    if entities.isna().any() or (entities.astype(str) == "").any():
        raise ValueError(f"{model} v{version}: a score row has no entity")
    dupes = entities[entities.duplicated()].astype(str).unique()[:5].tolist()
    if dupes:
        raise ValueError(f"{model} v{version}: entities scored twice: {dupes}")
    frame = pd.DataFrame(
        {
            "tenant_id": tenant,
            "model": model,
            "model_version": int(version),
            "entity": entities.astype(str).to_numpy(),
            "run_id": run_id,
            "scored_at": scored_at,
            "payload": rows["payload"].to_numpy(),
        }
    )
    with conn.transaction():
        conn.execute(
            "DELETE FROM predictions WHERE tenant_id = %s AND model = %s AND model_version = %s",
            (tenant, model, int(version)),
        )
        written = copy_frame(conn, "predictions", frame, COLUMNS) if len(frame) else 0
    return written


def read_predictions(
    conn: psycopg.Connection,
    *,
    tenant: str,
    model: str,
    version: int | None = None,
    entities: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Stored rows of a model (one version, or all), optionally for some entities only."""
    sql = (
        "SELECT model, model_version, entity, run_id, scored_at, payload FROM predictions"
        " WHERE tenant_id = %s AND model = %s"
    )
    params: list[Any] = [tenant, model]
    if version is not None:
        sql += " AND model_version = %s"
        params.append(int(version))
    if entities is not None:
        sql += " AND entity = ANY(%s)"
        params.append([str(e) for e in entities])
    rows = conn.execute(sql + " ORDER BY model_version, entity", params).fetchall()
    keys = ("model", "version", "entity", "run_id", "scored_at", "payload")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def count_predictions(conn: psycopg.Connection, *, tenant: str, model: str) -> dict[int, int]:
    """Rows per stored version of a model."""
    rows = conn.execute(
        "SELECT model_version, count(*) FROM predictions WHERE tenant_id = %s AND model = %s"
        " GROUP BY model_version ORDER BY model_version",
        (tenant, model),
    ).fetchall()
    return {int(v): int(n) for v, n in rows}


def publish(
    client: Any,
    *,
    tenant: str,
    model: str,
    version: int,
    run_id: str,
    scored_at: datetime,
    rows: pd.DataFrame,
    meta: dict[str, Any] | None = None,
) -> int:
    """Write the serving keys of `rows` (MSET in chunks through a pipeline), delete the keys
    of entities this run no longer scored, and update the model's meta key (with `meta`'s
    extra fields: what serving checks before it uses the scores); returns keys set."""
    head = {"model": model, "version": str(version), "runId": run_id}
    head["scoredAt"] = scored_at.isoformat()
    prefix = json.dumps(head, separators=(",", ":"))[:-1]  # '{"model":…' without the '}'
    keep: set[bytes] = set()
    entities = rows["entity"].astype(str).to_numpy()
    payloads = rows["payload"].to_numpy()
    for start in range(0, len(rows), REDIS_CHUNK):
        chunk = {}
        for entity, payload in zip(
            entities[start : start + REDIS_CHUNK],
            payloads[start : start + REDIS_CHUNK],
            strict=True,
        ):
            key = redis_key(tenant, model, entity)
            body = payload[1:-1]
            chunk[key] = f"{prefix},{body}}}" if body else f"{prefix}}}"
            keep.add(key.encode())
        client.mset(chunk)
    stale = [
        k for k in client.scan_iter(match=f"pred:{tenant}:{model}:*", count=1000) if k not in keep
    ]
    for start in range(0, len(stale), REDIS_CHUNK):
        client.delete(*stale[start : start + REDIS_CHUNK])
    client.set(meta_key(tenant, model), json.dumps({**(meta or {}), **head, "rows": len(rows)}))
    return len(keep)


def read_served(client: Any, *, tenant: str, model: str, entity: str) -> dict[str, Any] | None:
    """The serving key of one entity, decoded (None when absent)."""
    raw = client.get(redis_key(tenant, model, entity))
    return None if raw is None else json.loads(raw)
