"""core.redis_keys.delete_matching against the session's real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

from core.redis_keys import delete_matching

pytestmark = pytest.mark.integration


class _Counting(redis.Redis):
    """A client that counts its UNLINK calls."""

    unlinks = 0

    def unlink(self, *names):
        self.unlinks += 1
        return super().unlink(*names)


def test_deletes_every_match_in_chunks_and_nothing_else(service_env) -> None:
    client = _Counting.from_url(service_env["RETAILPULSE_REDIS_URL"])
    tag = uuid.uuid4().hex[:8]
    try:
        client.mset({f"rk:{tag}:a:{i}": i for i in range(2500)})
        client.mset({f"rk:{tag}:b:{i}": i for i in range(30)})
        client.set(f"rk:{tag}:c", 1)

        deleted = delete_matching(client, f"rk:{tag}:a:*", f"rk:{tag}:c")

        assert deleted == 2501
        assert client.unlinks == 4  # 1,000 + 1,000 + 500 keys, then the one of the second pattern
        assert not list(client.scan_iter(match=f"rk:{tag}:a:*", count=1000))
        assert client.exists(f"rk:{tag}:c") == 0
        assert len(list(client.scan_iter(match=f"rk:{tag}:b:*", count=1000))) == 30
        assert delete_matching(client, f"rk:{tag}:a:*") == 0  # nothing left: no UNLINK
        assert client.unlinks == 4
    finally:
        for key in client.scan_iter(match=f"rk:{tag}:*", count=1000):
            client.delete(key)
        client.close()
