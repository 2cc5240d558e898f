"""Face anonymisation for frames whose pixels leave memory (dataset patches of recorded videos).

The face region comes from the head keypoints (nose, eyes, ears) with a margin scaled to the head's
size; when the patient's head is not found, the whole frame is anonymised, because a frame whose
face we cannot locate may still show one. Other people's faces (``others``: e.g. a nurse that the
pose estimator found next to the patient) are anonymised too when their head joints are found.

A region is anonymised by pixelation to at most 6x6 cells (area averages), drawn back smoothly
(bilinear): the result depends only on those <= 36 mean colours, so unlike a mild blur it cannot be
inverted, and it costs about the same for a whole frame as for a face. See docs/privacy.md for
where frames go in ward and where this is applied.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ward.core.keypoints import HEAD_JOINTS, OPENPOSE_18, OPENPOSE_INDEX
from ward.vision.patient import _as_people  # the pose decoder's people -> (N, 18, 3), with clear errors

_HEAD_IDX = np.array([OPENPOSE_INDEX[n] for n in HEAD_JOINTS])
_NECK = OPENPOSE_INDEX["neck"]
MOSAIC_CELLS = 6
"""Cells per side of the mosaic an anonymised region is reduced to."""

People = Sequence[np.ndarray] | np.ndarray


def face_boxes(kpts18: np.ndarray, frame_hw: tuple[int, int], *, margin: float = 0.75,
               min_conf: float = 0.1) -> np.ndarray:
    """Pixel boxes (..., 4) int64 ``(x0, y0, x1, y1)`` around the faces of keypoints (..., 18, 3).

    Rows are -1 where no head joint is confident (or the box falls outside the frame). The box is
    the head joints' extent grown by ``margin`` times the head size on every side. The head size is
    the larger of that extent and the nose-neck distance (a single visible joint still gets a
    face-sized box), with a floor of 4 % of the frame height. Computed for all sets at once.
    """
    k = np.asarray(kpts18, dtype=np.float64)
    if k.shape[-2:] != (len(OPENPOSE_18), 3):
        raise ValueError(f"keypoints must have shape (18, 3) (x, y, confidence) in OpenPose order, got {k.shape}")
    h, w = frame_hw
    head = k[..., _HEAD_IDX, :]
    ok = (head[..., 2] > min_conf) & np.isfinite(head[..., :2]).all(-1)
    any_ok = ok.any(-1)
    xy = head[..., :2]
    lo = np.where(ok[..., None], xy, np.inf).min(-2)
    hi = np.where(ok[..., None], xy, -np.inf).max(-2)
    lo, hi = np.where(any_ok[..., None], lo, 0.0), np.where(any_ok[..., None], hi, 0.0)
    size = np.maximum((hi - lo).max(-1), 0.04 * h)
    mean = np.where(ok[..., None], xy, 0.0).sum(-2) / np.maximum(ok.sum(-1), 1)[..., None]
    neck = k[..., _NECK, :]
    neck_ok = (neck[..., 2] > min_conf) & np.isfinite(neck[..., :2]).all(-1)
    neck_dist = np.linalg.norm(np.where(neck_ok[..., None], neck[..., :2], mean) - mean, axis=-1)
    size = np.maximum(size, neck_dist)
    pad = (margin * size + size / 2)[..., None]
    centre = (lo + hi) / 2
    top_left = np.maximum(np.floor(centre - pad), 0)
    bottom_right = np.minimum(np.ceil(centre + pad), [w, h])
    boxes = np.concatenate([top_left, bottom_right], -1).astype(np.int64)
    valid = any_ok & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    return np.where(valid[..., None], boxes, -1)


def face_box(kpts18: np.ndarray, frame_hw: tuple[int, int], *, margin: float = 0.75,
             min_conf: float = 0.1) -> tuple[int, int, int, int] | None:
    """The face box of one person's (18, 3) keypoints, or None when no head joint is confident."""
    kpts18 = np.asarray(kpts18)
    if kpts18.shape != (len(OPENPOSE_18), 3):
        raise ValueError(f"keypoints must have shape (18, 3) (x, y, confidence) in OpenPose order, got {kpts18.shape}")
    box = face_boxes(kpts18, frame_hw, margin=margin, min_conf=min_conf)
    return None if box[0] < 0 else (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


def _anonymise(region: np.ndarray) -> np.ndarray:
    """The region reduced to <= 6x6 area-averaged cells and drawn back bilinearly (same shape)."""
    h, w = region.shape[:2]
    tiny = cv2.resize(region, (min(MOSAIC_CELLS, w), min(MOSAIC_CELLS, h)), interpolation=cv2.INTER_AREA)
    return cv2.resize(tiny, (w, h), interpolation=cv2.INTER_LINEAR)


def _anonymise_in_place(img: np.ndarray, patient_box: np.ndarray, other_boxes: np.ndarray) -> None:
    """Anonymise the patient's and the others' face boxes of one frame, or all of it without a patient box."""
    if patient_box[0] < 0:
        img[:] = _anonymise(img)
        return
    for x0, y0, x1, y1 in (patient_box, *other_boxes):
        if x0 >= 0:
            img[y0:y1, x0:x1] = _anonymise(img[y0:y1, x0:x1])


def _check_frames(frames: np.ndarray, ndim: int, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != ndim or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{what} must be {'(N, H, W, 3)' if ndim == 4 else '(H, W, 3)'} uint8 BGR, got shape "
                         f"{frames.shape} dtype {frames.dtype}")
    return frames


def blur_faces(frame: np.ndarray, kpts18: np.ndarray | None, *, others: People | None = None,
               margin: float = 0.75, min_conf: float = 0.1) -> np.ndarray:
    """Return a copy of `frame` (H, W, 3) uint8 with the patient's (and others') faces anonymised.

    `kpts18` is the patient's (18, 3) keypoints in frame pixels; None or no confident head joint
    anonymises the whole frame. `others`: further people, (P, 18, 3) or a list of (18, 3).
    """
    frame = _check_frames(frame, 3, "frame")
    k = None if kpts18 is None else np.asarray(kpts18)[None]
    return blur_faces_clip(frame[None], k, None if others is None else [others], margin=margin, min_conf=min_conf)[0]


def blur_faces_clip(frames: np.ndarray, kpts18: np.ndarray | None, others: Sequence[People] | None = None, *,
                    margin: float = 0.75, min_conf: float = 0.1) -> np.ndarray:
    """`blur_faces` over frames (N, H, W, 3) with per-frame patient keypoints (N, 18, 3) (None: none found).

    ``others``: per frame, the other people found on it (see `blur_faces`). The clip is copied once
    and the face boxes of all frames and people are computed in one vectorised step; only the
    anonymisation of each box is per frame.
    """
    frames = _check_frames(frames, 4, "clip")
    n, h, w = frames.shape[:3]
    if kpts18 is not None and len(kpts18) != n:
        raise ValueError(f"need one (18, 3) keypoint set per frame: {n} frames, {len(kpts18)} sets")
    if kpts18 is not None and np.shape(kpts18) != (n, len(OPENPOSE_18), 3):
        raise ValueError(f"clip keypoints must have shape (N, 18, 3) in OpenPose order, got {np.shape(kpts18)}")
    if others is not None and len(others) != n:
        raise ValueError(f"need one list of other people per frame: {n} frames, {len(others)} lists")
    boxes = (np.full((n, 4), -1, np.int64) if kpts18 is None else
             face_boxes(kpts18, (h, w), margin=margin, min_conf=min_conf).reshape(n, 4))
    people = [_as_people(p) for p in others] if others is not None else [np.zeros((0, 18, 3))] * n
    owner = np.repeat(np.arange(n), [len(p) for p in people])
    other_boxes = face_boxes(np.concatenate(people), (h, w), margin=margin, min_conf=min_conf)
    out = frames.copy()
    for i in range(n):
        _anonymise_in_place(out[i], boxes[i], other_boxes[owner == i])
    return out
