"""Fast online feature reads straight from Feast's Redis layout (the HTTP segment route's path).

Feast's Redis online store keeps one hash per entity:
  key    = serialize_entity_key(EntityKey, v3) + project (utf-8)
  fields = mmh3_32("<feature_view>:<feature>") as 4 little-endian bytes -> Value proto bytes,
           and "_ts:<feature_view>" -> Timestamp proto bytes (event time of the row).
Reading it ourselves skips Feast's registry lookups and response building (~0.6 ms per call):
one HMGET with precomputed field names, then protobuf decoding. `tests/integration/
test_feast_online.py` checks the result against `FeatureStore.get_online_features`.
Like Feast's online path, no TTL is applied at read time.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

import mmh3
import redis
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType

from features.names import JOIN_KEY

ENTITY_KEY_SERIALIZATION_VERSION = 3  # must match feature_store.yaml


def feature_field(feature_view: str, feature: str) -> bytes:
    """Hash field of one feature: murmur3_32 (unsigned) of "<fv>:<feature>", 4 bytes LE."""
    return struct.pack("<I", mmh3.hash(f"{feature_view}:{feature}", signed=False))


def entity_key_prefix(join_key: str = JOIN_KEY) -> bytes:
    """The bytes of a v3 serialized single Int64 entity key that precede the value."""
    name = join_key.encode("utf-8")
    return (
        struct.pack("<I", 1)  # number of join keys (v3)
        + struct.pack("<II", ValueType.STRING, len(name))
        + name
        + struct.pack("<II", ValueType.INT64, 8)  # value type and length
    )


def redis_key(customer_id: int, project: str, join_key: str = JOIN_KEY) -> bytes:
    """Feast's Redis key of one Int64 entity in `project`."""
    return entity_key_prefix(join_key) + struct.pack("<q", customer_id) + project.encode("utf-8")


def _decode(raw: bytes | None) -> float:
    if raw is None:
        return math.nan
    value = ValueProto.FromString(raw)
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return math.nan
    return float(getattr(value, kind))


class OnlineFeatureReader:
    """Reads one feature view's features for Int64 entities in one Redis round trip."""

    def __init__(
        self,
        redis_url: str,
        project: str,
        feature_view: str,
        features: Sequence[str],
        *,
        join_key: str = JOIN_KEY,
        client: redis.Redis | None = None,
    ) -> None:
        self.features = list(features)
        self.project = project
        self.feature_view = feature_view
        self._client = client or redis.Redis.from_url(redis_url)
        self._prefix = entity_key_prefix(join_key)
        self._suffix = project.encode("utf-8")
        self._fields = [feature_field(feature_view, f) for f in self.features]
        # The event-time field tells "materialized" apart from "no row for this view".
        self._fields.append(f"_ts:{feature_view}".encode())
        self._n = len(self.features)

    def key(self, customer_id: int) -> bytes:
        """The Redis key Feast wrote for `customer_id`."""
        return self._prefix + struct.pack("<q", customer_id) + self._suffix

    def _row(self, values: list[bytes | None]) -> dict[str, float] | None:
        if values[self._n] is None and all(v is None for v in values[: self._n]):
            return None
        return {name: _decode(raw) for name, raw in zip(self.features, values, strict=False)}

    def get(self, customer_id: int) -> dict[str, float] | None:
        """Features of one customer (NaN for a missing value), or None if Feast has none."""
        return self._row(self._client.hmget(self.key(customer_id), self._fields))

    def get_many(self, customer_ids: Iterable[int]) -> list[dict[str, float] | None]:
        """`get` for many customers in one pipelined round trip, in the order given."""
        with self._client.pipeline(transaction=False) as pipe:
            for customer_id in customer_ids:
                pipe.hmget(self.key(customer_id), self._fields)
            replies = pipe.execute()
        return [self._row(values) for values in replies]

    def close(self) -> None:
        """Release the Redis connection pool."""
        self._client.close()
