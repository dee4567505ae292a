"""Streaming jobs: consume the POS stream, replay sample baskets, and the demo's live stream."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.services import get_endpoints
from core.settings import get_settings
from core.tenants import validate_tenant
from integrations.messages import TOPICS
from pipelines.stream_config import ConsumeConfig, ConsumeStats
from pipelines.stream_consumer import StreamConsumer, ensure_topics
from pipelines.stream_producer import ProduceStats, load_baskets, produce, sample_messages


def consume_config(tenant: str | None = None, **overrides: Any) -> ConsumeConfig:
    """A consumer configuration from the platform's settings and live endpoints."""
    from features.store import project_for

    settings = get_settings()
    tenant = validate_tenant(tenant or settings.tenant)
    endpoints = get_endpoints()
    return ConsumeConfig(
        tenant=tenant,
        bootstrap=endpoints.kafka_bootstrap,
        database_url=endpoints.database_url,
        redis_url=endpoints.redis_url,
        feast_project=project_for(tenant),
        **overrides,
    )


def consume(
    tenant: str | None = None,
    *,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    on_batch: Callable[[ConsumeStats], None] | None = None,
    **overrides: Any,
) -> ConsumeStats:
    """Run the consumer group until `max_messages`, `idle_timeout_s` or `stop`."""
    cfg = consume_config(
        tenant, max_messages=max_messages, idle_timeout_s=idle_timeout_s, **overrides
    )
    return StreamConsumer(cfg, stop=stop).run(on_batch=on_batch)


def produce_sample(
    *,
    rate: float | None,
    baskets: int | None = None,
    households: int | None = None,
    inventory: bool = True,
    on_basket: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Replay Complete Journey baskets (and rule-derived inventory updates) onto the topics."""
    if rate is not None and rate <= 0:
        raise ValueError("--rate must be a positive number of messages per second")
    bootstrap = get_endpoints().kafka_bootstrap
    ensure_topics(bootstrap, TOPICS)
    tx, weekly = load_baskets(households=households, baskets=baskets)
    return produce(
        sample_messages(tx, weekly),
        bootstrap=bootstrap,
        rate=rate,
        inventory=inventory,
        on_basket=on_basket,
    )


def online_rfm(customer_id: int, tenant: str | None = None) -> dict[str, Any] | None:
    """The customer's RFM features as serving reads them from the online store."""
    from features.catalog import CUSTOMER_RFM
    from features.online import OnlineReader
    from features.store import project_for

    reader = OnlineReader.from_url(get_endpoints().redis_url, project_for(tenant), CUSTOMER_RFM)
    try:
        return reader.get(customer_id, with_ts=True)
    finally:
        reader.close()


def _known_customers(tenant: str | None) -> set[int]:
    """Customer ids with baskets in the tenant's warehouse."""
    import psycopg

    from core.db import libpq_url

    tenant = tenant or get_settings().tenant
    with psycopg.connect(libpq_url(get_endpoints().database_url)) as conn:
        rows = conn.execute(
            "SELECT DISTINCT customer_id FROM transactions WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    return {int(r[0]) for r in rows}


def demo_group(tenant: str | None) -> str:
    """The demo's consumer group of a tenant, kept across runs: each run reads on from the last
    one's committed offsets instead of re-reading (and skipping) every message sent before."""
    return f"retailpulse-demo-{validate_tenant(tenant or get_settings().tenant)}"


def live_stream_demo(
    *,
    baskets: int = 300,
    households: int | None = 200,
    rate: float = 200.0,
    tenant: str | None = None,
    customer_id: int | None = None,
) -> dict[str, Any]:
    """Produce `baskets` sample baskets while a consumer runs; returns one customer's online RFM
    features before and after, and both sides' counts (for `retailpulse demo`).

    The baskets come from the first `households` households the warehouse does not know yet
    (`ingest completejourney --households 100` loads the first 100; each demo run streams the
    next ones), in time order, so each is new to the warehouse and the chosen customer appears
    online during the run. Once every household has been streamed, the first ones are replayed:
    each basket is then a duplicate the consumer skips (nothing changes, as it should)."""
    known = _known_customers(tenant)
    tx, weekly = load_baskets(households=households, baskets=None, exclude=known)
    if tx.empty:
        tx, weekly = load_baskets(households=households, baskets=None)
    tx = tx[tx["basket_id"].isin(tx["basket_id"].drop_duplicates().iloc[:baskets])]
    if customer_id is None:  # the busiest customer of the replay shows the most change
        customer_id = int(tx.groupby("household_id")["basket_id"].nunique().idxmax())
    before = online_rfm(customer_id, tenant)
    group = demo_group(tenant)
    stop = threading.Event()
    result: dict[str, Any] = {}
    sent: list[int | None] = [None]  # messages produced, once the producer is done

    def caught_up(stats: ConsumeStats) -> None:
        result["progress"] = stats
        if sent[0] is not None and stats.messages >= sent[0]:
            stop.set()  # everything sent is written: no need to wait out the idle timeout

    consumer = threading.Thread(
        target=lambda: result.setdefault(
            "consumed",
            consume(tenant, idle_timeout_s=5, stop=stop, group_id=group, on_batch=caught_up),
        ),
        name="stream-demo-consumer",
    )
    bootstrap = get_endpoints().kafka_bootstrap
    ensure_topics(bootstrap, TOPICS)
    consumer.start()
    try:
        produced = produce(sample_messages(tx, weekly), bootstrap=bootstrap, rate=rate)
        sent[0] = produced.baskets + produced.inventory
        if "progress" in result:  # the consumer may have written everything already
            caught_up(result["progress"])
    finally:
        consumer.join(timeout=120)
        stop.set()
        consumer.join()
    return {
        "customer_id": customer_id,
        "before": before,
        "after": online_rfm(customer_id, tenant),
        "produced": produced,
        "consumed": result.get("consumed"),
    }
