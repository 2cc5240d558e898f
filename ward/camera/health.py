"""The one online / degraded / offline state machine of a bed's camera.

A bed's camera health used to be decided in three places (the reader, the camera actor's bed
pipeline and the coordinator), each with its own thresholds. Every such decision is made here, by
:class:`CameraHealth`, so the API, the health events and the technical alarms always agree on what
"degraded" or "offline" means:

* the reader: offline while not receiving frames (with the reader's reason), degraded when the
  camera delivers less than ``degraded_fps_ratio`` of the model rate or the patient has not been
  found for ``patient_lost_after_s``, online otherwise (:meth:`CameraHealth.observe`);
* the camera actor: degraded when pose cannot keep up with the model rate once the camera has been
  online for ``POSE_WARMUP_S`` (:meth:`CameraHealth.pose_verdict`);
* the coordinator: offline when the camera actor has been silent for ``STATUS_STALE_S``
  (:meth:`CameraHealth.silence`), a technical alarm once offline for longer than the bed's
  ``offline_alarm_after_s`` (:meth:`CameraHealth.offline_too_long`).

Pure: no threads, no clock reads; callers pass the times (reader clock and wall clock).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["CAMERA_WARMUP_S", "CameraHealth", "POSE_WARMUP_S", "STATUS_STALE_S", "State"]

State = Literal["online", "degraded", "offline"]

STATUS_STALE_S: Final[float] = 15.0
"""No status from a bed's camera actor this long -> the bed is offline."""
POSE_WARMUP_S: Final[float] = 6.0
"""The pose rate is judged only after the camera has been online this long (a rate needs frames)."""
CAMERA_WARMUP_S: Final[float] = 2.0
"""The camera's frame rate is judged only after this long (or the rate window, if shorter)."""


class CameraHealth:
    """State, reason and since-when of one camera, and the rules that move it."""

    def __init__(self, model_fps: float, degraded_fps_ratio: float = 0.8, patient_lost_after_s: float = 10.0, *,
                 now: float = 0.0, now_wall: float = 0.0, reason: str = "starting") -> None:
        self.model_fps = float(model_fps)
        self.degraded_fps_ratio = float(degraded_fps_ratio)
        self.patient_lost_after_s = float(patient_lost_after_s)
        self.state: State = "offline"
        self.reason = reason
        self.since = now            # reader clock when the state was entered
        self.since_wall = now_wall  # the same moment as epoch seconds

    @property
    def min_fps(self) -> float:
        """Frame rate below which the bed is degraded (the model would see holes)."""
        return self.degraded_fps_ratio * self.model_fps

    # -- decisions (pure) --------------------------------------------------------------------
    def verdict(self, now: float, *, receiving: bool, offline_reason: str, fps: float, warm: bool,
                patient_lost_since: float | None) -> tuple[State, str]:
        """The source's state: ``receiving`` frames (connected, at least one frame), the measured
        ``fps`` (judged only when ``warm``) and since when the patient is not found (None: found)."""
        if not receiving:
            return "offline", offline_reason
        if warm and fps < self.min_fps:
            return "degraded", f"camera delivers {fps:.1f} fps, the model needs >= {self.min_fps:.1f}"
        if patient_lost_since is not None and now - patient_lost_since >= self.patient_lost_after_s:
            return "degraded", f"patient not found for {now - patient_lost_since:.0f} s"
        return "online", "receiving frames"

    def pose_verdict(self, state: str, duration_s: float, pose_fps: float) -> tuple[State, str] | None:
        """Degraded (with its reason) when pose keeps up with less than the minimum rate although the
        camera has been online for ``POSE_WARMUP_S``; None when the camera's own state stands."""
        if state == "online" and duration_s > POSE_WARMUP_S and pose_fps < self.min_fps:
            return "degraded", f"pose keeps up with {pose_fps:.1f} fps, the model needs >= {self.min_fps:.1f}"
        return None

    @staticmethod
    def silence(state: str, silent_since: float, now: float, stale_after_s: float = STATUS_STALE_S) -> str | None:
        """Why a bed whose camera actor last reported at ``silent_since`` is offline now (None: not)."""
        if state != "offline" and now - silent_since > stale_after_s:
            return f"no status from the camera actor for {now - silent_since:.0f} s"
        return None

    @staticmethod
    def offline_too_long(state: str, duration_s: float, limit_s: float) -> bool:
        """True when a technical alarm is due (offline for more than ``limit_s``)."""
        return state == "offline" and duration_s > limit_s

    # -- transitions -------------------------------------------------------------------------
    def enter(self, state: State, reason: str, now: float, now_wall: float) -> bool:
        """Move to ``state`` (since-when changes only on a change of state); True when it changed."""
        changed = state != self.state
        if changed:
            self.state, self.since, self.since_wall = state, now, now_wall
        self.reason = reason
        return changed

    def observe(self, now: float, now_wall: float, **facts: object) -> bool:
        """:meth:`verdict` of the source facts, entered (see there for ``facts``)."""
        state, reason = self.verdict(now, **facts)  # type: ignore[arg-type]
        return self.enter(state, reason, now, now_wall)
