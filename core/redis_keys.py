"""Deleting Redis keys by pattern without a round trip per key.

`SCAN` with its default COUNT of 10 walks a database of 100k keys in 10,000 calls, and a
`DELETE` per key found costs another round trip each: the test session's cleanup of its online
store took 42 s that way. Here the scan asks for 1,000 keys a call and the keys go in one
`UNLINK` per chunk (freed in the background by Redis).
"""

from __future__ import annotations

from typing import Any

SCAN_COUNT = 1000


def delete_matching(client: Any, *patterns: str | bytes, chunk: int = 1000) -> int:
    """Delete every key of `client`'s database matching one of `patterns` (glob, as SCAN's
    MATCH); returns how many were deleted."""
    deleted = 0
    for pattern in patterns:
        keys: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
            keys.append(key)
            if len(keys) >= chunk:
                deleted += client.unlink(*keys)
                keys = []
        if keys:
            deleted += client.unlink(*keys)
    return deleted
