"""The clip contract, defined once: what a VSViG clip is and how a bed's frames become clips.

VSViG was trained on 30 frames sampled at 6 fps (5 s), 15 joints with a 32x32 patch each; the
camera actor, `ward eval`, `ward dataset build` and the model itself must all agree on that, so the
numbers live here and nowhere else. :class:`ClipAssembler` is the one ring buffer that turns a
stream of per-frame pose results into overlapping clips (one every ``stride`` frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ward.core.keypoints import OPENPOSE_18, VSVIG_15

__all__ = ["CLIP_FRAMES", "CLIP_STRIDE_FRAMES", "CLIP_STRIDE_S", "Clip", "ClipAssembler", "MODEL_FPS", "PATCH_SIZE", "POSE_JOINTS",
           "VSVIG_JOINTS", "clip_ends", "stride_frames"]

CLIP_FRAMES: Final[int] = 30
"""Frames per clip: VSViG is trained on 30-frame clips (other lengths are not a configuration choice)."""
MODEL_FPS: Final[float] = 6.0
"""Sampling rate of the frames VSViG sees (a clip spans CLIP_FRAMES / MODEL_FPS = 5 s)."""
CLIP_STRIDE_S: Final[float] = 1.0
"""Default time between the starts of consecutive clips (one score per second)."""
POSE_JOINTS: Final[int] = len(OPENPOSE_18)
"""Joints per pose result (OpenPose-18, what clips carry as keypoints)."""
VSVIG_JOINTS: Final[int] = len(VSVIG_15)
"""Joints (and patches) per frame VSViG consumes."""
PATCH_SIZE: Final[int] = 32
"""Side of a joint patch in pixels."""


def stride_frames(stride_s: float = CLIP_STRIDE_S, fps: float = MODEL_FPS) -> int:
    """Clip stride in sampled frames: ``stride_s`` at ``fps``, at least one frame."""
    return max(1, int(round(stride_s * fps)))


CLIP_STRIDE_FRAMES: Final[int] = stride_frames()
"""Default clip stride in sampled frames (CLIP_STRIDE_S at MODEL_FPS)."""


def clip_ends(n_frames: int, stride: int = CLIP_STRIDE_FRAMES) -> np.ndarray:
    """Index of each clip's last frame in an uninterrupted stream of ``n_frames`` sampled frames: the
    grid :class:`ClipAssembler` emits on (29, 35, 41, ... at the default stride)."""
    return np.arange(CLIP_FRAMES - 1, n_frames, stride)


@dataclass(frozen=True)
class Clip:
    """30 consecutive sampled frames of one bed, ready for VSViG (arrays are owned copies)."""

    keypoints: np.ndarray      # (L, 18, 3) float32: x, y, confidence
    patches: np.ndarray        # (L, 15, 3, 32, 32) uint8; zeros where patch_valid is False
    patch_valid: np.ndarray    # (L,) bool
    t: np.ndarray              # (L,) float64 capture times
    index: int                 # 0, 1, 2, ... per assembler
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def t_start(self) -> float:
        return float(self.t[0])

    @property
    def t_end(self) -> float:
        return float(self.t[-1])

    @property
    def valid_fraction(self) -> float:
        return float(self.patch_valid.mean())


class ClipAssembler:
    """Ring buffer of per-frame pose results; emits a clip every ``stride_frames`` once ``length`` exist.

    Each frame is copied once into preallocated rings; a clip is one gather (copy) of the last
    ``length`` slots. ``max_gap_s`` restarts the buffer after a time gap so a clip never spans an
    outage.
    """

    def __init__(self, length: int = CLIP_FRAMES, stride_frames: int = CLIP_STRIDE_FRAMES, max_gap_s: float | None = None) -> None:
        if length < 1 or stride_frames < 1:
            raise ValueError(f"length and stride_frames must be >= 1 (got {length}, {stride_frames})")
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError(f"max_gap_s must be > 0 or None (got {max_gap_s})")
        self.length = length
        self.stride = stride_frames
        self.max_gap_s = max_gap_s
        self._kp = np.zeros((length, POSE_JOINTS, 3), np.float32)
        self._patches = np.zeros((length, VSVIG_JOINTS, 3, PATCH_SIZE, PATCH_SIZE), np.uint8)
        self._valid = np.zeros(length, bool)
        self._t = np.zeros(length, np.float64)
        self._head = 0        # next write position
        self._count = 0       # frames in the ring (<= length)
        self._since_emit = 0  # frames pushed since the last clip
        self._emitted = 0
        self.resets = 0

    def __len__(self) -> int:
        return self._count

    def reset(self) -> None:
        """Forget buffered frames (e.g. after a camera gap); the next clip needs ``length`` new frames."""
        if self._count:
            self.resets += 1
        self._count = 0
        self._since_emit = 0

    def push(self, keypoints: np.ndarray, patches: np.ndarray | None, t: float) -> Clip | None:
        """Add one sampled frame; returns a clip when one is due."""
        kp = np.asarray(keypoints)
        if kp.shape != (POSE_JOINTS, 3):
            raise ValueError(f"keypoints must have shape ({POSE_JOINTS}, 3), got {kp.shape}")
        if patches is not None:
            if not isinstance(patches, np.ndarray) or patches.shape != (VSVIG_JOINTS, 3, PATCH_SIZE, PATCH_SIZE) \
                    or patches.dtype != np.uint8:
                raise ValueError(f"patches must be uint8 ({VSVIG_JOINTS}, 3, {PATCH_SIZE}, {PATCH_SIZE}) or None, got "
                                 f"{getattr(patches, 'dtype', type(patches))} {getattr(patches, 'shape', '')}")
        if not math.isfinite(t):
            raise ValueError(f"t must be finite (got {t})")
        if self._count:
            last_t = self._t[(self._head - 1) % self.length]
            if t < last_t:
                raise ValueError(f"frame times must not go backwards ({t} < {last_t})")
            if self.max_gap_s is not None and t - last_t > self.max_gap_s:
                self.reset()
        i = self._head
        self._kp[i] = kp
        if patches is not None:
            self._patches[i] = patches
            self._valid[i] = True
        else:
            self._valid[i] = False  # stale patch data stays in the slot; zeroed only in the emitted copy
        self._t[i] = t
        self._head = (i + 1) % self.length
        self._count = min(self._count + 1, self.length)
        self._since_emit += 1
        if self._count < self.length or (self._emitted and self._since_emit < self.stride):
            return None
        idx = (self._head + np.arange(self.length)) % self.length  # oldest .. newest
        valid = self._valid[idx]
        patches_out = self._patches[idx]
        if not valid.all():
            patches_out[~valid] = 0
        clip = Clip(self._kp[idx], patches_out, valid, self._t[idx], self._emitted)
        self._emitted += 1
        self._since_emit = 0
        return clip
