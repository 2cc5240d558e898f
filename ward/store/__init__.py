"""ward.store: SQL storage and history (SQLite by default, PostgreSQL by URL).

Everything else in ward reads and writes through :class:`Store` (and :class:`SpillingWriter` for
outage-tolerant sample writes); see the README section "Storage and history". Names are imported lazily so that
`ward --help` (which imports ward.store.cli) does not pay for SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ensure_schema": "engine", "make_engine": "engine", "setup_lock": "engine", "upgrade": "engine",
    "AlarmRecord": "records", "BedStats": "records", "HistoryPoint": "records", "Sample": "records",
    "StoreError": "records", "UnknownBedError": "records", "UserRecord": "records", "WriteResult": "records",
    "RetentionPolicy": "retention", "Store": "repository",
    "Overflow": "spill", "SpillingWriter": "spill", "WriteOutcome": "spill",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ward.store.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ward.store' has no attribute {name!r}")
