"""What a pose estimator does to ground-truth keypoints: jitter, dropped joints, left/right swaps.

Used by ``ward eval --fast`` (ground truth + noise instead of the pose network) and by
``ward dataset generate`` (the ``--gt-fraction`` scenarios, as augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MIRROR_18", "PoseNoise", "noisy_keypoints"]

# OpenPose-18 left/right mirror (a pose estimator's typical identity swap)
MIRROR_18 = np.array([0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16])


@dataclass
class PoseNoise:
    """Keypoint noise in the range a pose estimator shows on 360p frames."""

    jitter_px: float = 2.0
    p_drop: float = 0.05
    p_swap: float = 0.01


def noisy_keypoints(k18: np.ndarray, rng: np.random.Generator, noise: PoseNoise) -> np.ndarray:
    """(N,18,3) ground truth -> what a pose estimator might return: jitter, drops, L/R swaps (vectorised)."""
    k = np.array(k18, dtype=np.float32, copy=True)
    swap = rng.random(k.shape[0]) < noise.p_swap
    k[swap] = k[swap][:, MIRROR_18]  # labels swapped: the left joints get the right ones' positions
    vis = (k[..., 2] > 0) & (rng.random(k.shape[:2]) >= noise.p_drop)
    k[..., :2] += rng.normal(0.0, noise.jitter_px, k[..., :2].shape).astype(np.float32)
    k[~vis] = 0.0
    k[..., 2] = vis.astype(np.float32)
    return k
