"""When and how the coordinator applies the ward's ``retention:`` policy to the store.

Why it sits with the coordinator and not in the store: the store knows how to delete (batched, so
sample writes never wait); deciding when (at start, every ``interval_h``, sooner after a failure) and
never letting a failed run take the coordinator down is the running ward's business.
:class:`RetentionSchedule` is the pure decision; :class:`RetentionRunner` applies it from a daemon
thread (no Ray: the deployment in :mod:`ward.serve.coordinator` only starts and stops it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ward.config import RetentionConfig

log = logging.getLogger("ward.serve")

__all__ = ["RETENTION_RETRY_S", "RetentionRunner", "RetentionSchedule"]

RETENTION_RETRY_S = 900.0  # a failed retention run is retried after this (or interval_h if shorter)


@dataclass
class RetentionSchedule:
    """When the next retention run is due: at start, then ``interval_s`` after the last run, or
    ``retry_s`` after a failed one (the database was down, say). Pure: ``now`` is passed in
    (monotonic seconds), so the decision is tested without threads or a clock."""

    interval_s: float
    retry_s: float = RETENTION_RETRY_S
    last_attempt: float | None = None
    last_ok: bool = True

    def seconds_until_due(self, now: float) -> float:
        """<= 0 when a run is due now."""
        if self.last_attempt is None:
            return 0.0
        wait = self.interval_s if self.last_ok else min(self.retry_s, self.interval_s)
        return self.last_attempt + wait - now

    def due(self, now: float) -> bool:
        return self.seconds_until_due(now) <= 0.0

    def record(self, now: float, ok: bool) -> None:
        self.last_attempt, self.last_ok = now, ok


class RetentionRunner:
    """Applies a retention policy on its schedule in a daemon thread; failures are logged and
    counted, never raised (a retention problem must not take the coordinator down)."""

    def __init__(self, store: Any, cfg: RetentionConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.policy = cfg.policy()
        self.clock = clock
        self.schedule = RetentionSchedule(cfg.interval_h * 3600.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.errors = 0
        self.deleted: dict[str, int] = {}
        self.last_success: float | None = None  # wall time (epoch s) of the last completed run

    def run_once(self) -> dict[str, int] | None:
        """One run now: rows deleted per table, or None when it failed."""
        started = self.clock()
        try:
            deleted = self.store.apply_retention(self.policy)
        except Exception as exc:  # noqa: BLE001 (counted and retried; the coordinator carries on)
            log.error("retention run failed (retried in %.0f s): %s: %s",
                      min(self.schedule.retry_s, self.schedule.interval_s), type(exc).__name__, exc)
            with self._lock:
                self.runs += 1
                self.errors += 1
                self.schedule.record(started, ok=False)
            return None
        log.info("retention run: deleted %s", deleted)
        with self._lock:
            self.runs += 1
            for table, n in deleted.items():
                self.deleted[table] = self.deleted.get(table, 0) + int(n)
            self.last_success = time.time()
            self.schedule.record(started, ok=True)
        return deleted

    def run_if_due(self) -> bool:
        """Run when the schedule says so; True when a run was made."""
        if not self.schedule.due(self.clock()):
            return False
        self.run_once()
        return True

    def start(self) -> None:
        """Run now (in the thread, so start-up is not delayed) and then on schedule."""
        self._thread = threading.Thread(target=self._loop, name="ward-retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_if_due()
            self._stop.wait(min(60.0, max(1.0, self.schedule.seconds_until_due(self.clock()))))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def metrics(self) -> dict[str, Any]:
        """What /metrics shows of retention (counters are cumulative since the coordinator started)."""
        with self._lock:
            return {"runs": self.runs, "errors": self.errors, "deleted": dict(self.deleted),
                    "last_success": self.last_success}
