"""Database engines and connections for the warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import Engine, create_engine


def sqlalchemy_url(url: str) -> str:
    """postgresql://… → postgresql+psycopg://… (SQLAlchemy's psycopg 3 dialect)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """postgresql+psycopg://… → postgresql://… (what psycopg and Feast take)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url() -> str:
    """The warehouse URL in libpq form, starting embedded Postgres if none is configured."""
    from core.services import get_endpoints

    return get_endpoints().database_url


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, future=True)


def get_engine(url: str | None = None) -> Engine:
    """A pooled SQLAlchemy engine for the warehouse (cached per URL)."""
    return _engine_for(url or database_url())


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A raw psycopg connection (for COPY and hand-written SQL); commits on success."""
    with psycopg.connect(libpq_url(url or database_url()), autocommit=autocommit) as conn:
        yield conn
