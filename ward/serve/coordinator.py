"""The Coordinator Serve deployment: one replica running :class:`~ward.alarms.coordinator.WardCoordinator`.

Why a thin wrapper: all decisions (rule, episodes, health, storage) are the pure coordinator's, tested
without Ray; this module only gives it a replica, the store and its spilling writer, and the threads
that flush every ``database.flush_interval_s``, poll the dashboard's rule overrides every
``RULE_POLL_S`` and apply the retention policy (:class:`~ward.alarms.retention.RetentionRunner`).
The config arrives as plain data (Serve application args) and is validated again here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from ward.alarms.coordinator import RULE_POLL_S, WardCoordinator
from ward.alarms.retention import RetentionRunner
from ward.config import load_ward_config
from ward.core.messages import CameraReport, ClipScore

log = logging.getLogger("ward.serve")

__all__ = ["Coordinator"]

try:
    from ray import serve
except ImportError:  # pragma: no cover (ward.alarms.coordinator works without Ray)
    serve = None  # type: ignore[assignment]

if serve is not None:

    @serve.deployment(name="Coordinator", num_replicas=1, max_ongoing_requests=256,
                      ray_actor_options={"num_cpus": 0.25})
    class Coordinator:
        """One replica: owns the rule state and the single database writer."""

        def __init__(self, config: Mapping[str, Any]) -> None:
            from ward.store import SpillingWriter, Store  # noqa: PLC0415

            cfg = load_ward_config(config, validate_paths=False)
            self.store = Store(cfg.database.url)
            writer = SpillingWriter(self.store, cfg.database.spill_dir)
            version = f"vsvig:{cfg.models.vsvig.path.rsplit('/', 1)[-1]}"
            self.core = WardCoordinator(cfg, self.store, writer, model_version=version)
            self.core.register_beds()
            self.recovered = self.core.recover()
            log.info("coordinator recovered: %s", self.recovered)
            self._stop = threading.Event()
            self._interval = cfg.database.flush_interval_s
            self._thread = threading.Thread(target=self._loop, name="ward-flush", daemon=True)
            self._thread.start()
            self.retention = RetentionRunner(self.store, cfg.retention)
            if cfg.retention.enabled:  # off the flush thread: a long run never delays sample writes
                self.retention.start()
            self._rules_thread = threading.Thread(target=self._rules_loop, name="ward-rules", daemon=True)
            self._rules_thread.start()  # its own thread: a slow database never delays sample writes

        def _loop(self) -> None:
            while not self._stop.wait(self._interval):
                try:
                    self.core.flush()
                except Exception:  # noqa: BLE001
                    log.exception("coordinator flush failed")

        def _rules_loop(self) -> None:
            while not self._stop.wait(RULE_POLL_S):
                self.core.poll_rules()

        async def push(self, result: ClipScore) -> list[dict[str, Any]]:
            return self.core.push(result)

        async def report_status(self, statuses: dict[str, CameraReport]) -> None:
            self.core.report_status(statuses)

        async def report_batches(self, kind: str, replica: str, snapshot: dict[str, Any]) -> None:
            self.core.report_batches(kind, replica, snapshot)

        async def snapshot(self) -> list[dict[str, Any]]:
            return self.core.snapshot()

        async def metrics(self) -> dict[str, Any]:
            return {**self.core.metrics(), "retention": self.retention.metrics()}

        async def latency(self) -> dict[str, float | None]:
            return self.core.latency_quantiles()

        def recovery_report(self) -> dict[str, Any]:
            return self.recovered

        def check_health(self) -> None:
            if not self._thread.is_alive():
                raise RuntimeError("coordinator flush thread died")
            if not self._rules_thread.is_alive():
                raise RuntimeError("coordinator rule-override thread died")

        def __del__(self) -> None:
            retention = getattr(self, "retention", None)
            if retention is not None:
                retention.stop(timeout=1.0)
            stop = getattr(self, "_stop", None)
            if stop is not None:
                stop.set()
                try:
                    self.core.flush()  # last rows before shutdown
                except Exception:  # noqa: BLE001
                    pass
