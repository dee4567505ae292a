"""What the account routers share: running accounts/ calls off the event loop, and the
public view of a user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Path

from accounts import repo
from accounts.sessions import STORE_DOWN, store_down, sync_redis
from core.db import connect
from serving.schemas_users import UserOut

T = TypeVar("T")
UserId = Annotated[str, Path(alias="userId", min_length=1, max_length=64, description="User id")]
DOWN = "The warehouse or the session store (Redis) is not reachable"


async def run_account(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`fn(conn, r, **kwargs)` on a worker thread: an autocommit warehouse connection (each
    statement commits unless `fn` opens a transaction) and the blocking Redis client."""

    def work() -> T:
        try:
            with connect(autocommit=True) as conn:
                return fn(conn, sync_redis(), **kwargs)
        except STORE_DOWN as exc:
            raise store_down(exc) from None

    return await anyio.to_thread.run_sync(work)


def without_redis(fn: Callable[..., T]) -> Callable[..., T]:
    """An accounts/ function of (conn, **kwargs) called as run_account's (conn, redis, ...)."""

    def call(conn: Any, _r: Any, **kwargs: Any) -> T:
        return fn(conn, **kwargs)

    return call


def user_out(user: repo.User) -> UserOut:
    """The public fields of an account."""
    return UserOut.model_validate(user.public())
