"""Engines and schema management: SQLite by default, PostgreSQL by URL; Alembic run programmatically.

``make_engine`` applies the per-connection settings each backend needs (SQLite: WAL, busy timeout,
foreign keys; PostgreSQL: UTC session time zone, pre-ping so a restarted server is picked up again).
``upgrade``/``ensure_schema`` use an alembic Config built in code, so no alembic.ini is needed and
``ward db upgrade`` works from any directory. Both hold :func:`setup_lock` while migrating, so
processes that open the same fresh database at once (the ward's start, a dashboard, the CLI) migrate
it one after the other instead of racing into "database is locked" or duplicate-table errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///./ward.db"
# pg_advisory_lock key held while migrating a PostgreSQL database (any constant unique to ward)
_PG_SCHEMA_LOCK = 0x77617264_0001
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def resolve_url(url: str | None) -> str:
    """The database URL: explicit argument, else $WARD_DB_URL, else ./ward.db (SQLite)."""
    return url or os.environ.get("WARD_DB_URL") or DEFAULT_URL


def make_engine(url: str | None = None, *, busy_timeout_ms: int = 5000, echo: bool = False) -> Engine:
    """Create an engine for ``url``; only sqlite and postgresql(+psycopg) URLs are accepted."""
    url = resolve_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ValueError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo}
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            parent = Path(db).expanduser().resolve().parent
            if not parent.is_dir():
                raise ValueError(f"SQLite database directory {parent} does not exist: create it first")
        engine = create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit transactions break SAVEPOINT and
            # would hide the busy timeout on the first write).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if db and db != ":memory:":
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
            # Each 1 s batch dirties ~2 pages per bed (samples + rollups): a 64 MB page cache keeps the
            # hot leaves resident and checkpointing every ~40 MB of WAL (not 4 MB) makes the fsyncs
            # that checkpoints cost 10x rarer.
            cur.execute("PRAGMA cache_size = -65536")
            cur.execute("PRAGMA wal_autocheckpoint = 10000")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC",
                                                                       "connect_timeout": 5}, **kwargs)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path.db or "
                     "postgresql+psycopg://user@host/db")


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def setup_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's setup lock: one process at a time migrates it (or creates its first admin).

    SQLite: an exclusive ``flock`` on ``<database file>.migrate.lock`` (SQLite's own locks cannot be
    held across Alembic's separate connections, and its busy handler does not cover every DDL race);
    in-memory databases need none. PostgreSQL: a session-level advisory lock on a dedicated
    connection, released when the block ends (or the connection dies)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_SCHEMA_LOCK})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_SCHEMA_LOCK})")
                conn.commit()
        return
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        yield
        return
    with open(f"{Path(db).expanduser().resolve()}.migrate.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(url: str | Engine | None = None, revision: str = "head") -> str | None:
    """Run Alembic migrations up to ``revision`` under :func:`setup_lock`; returns the resulting revision."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    with setup_lock(engine):
        command.upgrade(_alembic_config(engine), revision)
    return current_revision(engine)


def ensure_schema(url: str | Engine | None = None) -> bool:
    """Upgrade when the database is behind head; returns True if this call ran migrations.

    The check is repeated under :func:`setup_lock`, so of several processes starting at once on a
    fresh database exactly one migrates and the others find it at head."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    head = head_revision()
    if current_revision(engine) == head:
        return False
    with setup_lock(engine):
        if current_revision(engine) == head:
            return False
        command.upgrade(_alembic_config(engine), "head")
    return True
