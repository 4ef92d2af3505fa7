"""Alembic environment. Migrations are plain scripts in ``versions/``; each domain owns a branch
(label = domain name) that depends on ``core``, so ``upgrade heads`` applies them all."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from shelfwise.store.metadata import target_metadata

config = context.config


def run_migrations() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(),
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations()
