"""Fast online feature reads straight from Feast's Redis layout (the serving hot path).

Feast's Redis online store keeps one hash per entity key:
  key    = serialize_entity_key(EntityKey, v3) + project (utf-8); join keys sorted by name
  fields = mmh3_32("<feature_view>:<feature>") as 4 little-endian bytes -> Value proto bytes,
           and "_ts:<feature_view>" -> Timestamp proto bytes (event time of the row).
Reading it ourselves skips Feast's registry lookups and response building: one pipelined
round trip of HMGETs with precomputed field names for any number of entities, then decoding
with a fast path for the scalar protobufs Feast writes. `tests/integration/test_feast_online.py`
checks the result against `FeatureStore.get_online_features`. Like Feast's online path, no TTL
is applied at read time.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import mmh3
import numpy as np
import redis
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from features.catalog import FeatureViewSpec

ENTITY_KEY_SERIALIZATION_VERSION = 3  # must match feature_store.yaml
EntityKey = tuple[Any, ...]

_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (fixed64)
_DOUBLE_PROTO = np.dtype([("tag", "u1"), ("value", "<f8")])
# Any number of entities of several feature views in one round trip (HMGET server-side): ARGV =
# groups, then per group its key count, field count and fields; KEYS = every group's keys in
# order, then plain string keys read with GET. One view is one group.
_HMGET_GROUPS = """
local out, k, a = {}, 1, 2
for g = 1, tonumber(ARGV[1]) do
  local count, nf = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local fields = {unpack(ARGV, a + 2, a + 1 + nf)}
  for i = 1, count do
    out[k] = redis.call('HMGET', KEYS[k], unpack(fields))
    k = k + 1
  end
  a = a + 2 + nf
end
for i = k, #KEYS do out[i] = redis.call('GET', KEYS[i]) end
return out
"""
_FLOAT_TAG = 0x35  # Value.float_val: field 6, wire type 5 (fixed32)
_unpack_double = struct.Struct("<d").unpack_from
_unpack_float = struct.Struct("<f").unpack_from


def feature_field(feature_view: str, feature: str) -> bytes:
    """Hash field of one feature: murmur3_32 (unsigned) of "<fv>:<feature>", 4 bytes LE."""
    return struct.pack("<I", mmh3.hash(f"{feature_view}:{feature}", signed=False))


def _encode_value(kind: str, value: Any) -> bytes:
    if kind == "int64":
        payload = struct.pack("<q", int(value))
        return struct.pack("<II", ValueType.INT64, len(payload)) + payload
    payload = str(value).encode("utf-8")
    return struct.pack("<II", ValueType.STRING, len(payload)) + payload


class KeyEncoder:
    """Feast v3 entity keys of one feature view's entities (single or composite) in a project."""

    def __init__(self, join_keys: Sequence[str], key_types: Sequence[str], project: str) -> None:
        # Feast sorts join keys by name; remember where each caller-order value goes.
        order = sorted(range(len(join_keys)), key=lambda i: join_keys[i])
        self._order = order
        self._kinds = [key_types[i] for i in order]
        head = [struct.pack("<I", len(order))]
        for i in order:
            name = join_keys[i].encode("utf-8")
            head.append(struct.pack("<II", ValueType.STRING, len(name)) + name)
        self._head = b"".join(head)
        self._suffix = project.encode("utf-8")
        self._single_int = self._kinds == ["int64"]
        if self._single_int:
            self._int_prefix = self._head + struct.pack("<II", ValueType.INT64, 8)

    def __call__(self, key: EntityKey | int | str) -> bytes:
        """Redis key of one entity; `key` is a tuple in the view's join-key order."""
        if self._single_int:
            value = key[0] if isinstance(key, tuple) else key
            return self._int_prefix + struct.pack("<q", int(value)) + self._suffix
        if not isinstance(key, tuple):
            key = (key,)
        parts = [
            _encode_value(kind, key[i]) for kind, i in zip(self._kinds, self._order, strict=True)
        ]
        return self._head + b"".join(parts) + self._suffix


def decode_value(raw: bytes | None) -> float | int | str | None:
    """One Feast Value proto → Python scalar; NaN for a missing or null numeric value."""
    if raw is None:
        return math.nan
    if len(raw) == 9 and raw[0] == _DOUBLE_TAG:
        return _unpack_double(raw, 1)[0]
    if len(raw) == 5 and raw[0] == _FLOAT_TAG:
        return _unpack_float(raw, 1)[0]
    value = ValueProto.FromString(raw)
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return math.nan
    return getattr(value, kind)


def decode_timestamp(raw: bytes | None) -> float | None:
    """The `_ts:<view>` field as POSIX seconds, or None."""
    if raw is None:
        return None
    stamp = Timestamp.FromString(raw)
    return stamp.seconds + stamp.nanos / 1e9


class OnlineReader:
    """Reads one feature view's features (or a subset) for many entities in one round trip."""

    def __init__(
        self,
        client: redis.Redis,
        project: str,
        view: FeatureViewSpec,
        features: Sequence[str] | None = None,
    ) -> None:
        self.view = view
        self.project = project
        self.features = list(features) if features is not None else view.feature_names
        unknown = sorted(set(self.features) - set(view.feature_names))
        if unknown:
            raise ValueError(f"{view.name} has no feature(s) {unknown}")
        self._client = client
        self._groups = client.register_script(_HMGET_GROUPS)
        self.key = KeyEncoder(view.join_keys, view.key_types, project)
        self._fields = [feature_field(view.name, f) for f in self.features]
        # The event-time field tells "materialized" apart from "no row for this view".
        self._fields.append(f"_ts:{view.name}".encode())
        self._n = len(self.features)
        self._group_fields = [str(len(self._fields)).encode(), *self._fields]

    def _args(self, count: int) -> list[bytes]:
        """The script's ARGV for one group of `count` keys of this view."""
        return [b"1", str(count).encode(), *self._group_fields]

    @classmethod
    def from_url(cls, redis_url: str, project: str, view: FeatureViewSpec, **kw) -> OnlineReader:
        return cls(redis.Redis.from_url(redis_url), project, view, **kw)

    def _row(self, values: list[bytes | None], with_ts: bool) -> dict[str, Any] | None:
        ts_raw = values[self._n]
        if ts_raw is None and all(v is None for v in values[: self._n]):
            return None
        row = {name: decode_value(raw) for name, raw in zip(self.features, values, strict=False)}
        if with_ts:
            row["_event_timestamp"] = decode_timestamp(ts_raw)
        return row

    def get(self, key: EntityKey | int | str, *, with_ts: bool = False) -> dict[str, Any] | None:
        """Features of one entity (NaN for a missing value), or None if Feast has none."""
        return self._row(self._client.hmget(self.key(key), self._fields), with_ts)

    def _fetch(self, keys: Sequence[EntityKey | int | str]) -> list[list[bytes | None]]:
        """Raw replies of every key, in one round trip (a Lua HMGET loop on the server)."""
        if not keys:
            return []
        redis_keys = [self.key(key) for key in keys]
        return self._groups(keys=redis_keys, args=self._args(len(redis_keys)))

    def get_many(
        self, keys: Sequence[EntityKey | int | str], *, with_ts: bool = False
    ) -> list[dict[str, Any] | None]:
        """`get` for many entities in one round trip, in the order given."""
        return [self._row(values, with_ts) for values in self._fetch(keys)]

    def get_matrix(
        self, keys: Sequence[EntityKey | int | str], *, with_ts: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[float | None] | None]:
        """Numeric features of many entities as one float64 matrix, in one round trip.

        Returns (values [n, n_features] with NaN where missing, found [n] bool, event times
        as POSIX seconds when `with_ts`, else None). Feast stores doubles as 9-byte protos;
        a batch made only of those decodes in one numpy call, anything else value by value.
        """
        return self._matrix(self._fetch(keys), with_ts)

    def _matrix(
        self, replies: list[list[bytes | None]], with_ts: bool
    ) -> tuple[np.ndarray, np.ndarray, list[float | None] | None]:
        f = self._n
        values = np.full((len(replies), f), np.nan)
        found = np.fromiter(
            (r[f] is not None or any(v is not None for v in r[:f]) for r in replies),
            dtype=bool,
            count=len(replies),
        )
        stamps = [decode_timestamp(r[f]) for r in replies] if with_ts else None
        rows = np.flatnonzero(found)
        flat = [v for i in rows for v in replies[i][:f]]
        if flat and None not in flat and {len(v) for v in flat} == {9}:
            decoded = np.frombuffer(b"".join(flat), dtype=_DOUBLE_PROTO)
            if (decoded["tag"] == _DOUBLE_TAG).all():
                values[rows] = decoded["value"].reshape(len(rows), f)
                return values, found, stamps
        for row, i in enumerate(rows):
            values[i] = [float(decode_value(v)) for v in flat[row * f : (row + 1) * f]]
        return values, found, stamps

    def close(self) -> None:
        """Release the Redis connection pool."""
        self._client.close()


class AsyncOnlineReader(OnlineReader):
    """`OnlineReader` over a `redis.asyncio` client: the same reads, awaited, so an async
    route never blocks its event loop on Redis (a hung Redis costs the client's timeout)."""

    async def get(  # type: ignore[override]
        self, key: EntityKey | int | str, *, with_ts: bool = False
    ) -> dict[str, Any] | None:
        return self._row(await self._client.hmget(self.key(key), self._fields), with_ts)

    async def _fetch(  # type: ignore[override]
        self, keys: Sequence[EntityKey | int | str]
    ) -> list[list[bytes | None]]:
        if not keys:
            return []
        return await self._groups(keys=[self.key(key) for key in keys], args=self._args(len(keys)))

    async def get_many(  # type: ignore[override]
        self, keys: Sequence[EntityKey | int | str], *, with_ts: bool = False
    ) -> list[dict[str, Any] | None]:
        return [self._row(values, with_ts) for values in await self._fetch(keys)]

    async def get_matrix(  # type: ignore[override]
        self, keys: Sequence[EntityKey | int | str], *, with_ts: bool = False
    ) -> tuple[np.ndarray, np.ndarray, list[float | None] | None]:
        return self._matrix(await self._fetch(keys), with_ts)

    async def aclose(self) -> None:
        await self._client.aclose()


async def get_many_views(
    groups: Sequence[tuple[AsyncOnlineReader, Sequence[EntityKey | int | str], bool]],
    strings: Sequence[str | bytes] = (),
) -> list[list[Any]]:
    """`get_many(keys, with_ts=...)` of several readers (views of one Redis) in one round
    trip: one Lua call instead of one per view (a request reading three views pays one).
    `strings`: plain string keys read in the same call (e.g. batch-scored answers); their raw
    values (None when absent) come back as one more list after the groups'."""
    keys: list[bytes | str] = []
    args: list[bytes | str] = [str(len(groups))]
    for reader, entity_keys, _ in groups:
        keys.extend(reader.key(key) for key in entity_keys)
        args.extend((str(len(entity_keys)), str(len(reader._fields)), *reader._fields))
    keys.extend(strings)
    replies = await groups[0][0]._groups(keys=keys, args=args) if keys else []
    out: list[list[Any]] = []
    at = 0
    for reader, entity_keys, with_ts in groups:
        out.append([reader._row(values, with_ts) for values in replies[at : at + len(entity_keys)]])
        at += len(entity_keys)
    if strings:
        out.append(list(replies[at:]))
    return out
