"""What crosses the Ray hops from a camera actor to the coordinator, as typed, frozen records.

A dict with string keys fails late and silently (a misspelt key is a missing value); these types
fail at construction and say in one place what the camera actor promises the coordinator. They are
plain frozen dataclasses of builtins, cheap to pickle through Ray's object store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["CameraReport", "ClipScore"]


@dataclass(frozen=True)
class ClipScore:
    """VSViG's probability for one clip of one bed."""

    bed_id: str
    t: float                           # clip end: capture time of its last frame (epoch s)
    probability: float
    capture_wall: float | None = None  # when its last frame was captured (epoch s; latency is measured from it)
    pose_quality: float | None = None  # fraction of the clip's frames with the patient's patches
    clip_index: int | None = None      # 0, 1, 2, ... per bed since the camera actor started

    def __post_init__(self) -> None:
        if not isinstance(self.bed_id, str) or not self.bed_id:
            raise ValueError(f"bed_id must be a non-empty string (got {self.bed_id!r})")


@dataclass(frozen=True)
class CameraReport:
    """One bed's camera state and counters, sent by its camera actor about once per second."""

    state: str                       # online / degraded / offline (ward.camera.health)
    reason: str = ""
    since_wall: float | None = None  # when the state was entered (epoch s)
    fps_measured: float | None = None  # frame rate the camera delivers
    fps_sampled: float | None = None   # frames per second that got through pose
    frames_in: int = 0
    frames_dropped: int = 0
    frames_corrupt: int = 0
    reconnects: int = 0
    inflight: int = 0                # pose requests in flight
    vsvig_inflight: int = 0          # VSViG requests in flight
    push_inflight: int = 0           # scored clips on their way to the Coordinator
    keypoints_source: str | None = None  # pose / simulator
    frames_sampled: int = 0
    frames_dropped_inflight: int = 0
    pose_done: int = 0
    pose_errors: int = 0
    clips_emitted: int = 0
    clips_scored: int = 0
    clips_dropped: int = 0
    clips_failed: int = 0
    clips_pushed: int = 0            # scored clips the Coordinator acknowledged
    push_errors: int = 0

    def with_reason(self, reason: str) -> "CameraReport":
        """The same report with another reason (e.g. scrubbed of credentials)."""
        return replace(self, reason=reason)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (what /metrics renders)."""
        return asdict(self)
