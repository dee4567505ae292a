"""Online feature read latency: OnlineFeatureReader vs Feast's get_online_features vs raw HGETALL.

Same process, same customer, same Redis: 1 customer x 11 features of customer_rfm_fv.
Assumes the features were materialized (`make demo` or `retailpulse features materialize`);
exits 2 with a message otherwise. Prints one JSON object.
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


def _pick_customer(database_url: str, tenant: str) -> int | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT customer_id FROM customer_rfm WHERE tenant_id = %s"
            " ORDER BY event_timestamp DESC, customer_id LIMIT 1",
            (tenant,),
        ).fetchone()
    return row[0] if row else None


def main(argv: list[str] | None = None) -> int:
    from core.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenant", default=None, help="tenant (default: settings)")
    parser.add_argument("--database-url", default=None, help="default: get_endpoints()")
    parser.add_argument("--redis-url", default=None, help="default: get_endpoints()")
    parser.add_argument("--customer-id", type=int, default=None, help="default: one materialized")
    parser.add_argument("-n", type=int, default=1000, help="timed reads per method")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)

    from features.names import FEATURE_VIEW, JOIN_KEY, SEGMENTER_FEATURES, SEGMENTER_REFS
    from features.online import OnlineFeatureReader
    from features.store import get_feature_store, project_for, service_urls

    tenant = args.tenant or get_settings().tenant
    if args.database_url is None or args.redis_url is None:
        db_default, redis_default = service_urls()
        args.database_url = args.database_url or db_default
        args.redis_url = args.redis_url or redis_default
    project = project_for(tenant)
    reader = OnlineFeatureReader(args.redis_url, project, FEATURE_VIEW, SEGMENTER_FEATURES)

    customer_id = args.customer_id or _pick_customer(args.database_url, tenant)
    if customer_id is None or reader.get(customer_id) is None:
        print(
            f"no online features for tenant {tenant!r} (project {project!r}, customer "
            f"{customer_id}) in {args.redis_url}: run `make demo` or "
            "`retailpulse features materialize` first",
            file=sys.stderr,
        )
        return 2

    store = get_feature_store(tenant, database_url=args.database_url, redis_url=args.redis_url)
    entity_rows = [{JOIN_KEY: customer_id}]
    key = reader.key(customer_id)
    raw = reader._client

    ours = _time(lambda: reader.get(customer_id), args.n, args.warmup)
    feast = _time(
        lambda: store.get_online_features(
            features=SEGMENTER_REFS, entity_rows=entity_rows
        ).to_dict(),
        args.n,
        args.warmup,
    )
    direct = _time(lambda: raw.hgetall(key), args.n, args.warmup)
    result = {
        "figure": "online_features",
        "data": f"tenant {tenant}, 1 customer x {len(SEGMENTER_FEATURES)} features "
        f"of {FEATURE_VIEW} (Redis, Feast layout)",
        "n": args.n,
        "value": round(ours[0], 4),
        "unit": "ms",
        "baseline": "feast FeatureStore.get_online_features(...).to_dict()",
        "baseline_value": round(feast[0], 4),
        "ratio": round(ours[0] / feast[0], 3),
        "ratio_definition": "value / baseline_value (p50 latency; lower is faster)",
        "p50": round(ours[0], 4),
        "p99": round(ours[1], 4),
        "feast_sdk_p50": round(feast[0], 4),
        "feast_sdk_p99": round(feast[1], 4),
        "direct_redis_p50": round(direct[0], 4),
        "direct_redis_p99": round(direct[1], 4),
        "direct_redis": "HGETALL of the same key, no decoding",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
