"""What every part of the Store shares: the engine, its dialect, and who changes are audited as.

:class:`~ward.store.repository.Store` is one class composed of a mixin per concern (beds.py,
samples.py, alarms.py, users.py, audit_log.py, retention.py, queries.py). Each mixin derives from
:class:`StoreBase`, so it can be read and type-checked on its own, and the facade in repository.py
is the only place that opens an engine and migrates the schema.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sq


class StoreBase:
    """The state of one Store: a pooled engine (each call uses its own connection and transaction, so
    a Store is thread-safe), its dialect name, and the default actor and source of audited changes."""

    engine: Engine
    dialect: str  # "sqlite" or "postgresql"
    actor: str
    source: str

    def __init__(self, engine: Engine, *, actor: str, source: str) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.actor, self.source = actor, str(source)
        # the dialect's INSERT, for ON CONFLICT DO NOTHING (same API on both backends)
        self._insert: Any = pg.insert if self.dialect == "postgresql" else sq.insert

    def _who(self, actor: str | None, source: str | None) -> tuple[str, str]:
        """The actor and source of a change: as given, else this store's (see ``Store(actor=...)``)."""
        return actor or self.actor, source or self.source
