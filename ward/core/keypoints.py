"""Keypoint layouts as data.

Two layouts meet in ward: the 18 joints Lightweight OpenPose predicts, and the 15 joints VSViG
consumes, grouped in five body parts of three joints. The VSViG order is the one the official
training script uses, the only one consistent with its parts (head, right arm, left arm, right leg,
left leg). Everything that maps between layouts uses the index arrays below, never literals.
"""

from __future__ import annotations

from typing import Final

import numpy as np

OPENPOSE_18: Final[tuple[str, ...]] = (
    "nose", "neck",
    "r_sho", "r_elb", "r_wri",
    "l_sho", "l_elb", "l_wri",
    "r_hip", "r_knee", "r_ank",
    "l_hip", "l_knee", "l_ank",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
"""Lightweight OpenPose / COCO-18 output order."""

OPENPOSE_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(OPENPOSE_18)}

VSVIG_15: Final[tuple[str, ...]] = (
    "nose", "l_eye", "r_eye",
    "r_sho", "r_elb", "r_wri",
    "l_sho", "l_elb", "l_wri",
    "r_hip", "r_knee", "r_ank",
    "l_hip", "l_knee", "l_ank",
)
"""Canonical VSViG joint order: five consecutive parts of three joints."""

VSVIG_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(VSVIG_15)}

VSVIG_PARTS: Final[dict[str, tuple[str, str, str]]] = {
    "head": ("nose", "l_eye", "r_eye"),
    "right_arm": ("r_sho", "r_elb", "r_wri"),
    "left_arm": ("l_sho", "l_elb", "l_wri"),
    "right_leg": ("r_hip", "r_knee", "r_ank"),
    "left_leg": ("l_hip", "l_knee", "l_ank"),
}
"""The five parts, in order; joint i of VSVIG_15 belongs to part i // 3."""

NUM_PARTS: Final[int] = len(VSVIG_PARTS)
JOINTS_PER_PART: Final[int] = 3

PART_OF_JOINT: Final[np.ndarray] = np.repeat(np.arange(NUM_PARTS), JOINTS_PER_PART)
"""(15,) part index of each VSViG joint."""

OPENPOSE_TO_VSVIG: Final[np.ndarray] = np.array([OPENPOSE_INDEX[n] for n in VSVIG_15], dtype=np.int64)
"""(15,) index into the 18-joint layout for each VSViG joint: ``kpts15 = kpts18[..., OPENPOSE_TO_VSVIG, :]``."""

OFFICIAL_PATCH_SCRIPT_JOINTS: Final[tuple[str, ...]] = tuple(
    n for n in OPENPOSE_18 if n not in ("neck", "r_eye", "l_eye")
)
"""Joints the released patch script keeps (neck and eyes dropped). Informational: ward uses VSVIG_15."""

OPENPOSE_LIMBS: Final[tuple[tuple[str, str], ...]] = (
    ("neck", "r_sho"), ("r_sho", "r_elb"), ("r_elb", "r_wri"),
    ("neck", "l_sho"), ("l_sho", "l_elb"), ("l_elb", "l_wri"),
    ("neck", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ank"),
    ("neck", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ank"),
    ("neck", "nose"), ("nose", "r_eye"), ("r_eye", "r_ear"),
    ("nose", "l_eye"), ("l_eye", "l_ear"),
)
"""Stick-figure edges for drawing skeletons (not the PAF pairs of the pose decoder)."""

HEAD_JOINTS: Final[tuple[str, ...]] = ("nose", "r_eye", "l_eye", "r_ear", "l_ear")
"""Joints that locate the face (for blurring)."""


def to_vsvig(kpts18: np.ndarray) -> np.ndarray:
    """Select and reorder (..., 18, C) OpenPose keypoints into the (..., 15, C) VSViG layout."""
    if kpts18.shape[-2] != len(OPENPOSE_18):
        raise ValueError(f"expected keypoints of shape (..., 18, C) in OpenPose order, got {tuple(kpts18.shape)}")
    return kpts18[..., OPENPOSE_TO_VSVIG, :]
