"""Pinhole cameras for the two bed views, in the body module's world frame (metres, z = 0 on the mattress)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR_Z = -0.55
"""Floor height relative to the mattress surface."""


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: rows of R are the image right, image down and viewing direction in world axes."""

    R: np.ndarray        # (3, 3)
    C: np.ndarray        # (3,) centre in world
    f: float             # focal length, px
    cx: float
    cy: float

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) and depth along the view (..., )."""
        pc = (X - self.C) @ self.R.T
        depth = np.maximum(pc[..., 2], 1e-3)
        uv = np.stack([self.cx + self.f * pc[..., 0] / depth, self.cy + self.f * pc[..., 1] / depth], -1)
        return uv, depth

    def direction_to(self, X: np.ndarray) -> np.ndarray:
        """Unit vectors from points (..., 3) towards the camera centre."""
        d = self.C - X
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


def look_at(eye: np.ndarray, target: np.ndarray, up_hint: np.ndarray, f: float, width: int, height: int) -> Camera:
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, up_hint)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return Camera(np.stack([right, down, fwd]), eye.astype(float), float(f), width / 2.0, height / 2.0)


def make_camera(view: str, width: int, height: int, jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Camera:
    """The scenario's camera. `jitter` in [-1, 1]^3 moves it a little so every room looks slightly different.

    ceiling: 2.3 m above the mattress looking straight down, head of the bed on the image left, about
    3.3 m of floor across the image width at mattress height. bed_end: on the wall beyond the foot of
    the bed, 1.5 m above the mattress, looking down the bed towards the pillow.
    """
    j = np.asarray(jitter, dtype=float)
    aspect_fix = min(1.0, (width / height) / (16 / 9))   # keep the bed in frame on narrower images
    if view == "ceiling":
        eye = np.array([0.08 * j[0], 1.0 + 0.1 * j[1], 2.3 + 0.15 * j[2]])
        return look_at(eye, eye * np.array([1, 1, 0]), np.array([-1.0, 0, 0]), width * 2.3 / 3.3 * aspect_fix,
                       width, height)
    if view == "bed_end":
        eye = np.array([0.25 * j[0], 3.0 + 0.15 * j[1], 1.5 + 0.1 * j[2]])
        return look_at(eye, np.array([0.0, 0.85, -0.1]), np.array([0, 0, 1.0]), width * 0.8 * aspect_fix,
                       width, height)
    raise ValueError(f"unknown view {view!r}: use 'ceiling' or 'bed_end'")
