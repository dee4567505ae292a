"""Alembic environment: migrates the warehouse at the URL `core.migrate` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from core.db import sqlalchemy_url
from core.schema import metadata

config = context.config


def run_migrations() -> None:
    url = sqlalchemy_url(config.get_main_option("sqlalchemy.url"))
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
