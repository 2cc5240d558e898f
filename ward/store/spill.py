"""Outage-tolerant writes: whatever cannot reach the database goes to a durable, ordered journal.

The journal (``spill.jsonl``) is an append-only JSON-lines file, fsync'd after every append, so it
survives a process crash or restart; a new writer on the same directory picks it up. It holds typed
entries in the order they were made: probability samples (a plain sample dict per line, the
original spill format) and operations (``{"op": ...}``): ``alarm_open`` (with the caller's stable
episode key), ``alarm_update`` and ``alarm_close`` (addressed by that key, since the database id
does not exist while the database is down) and ``health`` (camera health events). While the journal
holds entries, new ones are appended behind them, and everything is replayed in order once the
database answers again. Every entry is idempotent (samples are keyed by (bed, t), an open by its
episode key, the peak only rises, a close sets the same end, a health event is skipped when the
same one is stored), so a replay interrupted half-way - or the same journal replayed twice - is
simply retried and creates no duplicates.

Nothing is dropped unless the journal holds ``max_rows`` samples. Samples beyond it are dropped and
that is reported loudly: ``log.error``, the ``dropped`` counter, the ``on_overflow`` callback, and -
once the database is back - one 'technical' alarm per affected bed saying how many samples were lost
and when. Operations (alarms, health) are few and are never dropped. An entry the database rejects
as bad input on replay (e.g. a bed deleted meanwhile) is moved to ``rejected.jsonl`` with
``log.error`` instead of blocking the journal forever.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import exc as sa_exc

from ward.store.models import HEALTH_STATES, TIERS
from ward.store.records import Sample, StoreError, check_choice, check_episode_key, check_finite
from ward.store.repository import Store
from ward.store.types import as_utc

log = logging.getLogger(__name__)

SPILL_FILE = "spill.jsonl"
DROPPED_FILE = "dropped.json"
REJECTED_FILE = "rejected.jsonl"
_REPLAY_CHUNK = 2000
_OP_PREFIX = b'{"op":'  # every operation line starts so (json.dumps keeps the dict order)
_OP_PREFIX_S = _OP_PREFIX.decode()
OPS = ("alarm_open", "alarm_update", "alarm_close", "health")


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


def _iso(t: datetime, what: str) -> str:
    try:
        return as_utc(t, what).isoformat()
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def apply_op(store: Store, op: Mapping[str, Any]) -> Any:
    """Apply one journal operation to ``store`` (idempotently); returns the store call's result."""
    kind = op["op"]
    if kind == "alarm_open":
        return store.open_alarm(op["bed"], op["tier"], datetime.fromisoformat(op["start"]), op["peak"],
                                op.get("reason"), episode_key=op["key"])
    if kind == "alarm_update":
        return store.update_alarm_by_key(op["key"], peak=op.get("peak"), reason=op.get("reason"))
    if kind == "alarm_close":
        return store.close_alarm_by_key(op["key"], datetime.fromisoformat(op["end"]))
    if kind == "health":
        return store.record_health(op["bed"], op["state"], datetime.fromisoformat(op["at"]), op.get("reason"),
                                   dedupe=True)
    raise StoreError(f"unknown journal operation {kind!r}: expected one of {', '.join(OPS)}")


class SpillingWriter:
    """Wraps the store's writes - samples, alarm episodes, camera health - with a bounded, durable,
    ordered journal. Thread-safe."""

    def __init__(self, store: Store, spill_dir: str | os.PathLike[str], max_rows: int = 2_000_000,
                 on_overflow: Callable[[Overflow], None] | None = None) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.store = store
        self.dir = Path(spill_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / SPILL_FILE
        self.dropped_path = self.dir / DROPPED_FILE
        self.rejected_path = self.dir / REJECTED_FILE
        self.max_rows = max_rows
        self.on_overflow = on_overflow
        self.dropped = 0
        self.rejected = 0
        self._lock = threading.Lock()
        self._rows, self._ops = self._count()
        self._ids: dict[str, int] = {}  # episode key -> alarm id, once the database has assigned one
        self._dropped_by_bed: dict[str, list[Any]] = (json.loads(self.dropped_path.read_text())
                                                      if self.dropped_path.exists() else {})

    # ------------------------------------------------------------------------------------ public
    @property
    def pending(self) -> int:
        """Journal entries waiting for the database (samples + alarm/health operations)."""
        return self._rows + self._ops

    @property
    def pending_ops(self) -> int:
        """Alarm/health operations waiting in the journal."""
        return self._ops

    def write(self, rows: Iterable[Sample | Mapping[str, Any]]) -> WriteOutcome:
        """Store rows, or spill them if the database is unavailable. Bad rows (unknown bed, naive
        time) raise StoreError immediately when the database can check them."""
        samples = [r if isinstance(r, Sample) else Sample.from_json(r) for r in rows]
        for s in samples:  # reject naive times before they reach the spill
            as_utc(s.t, "sample time")
        with self._lock:
            stored = 0
            if self.pending:
                stored += self._replay_locked()
                if self.pending:
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

    def open_alarm(self, episode_key: str, bed: str, tier: str, start: datetime, peak: float = 0.0,
                   reason: str | None = None) -> int | None:
        """Open the alarm episode ``episode_key``; its database id, or None when the open was
        journaled (the id is known after the replay: :meth:`alarm_id`)."""
        key = check_episode_key(episode_key)
        done, aid = self._submit({"op": "alarm_open", "key": key, "bed": bed,
                                  "tier": check_choice(tier, TIERS, "tier"), "start": _iso(start, "start"),
                                  "peak": check_finite(peak, "peak"), "reason": reason})
        if done:
            self._ids[key] = aid
        return aid if done else None

    def update_alarm(self, episode_key: str, *, peak: float | None = None, reason: str | None = None) -> bool:
        """Raise the peak / replace the reason of an episode; True if stored now, False if journaled."""
        op: dict[str, Any] = {"op": "alarm_update", "key": check_episode_key(episode_key)}
        if peak is not None:
            op["peak"] = check_finite(peak, "peak")
        if reason is not None:
            op["reason"] = reason
        return self._submit(op)[0]

    def close_alarm(self, episode_key: str, end: datetime) -> bool:
        """End an episode; True if stored now, False if journaled."""
        return self._submit({"op": "alarm_close", "key": check_episode_key(episode_key),
                             "end": _iso(end, "end")})[0]

    def record_health(self, bed: str, state: str, at: datetime, reason: str | None = None) -> bool:
        """Append a camera health event; True if stored now, False if journaled."""
        return self._submit({"op": "health", "bed": bed,
                             "state": check_choice(state, HEALTH_STATES, "camera health state"),
                             "at": _iso(at, "at"), "reason": reason})[0]

    def alarm_id(self, episode_key: str) -> int | None:
        """The database id of an episode, or None while it is only in the journal / the database
        is unreachable."""
        aid = self._ids.get(episode_key)
        if aid is not None:
            return aid
        try:
            aid = self.store.alarm_id_for_key(episode_key)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return None
        if aid is not None:
            self._ids[episode_key] = aid
        return aid

    def flush(self) -> bool:
        """Try to replay the journal; True when it is empty afterwards."""
        with self._lock:
            if self.pending:
                self._replay_locked()
            if not self.pending:
                self._report_drops_locked()
            return self.pending == 0

    # ---------------------------------------------------------------------------------- internals
    def _submit(self, op: dict[str, Any]) -> tuple[bool, Any]:
        """Apply ``op`` now (behind any journal backlog, to keep the order) or journal it."""
        with self._lock:
            if self.pending:
                self._replay_locked()
            if not self.pending:
                try:
                    return True, apply_op(self.store, op)
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    log.warning("database unavailable (%s): journaling %s to %s", type(exc).__name__,
                                op["op"], self.path)
            self._append_locked([json.dumps(op) + "\n"])
            self._ops += 1
            return False, None

    def _count(self) -> tuple[int, int]:
        rows = ops = 0
        if self.path.exists():
            with self.path.open("rb") as f:
                for line in f:
                    if line.startswith(_OP_PREFIX):
                        ops += 1
                    elif line.strip():
                        rows += 1
        return rows, ops

    def _parse(self, line: str, last: bool) -> Sample | dict[str, Any] | None:
        try:
            d = json.loads(line)
            return d if "op" in d else Sample.from_json(d)
        except (ValueError, KeyError, TypeError) as exc:
            if last:  # torn final line from a crash mid-append
                log.error("spill %s: ignoring torn last line (%s)", self.path, exc)
                return None
            raise

    def _replay_locked(self) -> int:
        """Apply the journal in order until it is empty or the database goes away again; returns
        the number of samples replayed. Lines are parsed lazily, chunk by chunk, so an attempt that
        fails at once (database still down) costs a file read, not a parse of the whole journal."""
        lines = [ln for ln in (self.path.read_text().splitlines() if self.path.exists() else []) if ln.strip()]
        n = len(lines)
        done = stored = 0
        rejected: list[tuple[int, str, str]] = []
        try:
            i = 0
            while i < n:
                item = self._parse(lines[i], i == n - 1)
                if item is None:
                    i += 1
                elif isinstance(item, Sample):
                    chunk: list[tuple[int, Sample]] = [(i, item)]
                    j = i + 1
                    while j < n and len(chunk) < _REPLAY_CHUNK and not lines[j].startswith(_OP_PREFIX_S):
                        nxt = self._parse(lines[j], j == n - 1)
                        if isinstance(nxt, Sample):
                            chunk.append((j, nxt))
                        j += 1
                    try:
                        self.store.write_samples([c[1] for c in chunk])
                    except StoreError:  # isolate the bad rows, keep the good ones
                        for k, sample in chunk:
                            try:
                                self.store.write_samples([sample])
                            except StoreError as exc:
                                rejected.append((k, lines[k], str(exc)))
                    stored += len(chunk) - sum(1 for k, *_ in rejected if i <= k < j)
                    i = j
                else:
                    try:
                        res = apply_op(self.store, item)
                        if item["op"] == "alarm_open":
                            self._ids[item["key"]] = res
                    except StoreError as exc:
                        rejected.append((i, lines[i], str(exc)))
                    i += 1
                done = i
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("spill replay paused after %d/%d entries: %s", done, n, type(exc).__name__)
        self._reject_locked([(line, why) for k, line, why in rejected if k < done])
        if done >= n:
            self.path.unlink(missing_ok=True)
            self._rows = self._ops = 0
            log.info("spill replayed: %d entries", done)
        elif done:
            self._rewrite_locked(lines[done:])
        return stored

    def _reject_locked(self, rejected: list[tuple[str, str]]) -> None:
        """Move entries the database refused as bad input aside (they would block the journal)."""
        if not rejected:
            return
        self.rejected += len(rejected)
        with self.rejected_path.open("a") as f:
            for line, why in rejected:
                f.write(json.dumps({"error": why, "entry": json.loads(line)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("spill replay: %d entries rejected by the database, moved to %s (first: %s)",
                  len(rejected), self.rejected_path, rejected[0][1])

    def _rewrite_locked(self, lines: list[str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._ops = sum(1 for line in lines if line.startswith(_OP_PREFIX_S))
        self._rows = len(lines) - self._ops

    def _append_locked(self, lines: list[str]) -> None:
        new_file = not self.path.exists()
        with self.path.open("a") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        if new_file:  # make the new directory entry durable too
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _spill_locked(self, samples: list[Sample], stored: int) -> WriteOutcome:
        room = max(0, self.max_rows - self._rows)
        keep, lost = samples[:room], samples[room:]
        if keep:
            self._append_locked([json.dumps(s.to_json()) + "\n" for s in keep])
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
        """Once the database is reachable, record each bed's data loss as a technical alarm (with a
        key derived from bed and time, so a report repeated after a crash is not duplicated)."""
        if not self._dropped_by_bed:
            return
        for bed, (n, first, last) in sorted(list(self._dropped_by_bed.items())):
            key = "drop-" + hashlib.sha256(f"{bed}|{first}".encode()).hexdigest()[:40]
            try:
                aid = self.store.open_alarm(bed, "technical", datetime.fromisoformat(first), 0.0,
                                            reason=f"storage spill full: {n} samples lost "
                                                   f"between {first} and {last}", episode_key=key)
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


__all__ = ["OPS", "Overflow", "SpillingWriter", "WriteOutcome", "apply_op", "is_unavailable"]
