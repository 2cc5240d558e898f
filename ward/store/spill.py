"""Outage-tolerant writes: rows that cannot reach the database go to a bounded on-disk spill.

The spill is an append-only JSON-lines file, fsync'd after every append, so it survives a process
crash or restart; a new writer on the same directory picks it up. While the spill holds rows, new
rows are appended behind them and everything is replayed in order once the database answers again
(``Store.write_samples`` is idempotent, so a replay interrupted half-way is simply retried).

Nothing is dropped unless the spill is full (``max_rows``). Rows beyond it are dropped and that is
reported loudly: ``log.error``, the ``dropped`` counter, the ``on_overflow`` callback, and - once the
database is back - one 'technical' alarm per affected bed saying how many samples were lost and when.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import exc as sa_exc

from ward.store.repository import Sample, Store, StoreError
from ward.store.types import as_utc

log = logging.getLogger(__name__)

SPILL_FILE = "spill.jsonl"
DROPPED_FILE = "dropped.json"
_REPLAY_CHUNK = 2000


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "database unreachable / locked / restarting", i.e. worth spilling."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                        sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


@dataclass(frozen=True)
class Overflow:
    """Reported to ``on_overflow`` when rows had to be dropped because the spill was full."""

    dropped_now: int
    dropped_total: int
    spill_rows: int
    max_rows: int


@dataclass(frozen=True)
class WriteOutcome:
    stored: int      # rows that reached the database in this call (new + replayed)
    spilled: int     # rows of this call appended to the spill
    dropped: int     # rows of this call dropped because the spill was full


class SpillingWriter:
    """Wraps ``Store.write_samples`` with a bounded, durable spill. Thread-safe."""

    def __init__(self, store: Store, spill_dir: str | os.PathLike[str], max_rows: int = 2_000_000,
                 on_overflow: Callable[[Overflow], None] | None = None) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.store = store
        self.dir = Path(spill_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / SPILL_FILE
        self.dropped_path = self.dir / DROPPED_FILE
        self.max_rows = max_rows
        self.on_overflow = on_overflow
        self.dropped = 0
        self._lock = threading.Lock()
        self._rows = self._count_rows()
        self._dropped_by_bed: dict[str, list[Any]] = (json.loads(self.dropped_path.read_text())
                                                      if self.dropped_path.exists() else {})

    # ------------------------------------------------------------------------------------ public
    @property
    def pending(self) -> int:
        """Rows waiting in the spill."""
        return self._rows

    def write(self, rows: Iterable[Sample | Mapping[str, Any]]) -> WriteOutcome:
        """Store rows, or spill them if the database is unavailable. Bad rows (unknown bed, naive
        time) raise StoreError immediately when the database can check them."""
        samples = [r if isinstance(r, Sample) else Sample.from_json(r) for r in rows]
        for s in samples:  # reject naive times before they reach the spill
            as_utc(s.t, "sample time")
        with self._lock:
            stored = 0
            if self._rows:
                stored += self._replay_locked()
                if self._rows:
                    return self._spill_locked(samples, stored)
            try:
                stored += self.store.write_samples(samples).inserted
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("database unavailable (%s): spilling %d rows to %s", type(exc).__name__,
                            len(samples), self.path)
                return self._spill_locked(samples, stored)
            self._report_drops_locked()
            return WriteOutcome(stored, 0, 0)

    def flush(self) -> bool:
        """Try to replay the spill; True when it is empty afterwards."""
        with self._lock:
            if self._rows:
                self._replay_locked()
            if not self._rows:
                self._report_drops_locked()
            return self._rows == 0

    # ---------------------------------------------------------------------------------- internals
    def _count_rows(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    def _read(self) -> list[Sample]:
        out: list[Sample] = []
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(Sample.from_json(json.loads(line)))
            except (ValueError, KeyError) as exc:
                if i == len(lines) - 1:  # torn final line from a crash mid-append
                    log.error("spill %s: ignoring torn last line (%s)", self.path, exc)
                    continue
                raise
        return out

    def _replay_locked(self) -> int:
        samples = self._read()
        done = 0
        try:
            for i in range(0, len(samples), _REPLAY_CHUNK):
                self.store.write_samples(samples[i:i + _REPLAY_CHUNK])
                done = i + len(samples[i:i + _REPLAY_CHUNK])
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("spill replay paused after %d/%d rows: %s", done, len(samples), type(exc).__name__)
        if done >= len(samples):
            self.path.unlink(missing_ok=True)
            self._rows = 0
            log.info("spill replayed: %d rows", done)
        elif done:
            self._rewrite_locked(samples[done:])
        return done

    def _rewrite_locked(self, samples: list[Sample]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.writelines(json.dumps(s.to_json()) + "\n" for s in samples)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._rows = len(samples)

    def _spill_locked(self, samples: list[Sample], stored: int) -> WriteOutcome:
        room = max(0, self.max_rows - self._rows)
        keep, lost = samples[:room], samples[room:]
        if keep:
            new_file = not self.path.exists()
            with self.path.open("a") as f:
                f.writelines(json.dumps(s.to_json()) + "\n" for s in keep)
                f.flush()
                os.fsync(f.fileno())
            if new_file:  # make the new directory entry durable too
                fd = os.open(self.dir, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._rows += len(keep)
        if lost:
            self.dropped += len(lost)
            for s in lost:
                t = as_utc(s.t).isoformat()
                d = self._dropped_by_bed.setdefault(s.bed, [0, t, t])
                d[0] += 1
                d[1], d[2] = min(d[1], t), max(d[2], t)
            tmp = self.dropped_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._dropped_by_bed))
            os.replace(tmp, self.dropped_path)
            log.error("spill full (%d rows): DROPPED %d samples (%d in total) - technical condition",
                      self.max_rows, len(lost), self.dropped)
            if self.on_overflow is not None:
                self.on_overflow(Overflow(len(lost), self.dropped, self._rows, self.max_rows))
        return WriteOutcome(stored, len(keep), len(lost))

    def _report_drops_locked(self) -> None:
        """Once the database is reachable, record each bed's data loss as a technical alarm."""
        if not self._dropped_by_bed:
            return
        for bed, (n, first, last) in sorted(list(self._dropped_by_bed.items())):
            try:
                aid = self.store.open_alarm(bed, "technical", datetime.fromisoformat(first), 0.0,
                                            reason=f"storage spill full: {n} samples lost "
                                                   f"between {first} and {last}")
                self.store.close_alarm(aid, datetime.fromisoformat(last))
            except StoreError as exc:
                log.error("could not record data loss for bed %s: %s", bed, exc)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self.dropped_path.write_text(json.dumps(self._dropped_by_bed))
                return  # database went away again: report on the next successful write
            del self._dropped_by_bed[bed]
        self._dropped_by_bed.clear()
        self.dropped_path.unlink(missing_ok=True)


__all__ = ["Overflow", "SpillingWriter", "WriteOutcome", "is_unavailable"]
