"""The Store: the only way the coordinator, the API, the dashboard and the CLI touch the database.

One class, so callers hold one object per database, composed of one mixin per concern, each in its
own module (read there): beds.py (beds, camera config and health, patient stays), samples.py
(model versions, probability samples, timelines), alarms.py (episodes, acknowledgements),
queries.py (statistics), users.py (users, passwords, tokens), audit_log.py (audit rows),
retention.py (deleting old rows). Records and errors are ward.store.records. This module only
opens the engine and migrates the schema.

Mixins rather than a facade delegating to helper objects: delegation would repeat every public
method's signature and docstring here (some sixty), two places to keep in step, while the mixins
write each method once, in its concern's module, and share the engine through
:class:`~ward.store.base.StoreBase`.

Small, typed, dialect-neutral (SQLite and PostgreSQL). Writes are idempotent and batched; reads
return plain frozen dataclasses. All times are aware UTC datetimes; naive datetimes raise
ValueError (see ward.store.types). Bad input raises :class:`~ward.store.records.StoreError` (a
ValueError) whose message says what was wrong and what to do.
"""

from __future__ import annotations

from sqlalchemy import Engine

from ward.store.alarms import AlarmStore
from ward.store.audit import SYSTEM_ACTOR, AuditSource
from ward.store.audit_log import AuditStore
from ward.store.beds import BedStore
from ward.store.engine import ensure_schema, make_engine
from ward.store.queries import QueryStore
from ward.store.retention import RetentionStore
from ward.store.samples import SampleStore
from ward.store.users import UserStore

__all__ = ["Store"]


class Store(SampleStore, AlarmStore, BedStore, QueryStore, UserStore, RetentionStore, AuditStore):
    """Repository over one database URL (SQLite file or PostgreSQL). Thread-safe: each call uses
    its own pooled connection and transaction."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None, auto_migrate: bool = True,
                 busy_timeout_ms: int = 5000, actor: str = SYSTEM_ACTOR, source: str = AuditSource.WARD) -> None:
        """``actor``/``source``: who the changes made through this store are audited as when a call
        does not say (the ward itself by default; the CLI passes ``cli:<OS user>``, "cli")."""
        engine = engine or make_engine(url, busy_timeout_ms=busy_timeout_ms)
        if auto_migrate:
            ensure_schema(engine)
        super().__init__(engine, actor=actor, source=source)

    def close(self) -> None:
        self.engine.dispose()
