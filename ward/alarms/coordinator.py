"""The coordinator's logic: each bed's rule, alarm episodes, camera health, technical alarms, storage.

Why it is apart from Ray: everything the ward decides about a bed once its probabilities exist
happens here, so it runs in a plain test (no Ray, no threads of its own; the store and the writer
are handed in). :mod:`ward.serve.coordinator` only wraps it in a Serve deployment with its threads.

:class:`WardCoordinator`: camera actors push clip probabilities and camera status into it;
:meth:`WardCoordinator.flush` (about once per second, from a thread) writes the buffered samples,
then alarm episodes (open / raise peak / close), camera health changes and technical alarms, all
through a :class:`~ward.store.SpillingWriter`: while the database is down they go, in order, to its
durable journal and are replayed idempotently when it returns, so an outage loses nothing and the
rules keep running. Each episode carries a client-generated ``key`` (the alarm's ``episode_key``);
it is referred to by that key until the database has assigned an id.

Episodes come from the rule's events only: a ``*_start`` event opens one, ``*_end`` closes it, and
its peak is the rule's own (:meth:`~ward.alarms.rule.BedRule.open_episodes`); an :class:`Episode`
adds only what storage needs (its key, database id, what was synced). Technical alarms are the
coordinator's own (camera offline too long).

State lives in SQL: after a restart, :meth:`WardCoordinator.recover` replays each bed's recent
stored probabilities through a fresh rule and adopts the alarms still open in the database, so a
restarted coordinator neither forgets an ongoing alarm nor opens a duplicate.

Rules: each bed runs :func:`ward.config.effective_rule` of its configured rule (the ward config's
``rules:`` and the bed's ``rules``, resolved once in :class:`~ward.config.ResolvedBed`) and the live
override an admin set on the dashboard (``bed_rule_overrides``). :meth:`WardCoordinator.refresh_rules`
reads the overrides (the deployment polls every ``RULE_POLL_S`` in its own thread, and at start
before the recovery replay) and reconfigures a changed bed in place, keeping its accumulator and
open episode; each change is logged and shown by ``/api/beds``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import numpy as np

from ward.alarms.rule import BedRule, RuleEvent
from ward.camera.health import CameraHealth
from ward.config import RuleOverride, WardConfig, effective_rule
from ward.core.messages import CameraReport, ClipScore
from ward.core.uris import redact_source_text, redact_uri

log = logging.getLogger("ward.serve")

__all__ = ["LATENCY_BUCKETS", "RECOVER_WINDOW_S", "RULE_POLL_S", "BedLive", "Episode", "WardCoordinator"]

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
RECOVER_WINDOW_S = 900.0  # stored samples replayed into the rule after a restart
RULE_POLL_S = 2.0          # dashboard rule overrides are read this often (off the sample path)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


@dataclass
class Episode:
    """An alarm episode's storage record: opened by a rule ``*_start`` event (or a technical alarm),
    its peak raised from the rule, closed by ``*_end``; synced to the database on flush."""

    tier: str
    start: float
    peak: float
    reason: str | None = None
    end: float | None = None
    db_id: int | None = None
    synced_peak: float = -1.0
    synced_end: bool = False
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # the alarm's episode_key
    synced_open: bool = False  # open stored or journaled (db_id may still be unknown)

    @property
    def dirty(self) -> bool:
        return (not self.synced_open or self.peak > self.synced_peak
                or (self.end is not None and not self.synced_end))


@dataclass
class BedLive:
    """Live view of one bed (what GET /api/beds shows)."""

    bed_id: str
    label: str | None
    rule: BedRule
    offline_alarm_after_s: float
    probability: float | None = None
    accumulator: float = 0.0
    updated_at: float | None = None
    state: str = "offline"
    reason: str = "camera actor starting"
    since: float = field(default_factory=time.time)
    recorded_state: str | None = None
    last_status_at: float | None = None
    camera: CameraReport | None = None                # the camera actor's last report
    episodes: dict[str, Episode] = field(default_factory=dict)  # open episode per tier
    samples_stored: int = 0
    clips_received: int = 0
    rule_source: str = "default"                    # layer of ward.config.RULE_LAYERS that set the rule
    rule_sources: dict[str, str] = field(default_factory=dict)
    override: RuleOverride = field(default_factory=RuleOverride)  # the stored override last seen
    override_info: dict[str, Any] | None = None     # its values, time, author (for /api/beds)
    rule_error: str | None = None                   # why the stored override is not applied


class WardCoordinator:
    """Rule, buffering and storage for every bed of a ward (thread-safe)."""

    def __init__(self, cfg: WardConfig, store: Any, writer: Any, *, model_version: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.store = store
        self.writer = writer
        self.model_version = model_version
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: list[Any] = []       # Sample rows waiting for the next flush
        self._capture: list[float] = []      # capture wall time of each buffered sample
        self._health: list[tuple[str, str, float, str]] = []
        self._closed: list[tuple[str, Episode]] = []  # ended episodes still to sync
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_n = 0
        self.recent_latency: deque[float] = deque(maxlen=20000)
        self.batches: dict[str, dict[str, dict[str, Any]]] = {"pose": {}, "vsvig": {}}
        self.flushes = 0
        self.flush_errors = 0
        self.last_flush_error: str | None = None
        now = clock()
        self.beds: dict[str, BedLive] = {}
        for rb in cfg.resolved_beds:
            b, eff = rb.bed, rb.rule
            self.beds[b.bed_id] = BedLive(b.bed_id, b.label, BedRule(eff.config, bed_id=b.bed_id),
                                          b.offline_alarm_after_s, since=now, rule_source=eff.source,
                                          rule_sources=dict(eff.sources))
        self.rule_changes = 0
        self.rule_poll_error: str | None = None

    # ------------------------------------------------------------------------------ recovery
    def register_beds(self) -> None:
        """Create/update the configured beds in the database (with their camera config; the source
        is stored redacted: credentials stay in the ward config, never in the database). The config
        also records the bed's configured rule layers, so the dashboard and the override checks know
        what an override is merged into."""
        from ward.store.rules import RULES_KEY, camera_rules  # noqa: PLC0415

        for b in self.cfg.beds:
            self.store.upsert_bed(b.bed_id, name=b.label, ward=self.cfg.name,
                                  camera={"source": redact_uri(b.source), "fps": b.fps, "height": b.height,
                                          "bed_roi": list(b.bed_roi),
                                          RULES_KEY: camera_rules(self.cfg.rules.values(), b.rules.values())})

    # ------------------------------------------------------------------------------ rules
    def refresh_rules(self) -> list[dict[str, Any]]:
        """Apply the stored dashboard overrides (raises when the database cannot be read).

        A bed whose override changed since the last call is reconfigured in place: its accumulator,
        open episode and refractory clock are kept and the next sample is judged by the new rule. An
        override that does not fit the configured rule (the ward config changed since it was set) is
        not applied: the bed runs its configured rule and ``rule_error`` says why. Returns the changes."""
        from ward.store.rules import current_overrides  # noqa: PLC0415

        stored = current_overrides(self.store)
        changes = []
        with self._lock:
            for bed in self.beds.values():
                rec = stored.get(bed.bed_id)
                override = rec.override if rec is not None else RuleOverride()
                if override == bed.override:
                    continue
                changes.append(self._apply_override(bed, override, rec.as_dict() if rec is not None else None))
        return changes

    def _apply_override(self, bed: BedLive, override: RuleOverride, info: dict[str, Any] | None) -> dict[str, Any]:
        """Reconfigure one bed (caller holds the lock); logs and returns what changed."""
        conf = self.cfg.resolved_bed(bed.bed_id)
        error = None
        try:
            eff = effective_rule(self.cfg.rules, conf.bed.rules, override)
        except ValueError as exc:
            error = f"{exc}; running the configured rule instead"
            eff = conf.rule
        old = bed.rule.reconfigure(eff.config)
        diff = {k: [getattr(old, k), v] for k, v in eff.config.model_dump().items() if getattr(old, k) != v}
        bed.override, bed.override_info, bed.rule_error = override, info, error
        bed.rule_source, bed.rule_sources = eff.source, dict(eff.sources)
        self.rule_changes += 1
        who = f" by {info['by']} at {info['at']}" if info else ""
        if error:
            log.error("bed %s: rule override%s not applied: %s", bed.bed_id, who, error)
        else:
            log.info("bed %s: rule override %s%s; rule source %s, changed %s", bed.bed_id,
                     override.values() or "reset", who, eff.source, diff or "nothing")
        return {"bed_id": bed.bed_id, "override": override.values(), "changed": diff, "source": eff.source,
                "error": error}

    def poll_rules(self) -> bool:
        """:meth:`refresh_rules` for the polling thread: a failure is logged once (and its end), never
        raised, and the beds keep their current rule. True when the read succeeded."""
        try:
            self.refresh_rules()
        except Exception as exc:  # noqa: BLE001 (database down: retried at the next poll)
            msg = f"{type(exc).__name__}: {exc}"
            if self.rule_poll_error is None:
                log.warning("coordinator: cannot read rule overrides (beds keep their current rule): %s", msg)
            self.rule_poll_error = msg
            return False
        if self.rule_poll_error is not None:
            log.info("coordinator: rule overrides readable again")
            self.rule_poll_error = None
        return True

    def recover(self) -> dict[str, Any]:
        """Rebuild each bed's rule state and open alarms from storage (after a restart)."""
        if getattr(self.writer, "pending", 0):
            # a journal left by the previous process goes in first, or its alarms would be missed
            # (and opened again) and its samples would be missing from the replayed history
            self.writer.flush()
        self.refresh_rules()  # the dashboard overrides survive the restart: replay under them
        now = self.clock()
        report: dict[str, Any] = {}
        for bed in self.beds.values():
            pts = self.store.history(bed.bed_id, _dt(now - RECOVER_WINDOW_S), _dt(now + 1), "1s")
            for pt in pts:
                bed.rule.update(pt.t.timestamp(), float(pt.p_max))
            if pts:
                bed.probability = float(pts[-1].p_max)
                bed.accumulator = bed.rule.accumulator
                bed.updated_at = pts[-1].t.timestamp()
            open_db = [a for a in self.store.list_alarms(bed=bed.bed_id, limit=1000) if a.state == "active"]
            adopted, closed = [], []
            ongoing = bed.rule.open_episodes()
            for a in sorted(open_db, key=lambda a: a.start, reverse=True):
                keep = a.tier == "technical" or any(ev.tier == a.tier for ev in ongoing)
                if keep and a.tier not in bed.episodes:
                    bed.episodes[a.tier] = Episode(a.tier, a.start.timestamp(), a.peak, a.reason, db_id=a.id,
                                                   synced_peak=a.peak, key=self.store.alarm_key(a.id),
                                                   synced_open=True)
                    adopted.append(a.id)
                else:  # the replayed rule says this episode is over (or a duplicate)
                    ep = Episode(a.tier, a.start.timestamp(), a.peak, a.reason, end=max(now, a.start.timestamp()),
                                 db_id=a.id, synced_peak=a.peak, key=self.store.alarm_key(a.id), synced_open=True)
                    self._closed.append((bed.bed_id, ep))
                    closed.append(a.id)
            for ev in ongoing:
                if ev.tier not in bed.episodes:  # alarm raised but never stored before the crash
                    self._apply_event(bed, ev)
            report[bed.bed_id] = {"samples_replayed": len(pts), "alarm_active": bed.rule.alarm_active,
                                  "adopted": adopted, "closed": closed}
        return report

    # ------------------------------------------------------------------------------ inputs
    def push(self, result: ClipScore) -> list[dict[str, Any]]:
        """One clip probability from a camera actor. Returns the rule events it caused (as dicts)."""
        from ward.store import Sample  # noqa: PLC0415

        bed = self.beds.get(result.bed_id)
        if bed is None:
            raise ValueError(f"unknown bed {result.bed_id!r}; configured: {list(self.beds)}")
        t, p = float(result.t), float(result.probability)
        with self._lock:
            bed.clips_received += 1
            if bed.rule.last_t is not None and t <= bed.rule.last_t:
                return []  # stale or duplicate clip (the rule would ignore it as well)
            events = bed.rule.update(t, p)
            bed.probability, bed.accumulator, bed.updated_at = p, bed.rule.accumulator, t
            q = result.pose_quality
            self._samples.append(Sample(bed.bed_id, _dt(t), p, bed.rule.accumulator,
                                        None if q is None else float(q), self.model_version))
            self._capture.append(float(t if result.capture_wall is None else result.capture_wall))
            for ev in events:
                self._apply_event(bed, ev)
            for ev in bed.rule.open_episodes():  # the stored peak follows every sample, not only update events
                self._raise_peak(bed, ev)
            return [ev.to_dict() for ev in events]

    @staticmethod
    def _raise_peak(bed: BedLive, ev: RuleEvent) -> Episode | None:
        ep = bed.episodes.get(ev.tier)
        if ep is not None:
            ep.peak = max(ep.peak, ev.peak_probability)
        return ep

    def _apply_event(self, bed: BedLive, ev: RuleEvent) -> None:
        """The episode bookkeeping of one rule event (caller holds the lock, or owns the bed)."""
        tier = ev.tier
        if ev.kind.endswith("_start"):
            bed.episodes[tier] = Episode(tier, ev.episode_start, ev.peak_probability, ev.reason)
        elif ev.kind.endswith("_update"):
            self._raise_peak(bed, ev)
        elif ev.kind.endswith("_end"):
            ep = self._raise_peak(bed, ev)
            if ep is not None:
                del bed.episodes[tier]
                ep.end = max(ev.t, ep.start)
                if ev.reason:
                    ep.reason = ev.reason
                self._closed.append((bed.bed_id, ep))

    def report_status(self, statuses: Mapping[str, CameraReport]) -> None:
        """Camera state per bed from a camera actor (state, reason, since_wall and counters).

        The reason is scrubbed of the bed's camera credentials here too: everything the API, the
        health events and the technical alarms show passes through this point."""
        now = self.clock()
        with self._lock:
            for bed_id, st in statuses.items():
                bed = self.beds.get(bed_id)
                if bed is None:
                    continue
                reason = redact_source_text(st.reason, self.cfg.bed(bed_id).source)
                bed.last_status_at = now
                bed.camera = st.with_reason(reason)
                self._set_state(bed, st.state, reason, now if st.since_wall is None else float(st.since_wall))

    def report_batches(self, kind: str, replica: str, snapshot: Mapping[str, Any]) -> None:
        with self._lock:
            self.batches.setdefault(kind, {})[replica] = dict(snapshot)

    def _set_state(self, bed: BedLive, state: str, reason: str, since: float) -> None:
        if state != bed.state or bed.recorded_state is None:  # the first report is recorded too
            if state != bed.state:
                bed.since = since
            bed.state = bed.recorded_state = state
            self._health.append((bed.bed_id, state, bed.since, reason))
        bed.reason = reason

    def check_timeouts(self) -> None:
        """Beds whose camera actor went silent are offline; long offline -> technical alarm."""
        now = self.clock()
        with self._lock:
            for bed in self.beds.values():
                silent_since = bed.last_status_at if bed.last_status_at is not None else bed.since
                silent = CameraHealth.silence(bed.state, silent_since, now)
                if silent is not None:
                    self._set_state(bed, "offline", silent, silent_since)
                tech = bed.episodes.get("technical")
                if CameraHealth.offline_too_long(bed.state, now - bed.since, bed.offline_alarm_after_s) and tech is None:
                    bed.episodes["technical"] = Episode("technical", bed.since, 0.0,
                                                        f"camera offline > {bed.offline_alarm_after_s:g} s: {bed.reason}")
                elif bed.state != "offline" and tech is not None:
                    tech.end = max(bed.since, tech.start)
                    bed.episodes.pop("technical")
                    self._closed.append((bed.bed_id, tech))

    # ------------------------------------------------------------------------------ storage
    def flush(self) -> dict[str, Any]:
        """Write buffered samples, alarm episodes and health events; returns what was done."""
        self.check_timeouts()
        with self._lock:
            samples, capture = self._samples, self._capture
            self._samples, self._capture = [], []
        out = {"stored": 0, "spilled": 0, "dropped": 0, "alarms_synced": 0, "health": 0, "error": None}
        if samples:
            try:
                res = self.writer.write(samples)
                out.update(stored=res.stored, spilled=res.spilled, dropped=res.dropped)
                if res.spilled:  # database unavailable: kept in the journal, but a failed flush
                    out["error"] = f"database unavailable: {res.spilled} samples spilled"
            except Exception as exc:  # noqa: BLE001 (bad rows: reported, never fatal for the ward)
                out["error"] = f"sample write failed: {exc}"
                log.error("coordinator: %s", out["error"])
            else:
                done = self.clock()
                lat = np.maximum(0.0, done - np.asarray(capture))
                with self._lock:
                    for v in lat:
                        self.latency_counts[int(np.searchsorted(LATENCY_BUCKETS, v, side="left"))] += 1
                    self.latency_sum += float(lat.sum())
                    self.latency_n += len(lat)
                    self.recent_latency.extend(lat.tolist())
                    for s in samples:
                        self.beds[s.bed].samples_stored += 1
        elif getattr(self.writer, "pending", 0):
            try:
                if not self.writer.flush():
                    out["error"] = "database unavailable: spill not replayed yet"
            except Exception as exc:  # noqa: BLE001
                out["error"] = f"spill replay failed: {exc}"
        try:
            out["alarms_synced"] = self._sync_alarms()
            out["health"] = self._sync_health()
        except Exception as exc:  # noqa: BLE001 (database down: retried on the next flush)
            out["error"] = f"alarm/health sync failed: {exc}"
            log.warning("coordinator: %s", out["error"])
        with self._lock:
            self.flushes += 1
            if out["error"]:
                self.flush_errors += 1
                self.last_flush_error = out["error"]
        return out

    def _sync_alarms(self) -> int:
        """Send episode changes to the writer (stored now, or journaled while the database is down:
        either way they are durable and not sent again). Returns the episodes handled."""
        from ward.store import StoreError  # noqa: PLC0415

        with self._lock:
            todo = [(b.bed_id, ep) for b in self.beds.values() for ep in b.episodes.values() if ep.dirty]
            todo += [(bid, ep) for bid, ep in self._closed]
        n = 0
        for bed_id, ep in todo:
            try:
                if not ep.synced_open:
                    ep.db_id = self.writer.open_alarm(ep.key, bed_id, ep.tier, _dt(ep.start), max(0.0, ep.peak),
                                                      ep.reason)
                    ep.synced_open, ep.synced_peak = True, ep.peak
                if ep.peak > ep.synced_peak:
                    peak = ep.peak
                    self.writer.update_alarm(ep.key, peak=peak, reason=ep.reason)
                    ep.synced_peak = peak
                if ep.end is not None and not ep.synced_end:
                    if ep.reason:
                        self.writer.update_alarm(ep.key, reason=ep.reason)
                    self.writer.close_alarm(ep.key, _dt(ep.end))
                    ep.synced_end = True
            except StoreError as exc:  # bad episode (e.g. bed removed from the database): never retried
                log.error("coordinator: dropping alarm episode %s of bed %s: %s", ep.key, bed_id, exc)
                ep.synced_open, ep.synced_peak, ep.synced_end = True, ep.peak, True
            n += 1
            with self._lock:
                if ep.synced_end:
                    self._closed = [(b, e) for b, e in self._closed if e is not ep]
        self._resolve_alarm_ids()
        return n

    def _resolve_alarm_ids(self) -> None:
        """Learn the database id of open episodes whose open was journaled (once it is replayed)."""
        if getattr(self.writer, "pending_ops", 0):
            return
        with self._lock:
            unknown = [ep for b in self.beds.values() for ep in b.episodes.values()
                       if ep.synced_open and ep.db_id is None]
        for ep in unknown:
            ep.db_id = self.writer.alarm_id(ep.key)

    def _sync_health(self) -> int:
        from ward.store import StoreError  # noqa: PLC0415

        with self._lock:
            todo = list(self._health)
        for bed, state, at, reason in todo:
            try:
                self.writer.record_health(bed, state, _dt(at), reason)
            except StoreError as exc:
                log.error("coordinator: dropping health event of bed %s: %s", bed, exc)
            with self._lock:
                self._health.pop(0)
        return len(todo)

    # ------------------------------------------------------------------------------ views
    def snapshot(self) -> list[dict[str, Any]]:
        """Per bed: bed_id, state, probability, updated_at, reason, since, accumulator, alarm_active, ..."""
        iso = lambda t: None if t is None else _dt(t).isoformat()  # noqa: E731
        with self._lock:
            out = []
            for b in self.beds.values():
                cam = b.camera or CameraReport("offline")
                alarm = b.episodes.get("alarm")
                out.append({
                    "bed_id": b.bed_id, "label": b.label, "state": b.state, "reason": b.reason,
                    "since": iso(b.since), "probability": b.probability, "updated_at": iso(b.updated_at),
                    "accumulator": b.accumulator, "alarm_active": b.rule.alarm_active,
                    "alarm_id": alarm.db_id if alarm else None, "alarm_key": alarm.key if alarm else None,
                    "review_active": b.rule.review_active,
                    "technical_alarm": "technical" in b.episodes,
                    "fps": cam.fps_sampled, "camera_fps": cam.fps_measured,
                    "clips_scored": cam.clips_scored, "samples_stored": b.samples_stored,
                    "keypoints_source": cam.keypoints_source,
                    "rule": b.rule.config.model_dump(), "rule_source": b.rule_source,
                    "rule_sources": dict(b.rule_sources), "rule_override": b.override_info,
                    "rule_error": b.rule_error,
                })
            return out

    def metrics(self) -> dict[str, Any]:
        """Everything /metrics renders (counters are cumulative)."""
        with self._lock:
            return {
                "beds": {b.bed_id: {**(b.camera.as_dict() if b.camera else {}), "state": b.state, "samples_stored": b.samples_stored,
                                    "clips_received": b.clips_received, "probability": b.probability,
                                    "accumulator": b.accumulator} for b in self.beds.values()},
                "batches": {k: {r: dict(s) for r, s in v.items()} for k, v in self.batches.items()},
                "latency": {"buckets": list(LATENCY_BUCKETS), "counts": list(self.latency_counts),
                            "sum": self.latency_sum, "count": self.latency_n},
                "spill_pending": int(getattr(self.writer, "pending", 0)),
                "flushes": self.flushes, "flush_errors": self.flush_errors,
            }

    def latency_quantiles(self, qs: tuple[float, ...] = (0.5, 0.95)) -> dict[str, float | None]:
        with self._lock:
            arr = np.asarray(self.recent_latency)
        return {f"p{int(q * 100)}": (float(np.quantile(arr, q)) if arr.size else None) for q in qs}
