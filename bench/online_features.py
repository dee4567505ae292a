"""Online feature read latency: our OnlineReader vs Feast's get_online_features, same process.

Reads N entities × F features of one feature view in one call (default: 100 store × product
pairs × 20 features of store_product_weekly_fv, the forecast route's read; `--view
customer_rfm_fv` for customers). Entities are real rows of the view's table, materialized by
`make demo` or `retailpulse features materialize`; exits 2 with a message otherwise. The
baseline (Feast's SDK on the same entities and features) runs in the same process. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import psycopg


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return p50 / 1e6, p99 / 1e6


def _time(fn: Callable[[], object], n: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        fn()
        samples.append(clock() - start)
    return _percentiles(samples)


def _pick_entities(database_url: str, table: str, keys: list[str], tenant: str, n: int) -> list:
    """The n entities with the newest rows (they are in the online store after materialize)."""
    cols = ", ".join(keys)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT {cols} FROM (SELECT DISTINCT ON ({cols}) {cols}, event_timestamp FROM {table}"
            f" WHERE tenant_id = %s ORDER BY {cols}, event_timestamp DESC) t"
            f" ORDER BY event_timestamp DESC, {cols} LIMIT %s",
            (tenant, n),
        ).fetchall()
    return [tuple(r) for r in rows]


def main(argv: list[str] | None = None) -> int:
    from core.settings import get_settings
    from features.catalog import FEATURE_VIEWS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--view", default="store_product_weekly_fv", choices=sorted(FEATURE_VIEWS))
    parser.add_argument("--entities", type=int, default=100, help="entities per read")
    parser.add_argument("--features", type=int, default=20, help="features per entity")
    parser.add_argument("--tenant", default=None, help="tenant (default: settings)")
    parser.add_argument("-n", type=int, default=300, help="timed reads per method")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)

    from features.online import OnlineReader
    from features.store import get_feature_store, project_for, service_urls

    spec = FEATURE_VIEWS[args.view]
    features = spec.feature_names[: args.features]
    tenant = args.tenant or get_settings().tenant
    database_url, redis_url = service_urls()
    project = project_for(tenant)
    reader = OnlineReader.from_url(redis_url, project, spec, features=features)
    keys = list(spec.join_keys)
    entities = _pick_entities(database_url, spec.table, keys, tenant, args.entities)
    if len(entities) < args.entities or not reader.get_matrix(entities)[1].all():
        print(
            f"not enough online rows of {spec.name} for tenant {tenant!r} (project {project!r}):"
            " run `make demo` or `retailpulse features materialize` first",
            file=sys.stderr,
        )
        return 2
    store = get_feature_store(tenant)
    refs = [f"{spec.name}:{f}" for f in features]
    entity_rows = [dict(zip(keys, e, strict=True)) for e in entities]

    ours = _time(lambda: reader.get_matrix(entities), args.n, args.warmup)
    as_dicts = _time(lambda: reader.get_many(entities), args.n, args.warmup)
    feast = _time(
        lambda: store.get_online_features(features=refs, entity_rows=entity_rows).to_dict(),
        max(30, args.n // 5),
        5,
    )
    single = _time(lambda: reader.get(entities[0]), args.n, args.warmup)
    result = {
        "figure": "online_features",
        "data": f"tenant {tenant}: {len(entities)} entities x {len(features)} features of "
        f"{spec.name} per read (Redis, Feast layout)",
        "n": args.n,
        "value": round(ours[1], 3),
        "unit": "ms (p99 per read)",
        "goal": "p99 <= 3 ms for 100 entities x 20 features",
        "baseline": "feast FeatureStore.get_online_features(...).to_dict(), same entities",
        "baseline_value": round(feast[1], 3),
        "ratio": round(ours[1] / feast[1], 3),
        "ratio_definition": "value / baseline_value (p99 latency; lower is faster)",
        "p50": round(ours[0], 3),
        "p99": round(ours[1], 3),
        "feast_sdk_p50": round(feast[0], 3),
        "feast_sdk_p99": round(feast[1], 3),
        "measured": "OnlineReader.get_matrix (float matrix, one round trip)",
        "dicts_p50": round(as_dicts[0], 3),
        "dicts_p99": round(as_dicts[1], 3),
        "one_entity_p50": round(single[0], 3),
        "one_entity_p99": round(single[1], 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
