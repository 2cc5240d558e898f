"""Alembic environment: the engine comes from ``config.attributes['engine']`` (see engine.py)."""

from __future__ import annotations

from typing import Any

from alembic import context

from ward.store.models import Base

config = context.config
target_metadata = Base.metadata


def _pragma(connection: Any, sql: str) -> None:
    """Run a PRAGMA on the raw SQLite connection, outside any transaction (inside one, SQLite ignores
    ``foreign_keys``; the engine's begin hook would open one for any SQLAlchemy-level statement)."""
    connection.connection.driver_connection.execute(sql)


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from ward.store.engine import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch ALTER on SQLite rebuilds the table (copy, DROP, rename). With foreign keys on, the
            # DROP cascades: rebuilding `users` would delete every API token and session. Alembic's own
            # recipe: foreign keys off for the migration (set outside a transaction), checked after.
            _pragma(connection, "PRAGMA foreign_keys = OFF")
        try:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                bad = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.rollback()
                if bad:
                    raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {bad[:5]}")
        finally:
            if sqlite:
                connection.rollback()
                _pragma(connection, "PRAGMA foreign_keys = ON")


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported: run `ward db upgrade`")
run_migrations_online()
