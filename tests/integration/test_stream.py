"""The live stream: Kafka (the session's tansu broker) → warehouse (Postgres) → online store
(Redis), exactly once in effect. Each test uses its own topics and consumer group."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from features.catalog import CUSTOMER_RFM, SEGMENTER_FEATURES
from features.online import OnlineReader
from integrations.messages import BasketMessage
from pipelines.stream_batches import Loop
from pipelines.stream_config import ConsumeConfig
from pipelines.stream_consumer import StreamConsumer, ensure_topics, rejected_messages

pytestmark = pytest.mark.integration
T0 = datetime(2017, 3, 4, 10, 0, tzinfo=UTC)  # a Saturday


def _basket(tid: int, customer: int, when: datetime, lines: list[tuple[int, int, float, float]]):
    return {
        "transaction_id": tid,
        "store_id": "367",
        "customer_id": customer,
        "timestamp": when.isoformat(),
        "week": 10,
        "lines": [
            {
                "product_id": p,
                "quantity": q,
                "sales_value": v,
                "retail_disc": d,
                "coupon_disc": 0.5 if tid == 2 else 0.0,
            }
            for p, q, v, d in lines
        ],  # fmt: skip
    }


BASKETS = [
    _basket(1, 501, T0, [(10, 2, 4.0, 1.0), (11, 1, 3.5, 0.0)]),
    _basket(2, 501, T0 + timedelta(days=3), [(10, 1, 2.0, 0.0)]),
    _basket(3, 502, T0 + timedelta(hours=5), [(12, 3, 9.0, 0.0)]),
]
INVENTORY = {"store_id": "367", "product_id": 10, "on_hand": 40, "timestamp": T0.isoformat()}


@pytest.fixture
def stream(service_env, warehouse_env):
    """A consumer config on fresh topics, a fresh group, the fresh warehouse and Feast project."""
    from core.settings import get_settings
    from features.store import project_for

    suffix = uuid.uuid4().hex[:8]
    cfg = ConsumeConfig(
        tenant=get_settings().tenant,
        bootstrap=service_env["RETAILPULSE_KAFKA_BOOTSTRAP"],
        database_url=warehouse_env,
        redis_url=service_env["RETAILPULSE_REDIS_URL"],
        feast_project=project_for(),
        group_id=f"test-{suffix}",
        transactions_topic=f"tx-{suffix}",
        inventory_topic=f"inv-{suffix}",
        rejected_topic=f"rej-{suffix}",
        idle_timeout_s=1.5,
    )
    ensure_topics(cfg.bootstrap, (cfg.transactions_topic, cfg.inventory_topic, cfg.rejected_topic))
    return cfg


def _send(cfg: ConsumeConfig, values: list, topic: str | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=cfg.bootstrap)
    for value in values:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        producer.send(topic or cfg.transactions_topic, value=raw)
    producer.flush()
    producer.close()


def _counts(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {
            "transactions": conn.execute("SELECT count(*) FROM transactions").fetchone()[0],
            "items": conn.execute("SELECT count(*) FROM transaction_items").fetchone()[0],
            "sales": conn.execute("SELECT sum(total_sales) FROM transactions").fetchone()[0],
            "inventory": conn.execute("SELECT count(*) FROM inventory").fetchone()[0],
        }


def _online(cfg: ConsumeConfig, customer: int) -> dict | None:
    reader = OnlineReader.from_url(cfg.redis_url, cfg.feast_project, CUSTOMER_RFM)
    try:
        return reader.get(customer, with_ts=True)
    finally:
        reader.close()


def test_baskets_reach_warehouse_and_online_store_once(stream, warehouse_env):
    """Baskets land in the warehouse and the customer's RFM is online; poison messages go to
    the rejected topic with the field and reason; re-delivered baskets change nothing."""
    poison = [b"{not json", {**BASKETS[0], "transaction_id": 9, "lines": [{"product_id": 1}]}]
    _send(stream, [BASKETS[0], poison[0], BASKETS[1], poison[1], BASKETS[2]])
    _send(stream, [INVENTORY], topic=stream.inventory_topic)

    stats = StreamConsumer(stream).run()
    assert (stats.messages, stats.baskets, stats.rejected, stats.inventory) == (6, 3, 2, 1)
    first = _counts(warehouse_env)
    assert first["transactions"] == 3 and first["items"] == 4 and first["inventory"] == 1
    assert float(first["sales"]) == pytest.approx(4.0 + 3.5 + 2.0 + 9.0)

    online = _online(stream, 501)
    assert online["frequency"] == 2 and online["monetary"] == pytest.approx(9.5)
    # the stream's clock: newest basket of the batch + 1 s, so recency is days since basket 2
    as_of = datetime.fromtimestamp(online["_event_timestamp"], UTC)
    assert as_of == T0 + timedelta(days=3, seconds=1)
    assert online["recency_days"] == pytest.approx(1 / 86400)
    # the same numbers as the batch RFM job at that time
    from features.rfm import compute_customer_rfm

    with psycopg.connect(warehouse_env) as conn:
        compute_customer_rfm(conn, tenant=stream.tenant, as_of=[as_of])
        batch = conn.execute(
            f"SELECT {', '.join(SEGMENTER_FEATURES)} FROM customer_rfm WHERE customer_id = 501"
        ).fetchone()
    assert [online[f] for f in SEGMENTER_FEATURES] == pytest.approx(list(batch))

    rejected = rejected_messages(stream.bootstrap, topic=stream.rejected_topic, timeout_s=3)
    reasons = sorted(r["reason"] for r in rejected)
    assert len(rejected) == 2
    assert "not valid JSON" in reasons[0]
    assert "lines.0.quantity: Field required" in reasons[1]
    assert any(r["original"] == "{not json" for r in rejected)

    # Re-delivery of the same baskets: nothing changes, online features included.
    _send(stream, BASKETS)
    again = StreamConsumer(stream).run()
    assert (again.messages, again.baskets, again.duplicates) == (3, 0, 3)
    assert _counts(warehouse_env) == first
    assert _online(stream, 501) == online


def _committed(cfg: ConsumeConfig) -> int | None:
    """The group's committed offset on the transactions topic (None: nothing committed)."""
    reader = KafkaConsumer(bootstrap_servers=cfg.bootstrap, group_id=cfg.group_id)
    try:
        return reader.committed(TopicPartition(cfg.transactions_topic, 0))
    finally:
        reader.close(autocommit=False)


_VARIANTS = [  # (change to BASKETS[0]) each valid or each rejected for another rule
    {},
    {"week": None, "schema_version": 1},
    {"transaction_id": "17"},  # lax: a numeric string is an int, in both paths
    {"transaction_id": -1},
    {"transaction_id": 2**63},
    {"store_id": ""},
    {"store_id": "3\x006"},
    {"store_id": "\ud800"},
    {"customer_id": None},
    {"timestamp": "2017-03-04T10:00:00"},  # no zone
    {"timestamp": "2300-01-01T00:00:00+00:00"},
    {"timestamp": "2017-03-04T10:00:00+17:00"},
    {"week": 40000},
    {"schema_version": 2},
    {"lines": []},
    {"extra": 1},
    {"lines": [{"product_id": 1, "quantity": 1, "sales_value": 1.0, "extra": 1}]},
    {"lines": [{"product_id": 1, "quantity": 1, "sales_value": 2e8}]},  # unit price too high
    {"lines": [{"product_id": 1, "quantity": 0, "sales_value": 2e8}]},
    {"lines": [{"product_id": 1, "quantity": 200, "sales_value": 1e9}] * 11},  # totals
    {"lines": [{"product_id": 1, "quantity": 1, "sales_value": 1.0, "coupon_disc": -1}]},
    {"lines": [{"product_id": 1, "quantity": 1.5, "sales_value": 1.0}]},
]


@pytest.mark.parametrize("change", _VARIANTS)
def test_fast_basket_parse_agrees_with_the_model(change):
    """The consumer's fast path accepts exactly what `BasketMessage` accepts, gives the same
    values (as `model_dump()`), and a rejected message the model's reason."""
    from integrations.messages import parse, parse_baskets

    raw = json.dumps({**BASKETS[0], **change}).encode()
    [(fast, fast_reason)] = parse_baskets([raw])
    model, reason = parse(BasketMessage, raw)
    assert fast_reason == reason
    assert fast == (model.model_dump() if model is not None else None)


def test_writer_connections_do_not_jit_compile(stream):
    """The consumer's writers turn JIT off for their session (a batch's statements are small;
    compiling them cost more than it saved)."""
    sc = StreamConsumer(stream)
    try:
        conn = sc._connection(0)
        assert conn.execute("SHOW jit").fetchone()[0] == "off"
        conn.rollback()
    finally:
        sc.close()


def test_database_down_waits_commits_nothing_then_resumes(stream, warehouse_env):
    """With the warehouse unreachable the consumer retries without committing offsets; when it
    answers again the same messages are written and only then committed."""
    from core.services import free_port

    _send(stream, BASKETS)
    good_url = stream.database_url
    stream.database_url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    stream.retry_backoff_s = 0.2
    stream.max_backoff_s = 0.5
    stream.idle_timeout_s = 2.0
    consumer = StreamConsumer(stream)
    done: dict[str, object] = {}
    thread = threading.Thread(target=lambda: done.setdefault("stats", consumer.run()))
    thread.start()
    deadline = time.monotonic() + 30
    while consumer.stats.db_retries < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert consumer.stats.db_retries >= 3
    assert _committed(stream) is None  # nothing committed while the database is down
    assert _counts(good_url)["transactions"] == 0

    consumer.cfg.database_url = good_url  # the database is back
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert done["stats"].baskets == 3
    assert _counts(good_url)["transactions"] == 3
    assert _committed(stream) == 3


def test_batch_written_after_a_failed_one_counts_once(stream, warehouse_env, monkeypatch):
    """Batch N fails in its transaction while batch N+1 (the other writer) is under way and
    then commits; both are written again, and N+1's baskets count as written, not as
    re-delivered duplicates."""
    from core import events
    from pipelines import stream_consumer as mod

    stream.max_batch, stream.retry_backoff_s = 2, 0.2
    fourth = _basket(4, 503, T0 + timedelta(days=1), [(13, 1, 5.0, 0.0)])
    _send(stream, [*BASKETS, fourth])
    second_started, merges = threading.Event(), []
    real_connection, real_write, real_land = (
        StreamConsumer._connection, mod.write_batch, events.in_transaction)  # fmt: skip

    def connection(self, slot):
        if slot == 1:
            second_started.set()  # batch N+1's writer is under way
        return real_connection(self, slot)

    def write(conn, **kw):
        merges.append(len(kw["baskets"]))
        return real_write(conn, **kw)

    def land(conn, landed):  # batch N's rollups come first (N+1 waits for its tenant lock)
        if not land.failed:
            land.failed = True
            assert second_started.wait(20)
            raise psycopg.OperationalError("injected: the connection dropped")
        return real_land(conn, landed)

    land.failed = False
    monkeypatch.setattr(StreamConsumer, "_connection", connection)
    monkeypatch.setattr(mod, "write_batch", write)
    monkeypatch.setattr(events, "in_transaction", land)
    stats = StreamConsumer(stream).run()
    assert stats.db_retries == 1
    assert len(merges) == 4 and sum(merges) == 8  # both batches were written again
    assert (stats.messages, stats.baskets, stats.duplicates) == (4, 4, 0)
    assert _counts(warehouse_env)["transactions"] == 4
    assert _committed(stream) == 4


@pytest.mark.parametrize("writers", [2, 3])
def test_overlapping_batches_write_everything_once(stream, warehouse_env, writers, monkeypatch):
    """Thirty baskets in batches of three, so the writers overlap (a batch merges while the
    ones before it prepare, refresh the rollups and commit), nearly every one naming a
    product no batch before it named, and the same customers at the same store-days in
    successive batches: every basket and dimension row is there, the rollups equal a rebuild
    (customers counted once per store-day), and each customer's online row equals the batch
    RFM job at its clock."""
    from analytics import rollups
    from features.rfm import compute_customer_rfm
    from tests.integration.test_rollups_delta import snapshot

    stream.max_batch, stream.writers = 3, writers
    stream.track_lag = True
    baskets = []
    for i in range(30):
        b = _basket(100 + i, 600 + i % 3, T0 + timedelta(hours=i),
                    [(1000 + i, 1, 1.25 + i, 0.0), (1000 + i // 2, 2, 0.5, 0.1)])  # fmt: skip
        b["store_id"] = str(400 + i % 2)
        baskets.append(b)
    _send(stream, baskets)
    seen = []  # per batch: (messages' lags so far, the batch's lag)
    in_flight = []  # batches being written, at each start of one
    submit = Loop._submit

    def counted(loop: Loop, batch) -> None:
        submit(loop, batch)
        in_flight.append(len(loop.inflight))

    monkeypatch.setattr(Loop, "_submit", counted)
    stats = StreamConsumer(stream).run(on_batch=lambda s: seen.append((len(s.lags), s.last_lag)))
    assert (stats.messages, stats.baskets, stats.duplicates) == (30, 30, 0)
    assert stats.batches >= 8  # batches of up to three
    assert max(in_flight) == writers  # as many written at once as there are writers
    # each batch's lag is its oldest message's: the largest of its messages' lags
    assert len(stats.lags) == 30 and min(stats.lags) > 0 and len(seen) == stats.batches
    for (start, _), (end, lag) in zip([(0, None), *seen], seen, strict=False):
        assert lag == pytest.approx(max(stats.lags[start:end]))
    with psycopg.connect(warehouse_env) as conn:
        one = conn.execute
        assert one("SELECT count(*) FROM transactions").fetchone()[0] == 30
        assert one("SELECT count(*) FROM transaction_items").fetchone()[0] == 60
        assert {r[0] for r in one("SELECT product_id FROM products")} == set(range(1000, 1030))
        assert {r[0] for r in one("SELECT store_id FROM stores")} == {"400", "401"}
        assert {r[0] for r in one("SELECT customer_id FROM customers")} == {600, 601, 602}
        kept = snapshot(conn, stream.tenant)
        rollups.rebuild(conn, tenant=stream.tenant)
        assert snapshot(conn, stream.tenant) == kept
        conn.rollback()
        for customer in (600, 601, 602):
            online = _online(stream, customer)
            as_of = datetime.fromtimestamp(online["_event_timestamp"], UTC)
            # the clock of the batch with its last basket: after it, at most the last + 1 s
            assert T0 + timedelta(hours=27 + customer - 600) < as_of
            assert as_of <= T0 + timedelta(hours=29, seconds=1)
            compute_customer_rfm(conn, tenant=stream.tenant, as_of=[as_of])
            batch = one(f"SELECT {', '.join(SEGMENTER_FEATURES)} FROM customer_rfm"
                        " WHERE customer_id = %s AND event_timestamp = %s",
                        (customer, as_of)).fetchone()  # fmt: skip
            assert [online[f] for f in SEGMENTER_FEATURES] == pytest.approx(list(batch))


def test_uncommitted_batch_is_redelivered_to_the_next_consumer(stream, warehouse_env):
    """A consumer that dies after the database commit but before the offset commit leaves
    the batch to the next one, which writes nothing twice."""
    _send(stream, BASKETS)
    crashing = StreamConsumer(stream)

    class Crash(Exception):
        pass

    def no_commit(*_a, **_k):
        raise Crash

    from pipelines import stream_consumer as mod

    consumer = mod.make_consumer(stream)
    consumer.commit = no_commit  # the process "dies" right where offsets would be committed
    with pytest.raises(Crash):
        crashing.run(consumer=consumer)
    consumer.close(autocommit=False)
    assert _counts(warehouse_env)["transactions"] == 3

    stats = StreamConsumer(stream).run()
    assert (stats.messages, stats.baskets, stats.duplicates) == (3, 0, 3)
    assert _counts(warehouse_env)["transactions"] == 3
    assert _committed(stream) == 3
