"""Reading cameras: resilient readers and model-rate sampling.

A ward must keep watching when a camera drops, stalls or delivers garbage, and must say so; this is
the only place that talks to a camera. Pure Python + threads + OpenCV (no Ray), so a Ray camera
actor can wrap several of these per process.

* :class:`CameraReader` reads one source on its own thread into a latest-frame slot (drop-oldest:
  freshness beats completeness for alarms), reconnects with exponential backoff and jitter, reopens
  a stream that stops delivering (no-frame watchdog), and reports online / degraded / offline with a
  reason and since-when (decided by :class:`ward.camera.health.CameraHealth`). Nothing needs the
  camera to be reachable at start.
* :class:`FrameSampler` picks frames at the model rate (default 6 fps) by capture timestamp.
* :func:`resize_to_height` resizes once to the working resolution.

Clips are assembled from the sampled, posed frames by :mod:`ward.pipeline` (contract: :mod:`ward.core.clip`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ward.camera.health import CAMERA_WARMUP_S, CameraHealth, State
from ward.camera.sources import Capture, SourceError, open_source, source_kind
from ward.core.uris import redact_source_text, redact_uri

__all__ = [
    "CameraReader", "CameraStatus", "Frame", "FrameSampler", "SourceError",
    "backoff_delay", "open_source", "reader_from_config", "resize_to_height",
]



# ------------------------------------------------------------------------------------------- frames

@dataclass(frozen=True)
class Frame:
    """One decoded frame with its capture time (reader clock) and wall time (for storage)."""

    image: np.ndarray
    t: float
    wall: float
    seq: int
    truth_keypoints: np.ndarray | None = None  # (18, 3) in source pixels, sim:// sources only


@dataclass(frozen=True)
class CameraStatus:
    """Snapshot of a reader, suitable for the API and for technical alarms."""

    state: State
    reason: str
    since: float            # reader clock (monotonic) when the state was entered
    since_wall: float       # the same moment as epoch seconds
    duration_s: float       # time in this state at snapshot time
    fps_measured: float     # source frame rate over the last few seconds
    frames_in: int
    frames_dropped: int     # overwritten in the slot before anyone took them
    frames_corrupt: int     # read() said ok but the frame was missing or of the wrong shape
    reconnects: int         # sessions (re)started after the first one
    last_frame_at: float | None

    def offline_longer_than(self, seconds: float) -> bool:
        """True when a technical alarm is due (offline for more than ``seconds``)."""
        return CameraHealth.offline_too_long(self.state, self.duration_s, seconds)


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (0-based): initial * 2**attempt, capped, +- jitter."""
    base = min(max_s, initial_s * (2.0 ** min(attempt, 60)))
    return max(0.0, base * (1.0 + jitter * rng.uniform(-1.0, 1.0)))


class CameraReader:
    """Reads one camera on a background thread; the caller only ever looks at the latest frame.

    Each connection is a *session* on its own worker thread; a supervisor thread paces reconnects
    and runs the watchdog. A worker stuck inside ``read()`` (a dead RTSP peer) is abandoned rather
    than released from another thread (unsafe in OpenCV): it releases its capture when ``read()``
    returns and it sees it is stale. File sources are paced at their own frame rate.
    """

    def __init__(self, uri: str, *, name: str | None = None, model_fps: float = 6.0,
                 no_frame_timeout_s: float = 10.0, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 jitter: float = 0.2, loop: bool = True, degraded_fps_ratio: float = 0.8,
                 patient_lost_after_s: float = 10.0, fps_window_s: float = 3.0, max_corrupt_in_row: int = 50,
                 pace_files: bool = True, open_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 opener: Callable[[str], Capture] | None = None, start: bool = True) -> None:
        self.kind = source_kind(uri)
        if model_fps <= 0 or no_frame_timeout_s <= 0 or backoff_max_s <= 0 or backoff_initial_s < 0:
            raise ValueError("model_fps, no_frame_timeout_s and backoff_max_s must be > 0, backoff_initial_s >= 0")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1] (got {jitter})")
        self.uri = uri  # the real URI (credentials included): handed to the opener, never put into text
        self.display_uri = redact_uri(uri)
        self.name = name or self.display_uri
        self.model_fps = model_fps
        self.no_frame_timeout_s = no_frame_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.jitter = jitter
        self.loop = loop
        self.degraded_fps_ratio = degraded_fps_ratio
        self.patient_lost_after_s = patient_lost_after_s
        self.fps_window_s = fps_window_s
        self.max_corrupt_in_row = max_corrupt_in_row
        self.pace_files = pace_files
        self.open_timeout_s = open_timeout_s
        self._clock = clock
        self._rng = rng or random.Random()
        # FFmpeg's read timeout is longer than the watchdog so the watchdog, which reports why, fires first.
        self._opener = opener or (lambda u: open_source(u, open_timeout_s=open_timeout_s,
                                                        read_timeout_s=2 * no_frame_timeout_s))

        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._slot: Frame | None = None
        self._slot_taken = True
        self._seq = 0
        self._frames_in = 0
        self._frames_dropped = 0
        self._frames_corrupt = 0
        self._reconnects = 0
        self._sessions = 0
        self._gen = 0
        self._connected = False
        self._session_started = 0.0
        self._last_frame_at: float | None = None
        self._recent: deque[float] = deque(maxlen=2048)
        self._first_frame_at: float | None = None  # first frame of the current session
        self._connected_at: float | None = None    # when the current session's source opened
        self._worker: threading.Thread | None = None
        self._outcome: tuple[str, str] = ("", "")   # (kind, reason) of the last finished session
        self._finished = False
        self._last_failure = ""
        self._offline_reason = "starting"
        self._patient_found = True
        self._patient_lost_since: float | None = None
        self.health = CameraHealth(model_fps, degraded_fps_ratio, patient_lost_after_s, now=clock(),
                                   now_wall=time.time())
        self.open_attempts: deque[float] = deque(maxlen=64)  # clock time of each open attempt (diagnostics)
        self._thread = threading.Thread(target=self._supervise, name=f"cam-{self.name}", daemon=True)
        if start:
            self._thread.start()

    # -- public API --------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading (only needed with ``start=False``)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def latest(self, take: bool = True) -> Frame | None:
        """The newest frame, without blocking (None before the first frame)."""
        with self._lock:
            if take:
                self._slot_taken = True
            return self._slot

    def wait_frame(self, after_seq: int = 0, timeout: float | None = None) -> Frame | None:
        """Block up to ``timeout`` s (real time) for a frame newer than ``after_seq``; None on timeout or stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._new_frame:
            while not self._stop.is_set() and (self._slot is None or self._slot.seq <= after_seq):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._new_frame.wait(0.25 if remaining is None else min(remaining, 0.25))
            if self._slot is None or self._slot.seq <= after_seq:
                return None
            self._slot_taken = True
            return self._slot

    def set_patient_found(self, found: bool) -> None:
        """Caller's patient-selection result for the latest frame (drives the degraded state)."""
        with self._lock:
            now = self._clock()
            self._patient_found = bool(found)
            if found:
                self._patient_lost_since = None
            elif self._patient_lost_since is None:
                self._patient_lost_since = now
            self._update_state_locked(now)

    def status(self) -> CameraStatus:
        """Current state, reason and counters (never blocks on the camera)."""
        with self._lock:
            now = self._clock()
            self._update_state_locked(now)
            h = self.health
            return CameraStatus(h.state, h.reason, h.since, h.since_wall, now - h.since,
                                self._fps_locked(now) if self._connected else 0.0, self._frames_in, self._frames_dropped, self._frames_corrupt,
                                self._reconnects, self._last_frame_at)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and join the supervisor (a worker stuck in read() is left to exit on its own)."""
        self._stop.set()
        with self._new_frame:
            self._gen += 1
            self._new_frame.notify_all()
        deadline = time.monotonic() + timeout
        if self._thread.is_alive():
            self._thread.join(timeout)
        worker = self._worker
        if worker is not None and worker.is_alive():
            worker.join(max(0.0, deadline - time.monotonic()))  # so the capture is released on return
        with self._lock:
            self._connected = False
            self._offline_reason = "stopped"
            self._update_state_locked(self._clock())

    @property
    def running(self) -> bool:
        """True while the supervisor thread is alive (False after stop() or a finished file)."""
        return self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """True when a non-looping file ended (the reader will not reconnect)."""
        return self._finished

    def __enter__(self) -> "CameraReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------

    def _fps_locked(self, now: float) -> float:
        """Frames per second over the last ``fps_window_s`` (over the frames so far while warming up)."""
        recent = [t for t in self._recent if now - t <= self.fps_window_s]
        first = self._first_frame_at
        if first is not None and now - first >= self.fps_window_s:
            return len(recent) / self.fps_window_s
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def _update_state_locked(self, now: float) -> None:
        receiving = self._connected and self._last_frame_at is not None
        first = self._first_frame_at
        self.health.observe(now, time.time(), receiving=receiving, offline_reason=self._offline_reason,
                            fps=self._fps_locked(now) if receiving else 0.0,
                            warm=first is not None and now - first >= min(self.fps_window_s, CAMERA_WARMUP_S),
                            patient_lost_since=self._patient_lost_since)

    def _scrub(self, text: str) -> str:
        """A reason safe to report: the source's credentials masked (errors may quote the URI)."""
        return redact_source_text(text, self.uri)

    def _set_offline(self, reason: str) -> None:
        with self._lock:
            self._connected = False
            self._offline_reason = self._scrub(reason)
            self._update_state_locked(self._clock())

    def _end_session(self, gen: int, kind: str, reason: str, offline_reason: str | None = None) -> None:
        """Record why the current session ended (ignored for abandoned sessions)."""
        reason = self._scrub(reason)
        offline_reason = None if offline_reason is None else self._scrub(offline_reason)
        with self._lock:
            if gen != self._gen:
                return
            self._outcome = (kind, reason)
            self._last_failure = reason
            self._connected = False
            self._offline_reason = offline_reason or reason
            self._update_state_locked(self._clock())

    # -- threads -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        attempt = 0
        poll = min(0.25, self.no_frame_timeout_s / 4)
        while not self._stop.is_set():
            with self._lock:
                self._gen += 1
                gen = self._gen
                if self._sessions > 0:
                    self._reconnects += 1
                self._sessions += 1
                self._session_started = self._clock()
                self._first_frame_at = None
                self._connected_at = None
                self._recent.clear()
                self._outcome = ("", "")
            worker = threading.Thread(target=self._session, args=(gen,), name=f"cam-{self.name}-s{gen}", daemon=True)
            self._worker = worker
            worker.start()
            delivered_before = self._frames_in
            while not self._stop.is_set():
                worker.join(poll)
                if not worker.is_alive():
                    break
                with self._lock:
                    now = self._clock()
                    if self._connected_at is None:  # still opening: FFmpeg's open timeout applies first
                        stalled = now - self._session_started > self.open_timeout_s + self.no_frame_timeout_s
                    else:
                        ref = max(self._connected_at, self._last_frame_at or 0.0)
                        stalled = now - ref > self.no_frame_timeout_s
                    self._update_state_locked(now)
                if stalled:
                    with self._lock:
                        self._gen += 1  # abandon the worker; it releases its capture when read() returns
                    self._last_failure = f"no frame for {self.no_frame_timeout_s:g} s"
                    self._set_offline(f"no frame for {self.no_frame_timeout_s:g} s; reopening")
                    break
            if self._stop.is_set():
                break
            kind, reason = self._outcome
            if kind == "ended" and self.kind == "file" and not self.loop:
                self._finished = True
                self._set_offline("stream ended")
                break
            if self._frames_in > delivered_before:
                attempt = 0  # the session worked: next failure retries quickly again
            delay = backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s, self.jitter, self._rng)
            attempt += 1
            with self._lock:
                if not self._connected:
                    self._offline_reason = f"{self._offline_reason}; retry in {delay:.2g} s"
                    self._update_state_locked(self._clock())
            self._stop.wait(delay)

    def _session(self, gen: int) -> None:
        """One connection: open, read until error/end/stale, release. Runs on its own thread."""
        with self._lock:
            self.open_attempts.append(self._clock())
            if gen == self._gen and not self._connected:
                self._offline_reason = ("connecting" if self._sessions <= 1 else
                                        f"reconnecting (attempt {self._sessions}; last problem: {self._last_failure})")
        try:
            cap = self._opener(self.uri)
        except (SourceError, OSError, ValueError, RuntimeError) as exc:
            self._end_session(gen, "open_failed", f"open failed: {exc}")
            return
        try:
            self._read_loop(cap, gen)
        finally:
            try:
                cap.release()
            except Exception:  # noqa: BLE001 (a broken capture must not kill the reader)
                pass

    def _read_loop(self, cap: Capture, gen: int) -> None:
        import cv2  # noqa: PLC0415

        with self._lock:
            if gen != self._gen:
                return
            self._connected = True
            self._connected_at = self._clock()
            self._offline_reason = "connected, waiting for frames" + (
                f" (last problem: {self._last_failure})" if self._last_failure else "")
        src_fps = cap.get(cv2.CAP_PROP_FPS) if self.kind == "file" else 0.0
        period = 1.0 / src_fps if self.pace_files and src_fps and 0 < src_fps < 1000 else 0.0
        next_t = self._clock()
        shape: tuple[int, ...] | None = None
        corrupt_row = 0
        got_any = False
        while not self._stop.is_set() and gen == self._gen:
            try:
                ok, img = cap.read()
            except Exception as exc:  # noqa: BLE001 (cv2.error and decoder crashes)
                self._end_session(gen, "error", f"read error: {exc}")
                return
            if gen != self._gen:
                return
            if not ok:
                if self.kind == "file" and self.loop and got_any and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    got_any = False  # a file that will not rewind falls through to "ended" next time
                    continue
                self._end_session(gen, "ended", "stream ended",
                                  "stream ended" if self.kind == "file" and not self.loop else "stream ended; reconnecting")
                return
            if (not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3
                    or img.size == 0 or (shape is not None and img.shape != shape)):
                with self._lock:
                    self._frames_corrupt += 1
                corrupt_row += 1
                if corrupt_row >= self.max_corrupt_in_row:
                    self._end_session(gen, "error", f"{corrupt_row} corrupt frames in a row; reopening")
                    return
                continue
            corrupt_row = 0
            got_any = True
            shape = img.shape
            if period:  # file: publish frame k at t0 + k / fps, like a live camera
                wait = next_t - self._clock()
                if wait > 0:
                    self._stop.wait(wait)
                elif wait < -1.0:
                    next_t = self._clock()  # fell far behind: do not burst
                next_t += period
            if gen != self._gen:
                return
            truth = getattr(cap, "last_keypoints", None)
            self._publish(img, None if truth is None else np.array(truth, dtype=np.float32))

    def _publish(self, img: np.ndarray, truth_keypoints: np.ndarray | None = None) -> None:
        with self._new_frame:
            now = self._clock()
            self._seq += 1
            if self._slot is not None and not self._slot_taken:
                self._frames_dropped += 1
            self._slot = Frame(img, now, time.time(), self._seq, truth_keypoints)
            self._slot_taken = False
            self._frames_in += 1
            self._last_frame_at = now
            self._recent.append(now)
            if self._first_frame_at is None:
                self._first_frame_at = now
            self._connected = True
            self._update_state_locked(now)
            self._new_frame.notify_all()


def reader_from_config(cfg: Any, bed_id: str, **overrides: Any) -> CameraReader:
    """A CameraReader for one bed of a :class:`ward.config.WardConfig` (its watchdog, fps, loop, ingest)."""
    resolved = cfg.resolved_bed(bed_id)
    bed, wd = resolved.bed, resolved.watchdog
    kw: dict[str, Any] = dict(name=bed.bed_id, model_fps=bed.fps, no_frame_timeout_s=wd.no_frame_timeout_s,
                              backoff_initial_s=wd.backoff_initial_s, backoff_max_s=wd.backoff_max_s,
                              jitter=wd.jitter, loop=bed.loop, degraded_fps_ratio=cfg.ingest.degraded_fps_ratio,
                              patient_lost_after_s=cfg.ingest.patient_lost_after_s)
    kw.update(overrides)
    return CameraReader(bed.source, **kw)


# ------------------------------------------------------------------------------------------ sampling

class FrameSampler:
    """Accepts frames at ``fps`` on a fixed time grid (no drift, no bursts after a stall).

    A frame is taken when its capture time reaches the next grid slot (with a small tolerance so a
    source at exactly the model rate is not halved by timestamp jitter); after a gap the grid
    restarts at the frame instead of catching up.
    """

    def __init__(self, fps: float, tolerance: float = 0.25) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0 (got {fps})")
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1) of a period (got {tolerance})")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.tolerance = tolerance * self.period
        self.next_due: float | None = None
        self.last_seq = 0

    def accept(self, t: float) -> bool:
        """True when a frame captured at ``t`` should go to the model."""
        if self.next_due is None or t - self.next_due > self.period:
            self.next_due = t + self.period
            return True
        if t >= self.next_due - self.tolerance:
            self.next_due += self.period
            return True
        return False

    def next_frame(self, reader: CameraReader, timeout: float) -> Frame | None:
        """Wait (at most ``timeout`` s) for the next frame of ``reader`` that is due; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            frame = reader.wait_frame(self.last_seq, remaining)
            if frame is None:
                return None
            self.last_seq = frame.seq
            if self.accept(frame.t):
                return frame


def resize_to_height(frame: np.ndarray, height: int) -> np.ndarray:
    """Resize keeping the aspect ratio (INTER_AREA when shrinking); the frame itself if already that tall."""
    import cv2  # noqa: PLC0415

    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got {getattr(frame, 'shape', type(frame))}")
    if height < 1:
        raise ValueError(f"height must be >= 1 (got {height})")
    h, w = frame.shape[:2]
    if h == height:
        return frame
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)
