"""Stream end to end: Complete Journey baskets → Kafka → warehouse commit → online RFM update.

N baskets (default 100,000, in time order) are serialized up front; a separate producer
process sends them as fast as the broker takes them (or at `--rate` baskets/s) onto fresh
topics, uncompressed as `retailpulse produce-sample` sends (`--compression gzip` to compress),
while `retailpulse consume`'s loop (batches of up to `--max-batch`) runs here. Measured:
messages/s from the first send to the last batch's warehouse commit + online write, and the
freshness lag of each message (its Kafka timestamp at send → its customer's features written
to Redis, i.e. readable by serving). Baseline, same run: the same loop committing one message
per batch (what a naive consumer does), on the first `--baseline-n` baskets of another slice.
Whether the consumer keeps up with `--rate`: the p99 lag of each quarter of the messages (in
commit order; rising quarter by quarter means a growing backlog) and the messages/s committed
after the first quarter (its pace past the start-up).
`--warm N` streams the N baskets before the timed ones first, untimed, so the timed run lands
on a warehouse and online store with their history (a consumer restarted on a running
platform: each returning customer's history is read once). Each run uses a fresh, migrated
database on the configured server (dropped afterwards) and a private Feast project in Redis
(keys removed afterwards). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import statistics
import time
import uuid

import psycopg


def _send(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    keys: list[bytes],
    rate,
    compression,
    linger_ms: int,
) -> None:
    from kafka import KafkaProducer

    # A forked child inherits the parent's heap (the loaded Complete Journey frames, every
    # message): left to the collector, each full collection would walk it and copy the pages
    # it touches. Frozen, only the sender's own objects are collected.
    gc.freeze()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        batch_size=1024 * 1024,
        acks=1,
        compression_type=compression,
    )
    start = time.perf_counter()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if rate:
            # paced in 2 ms ticks: a sleep per message (0.2 ms apart at 5,000/s) made this load
            # generator cost a third more CPU, taken from the consumer on a 2-core machine
            wait = start + i / rate - time.perf_counter()
            if wait > 0.002:
                time.sleep(wait)
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def _cpu_by_program() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the machine's PostgreSQL, broker and Redis
    processes (/proc; each program's processes and the children they have reaped)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {"postgres": "postgres", "tansu": "broker", "redis-server": "redis"}
    out = dict.fromkeys(names.values(), 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = next((v for k, v in names.items() if comm.startswith(k)), None)
        if name is not None:
            fields = stat[stat.rindex(")") + 2 :].split()
            # its own time and that of its children it has reaped (PostgreSQL's exited backends)
            out[name] += sum(map(int, fields[11:15])) / tick
    return out


def _machine_cpu() -> list[int]:
    """The machine's CPU time so far (/proc/stat, in ticks): user, nice, system, idle, iowait,
    irq, softirq, steal."""
    with open("/proc/stat") as fh:
        return [int(v) for v in fh.readline().split()[1:9]]


def _busy(before: list[int], after: list[int], seconds: float) -> dict:
    """Cores busy, waiting on I/O, and taken by the hypervisor (steal), on average."""
    tick = os.sysconf("SC_CLK_TCK")
    d = [(a - b) / tick / seconds for a, b in zip(after, before, strict=True)]
    user, nice, system, _idle, iowait, irq, softirq, steal = d
    return {"busy": round(user + nice + system + irq + softirq, 2), "iowait": round(iowait, 2),
            "steal": round(steal, 2)}  # fmt: skip


def _run(
    cfg, messages, rate, compression=None, linger_ms=20
) -> tuple[float, list[float], object, list, dict]:
    """Consume `messages` produced by a child process; returns (seconds, lags, stats,
    commits, cpu): `commits` holds (seconds since the start, messages committed so far) per
    batch, `cpu` the CPU seconds each program used over the run."""
    from pipelines.stream_consumer import StreamConsumer, make_consumer

    consumer = make_consumer(cfg)
    while not consumer.assignment():  # join the group before the clock starts
        consumer.poll(timeout_ms=100)
    keys = [m[1] for m in messages]
    values = [m[2] for m in messages]
    child = mp.get_context("fork").Process(
        target=_send,
        args=(cfg.bootstrap, cfg.transactions_topic, values, keys, rate, compression, linger_ms),
    )
    before, own, machine = _cpu_by_program(), os.times(), _machine_cpu()
    start = time.time()
    child.start()
    sc = StreamConsumer(cfg)
    commits: list[tuple[float, int]] = []
    stats = sc.run(
        consumer=consumer, on_batch=lambda s: commits.append((time.time() - start, s.messages))
    )
    seconds = time.time() - start
    after, spent, machine = _cpu_by_program(), os.times(), _busy(machine, _machine_cpu(), seconds)
    child.join()
    done = os.times()
    consumer.close(autocommit=False)
    cpu = {  # the consumer's threads, the sending child, the servers'
        "consumer": round(spent.user + spent.system - own.user - own.system, 1),
        "load_generator": round(done.children_user + done.children_system
                                - own.children_user - own.children_system, 1),
        **{k: round(after[k] - before[k], 1) for k in after},
        "machine_cores": machine,
    }  # fmt: skip
    return seconds, stats.lags, stats, commits, cpu


def keeping_up(lags: list[float], commits: list[tuple[float, int]]) -> dict:
    """Whether the consumer keeps up with the rate it is sent: the p99 lag of each quarter of
    the messages in commit order (rising quarter by quarter: a backlog that grows), and the
    messages/s committed after the first quarter (past the start-up: the consumer's pace once
    its connections, caches and batch sizes have settled)."""
    n = len(lags)
    quarters = [lags[n * q // 4 : n * (q + 1) // 4] for q in range(4)]
    rate = None
    first = next(((t, m) for t, m in commits if m >= n / 4), None)
    if first is not None and commits and commits[-1][0] > first[0]:
        rate = round((commits[-1][1] - first[1]) / (commits[-1][0] - first[0]), 1)
    return {
        "p99_by_quarter": [round(_pct(q, 0.99), 3) if q else None for q in quarters],
        "rate_after_first_quarter": rate,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    from core import migrate
    from core.services import get_endpoints
    from core.settings import get_settings
    from pipelines.stream_config import ConsumeConfig
    from pipelines.stream_consumer import ensure_topics
    from pipelines.stream_producer import load_baskets, sample_messages

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="baskets (messages) to stream")
    parser.add_argument("--rate", type=float, default=None, help="baskets/s (default: max)")
    defaults = {k: f.default for k, f in ConsumeConfig.model_fields.items()}
    parser.add_argument(
        "--max-batch", type=int, default=defaults["max_batch"],
        help="the consumer's largest batch (default: ConsumeConfig's, what `retailpulse consume`"
        " uses: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--writers", type=int, default=defaults["writers"],
        help="the consumer's writer threads (default: ConsumeConfig's, %(default)s)",
    )  # fmt: skip
    parser.add_argument("--baseline-n", type=int, default=300)
    parser.add_argument(
        "--warm", type=int, default=0,
        help="baskets streamed first, untimed, so the timed run lands on a warehouse (and an"
        " online store) with their history instead of an empty one (default: 0)",
    )  # fmt: skip
    parser.add_argument(
        "--compression", default=None, choices=["gzip"], help="the producer's (default: none)"
    )
    # How long the load generator's producer holds records to send them together. Paced at
    # 5,000 msg/s, 5 ms cost it 3.0-3.1 CPU s per 40,000 messages, 20 ms 1.6-2.1 s, on the
    # 2 cores it shares with the consumer and PostgreSQL. The lag counts from each send() call,
    # so the time a record waits here is in it.
    parser.add_argument("--linger-ms", type=int, default=20, help="the producer's (default: 20)")
    # The group's patience with a member that has not polled (and tansu's join delay): more
    # than the consumer's default, so a machine shared with other work cannot starve the loop
    # into a rebalance (whose re-reads are harmless but cost the run).
    parser.add_argument("--max-poll-interval-ms", type=int, default=10_000)
    args = parser.parse_args(argv)

    endpoints = get_endpoints()
    server = endpoints.database_url.rsplit("/", 1)[0]
    db = f"rp_bench_stream_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = f"{server}/{db}"
    project = f"rpbench{uuid.uuid4().hex[:8]}"
    try:
        migrate.upgrade(url)
        tx, weekly = load_baskets(baskets=args.warm + args.n + args.baseline_n)
        messages = [basket for basket, _ in sample_messages(tx, weekly)]
        warm_msgs = messages[: args.warm]
        main_msgs = messages[args.warm : args.warm + args.n]
        base_msgs = messages[args.warm + args.n :]

        def config(tag: str, batch: int, n: int) -> ConsumeConfig:
            suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
            cfg = ConsumeConfig(
                tenant=get_settings().tenant, bootstrap=endpoints.kafka_bootstrap,
                database_url=url, redis_url=endpoints.redis_url, feast_project=project,
                group_id=f"bench-{suffix}", transactions_topic=f"bench-tx-{suffix}",
                inventory_topic=f"bench-inv-{suffix}", rejected_topic=f"bench-rej-{suffix}",
                max_batch=batch, max_messages=n, track_lag=True, writers=args.writers,
                max_poll_interval_ms=args.max_poll_interval_ms,
            )  # fmt: skip
            topics = (cfg.transactions_topic, cfg.inventory_topic, cfg.rejected_topic)
            ensure_topics(cfg.bootstrap, topics)
            return cfg

        if warm_msgs:
            _run(config("warm", args.max_batch, len(warm_msgs)), warm_msgs, None)
        base_s, _, base_stats, _, _ = _run(config("base", 1, len(base_msgs)), base_msgs, None)
        seconds, lags, stats, commits, cpu = _run(
            config("main", args.max_batch, len(main_msgs)), main_msgs, args.rate,
            args.compression, args.linger_ms,
        )  # fmt: skip
    finally:
        import redis

        from core.redis_keys import delete_matching

        client = redis.Redis.from_url(endpoints.redis_url)
        delete_matching(client, f"*{project}")
        client.close()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    value = stats.messages / seconds
    baseline = base_stats.messages / base_s
    print(
        json.dumps(
            {
                "figure": "stream_end_to_end",
                "data": f"Complete Journey, {args.n} baskets in time order after the first"
                f" {args.warm} (streamed untimed before)"
                if args.warm
                else f"Complete Journey, first {args.n} baskets in time order",
                "n": stats.messages,
                "value": round(value, 1),
                "unit": "messages/s (send → warehouse commit + online write)",
                "baseline": "same consumer, one message per batch (commit per message)",
                "baseline_value": round(baseline, 1),
                "ratio": round(value / baseline, 2),
                "p50": round(statistics.median(lags), 3),
                "p99": round(_pct(lags, 0.99), 3),
                "lag_unit": "s (Kafka send time → features written to Redis)",
                **keeping_up(lags, commits),
                # the start-up: (s since the first send, messages committed) of the first batches
                "first_commits": [[round(t, 2), m] for t, m in commits[:8]],
                "rate": args.rate,
                "linger_ms": args.linger_ms,
                "warm": args.warm,
                "baskets_written": stats.baskets,
                "customers_pushed": stats.customers_pushed,
                "batches": stats.batches,
                "seconds": round(seconds, 2),
                "max_batch": args.max_batch,
                "writers": args.writers,
                "db_retries": stats.db_retries,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "stage_seconds": {k: round(v, 2) for k, v in stats.stages.items()},
                "cpu_seconds": cpu,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
