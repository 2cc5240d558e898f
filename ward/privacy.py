"""Face anonymisation for any frame that leaves the camera actor (event clips, displayed frames).

The face region comes from the head keypoints (nose, eyes, ears) with a margin scaled to the head's
size; when no head joint is confident, the whole frame is anonymised, because a frame whose face we
cannot locate may still show one. Pixelation followed by a blur is used instead of a blur alone:
a mild Gaussian blur of a face can be partly inverted, a 6x6 mosaic cannot.
"""

from __future__ import annotations

import cv2
import numpy as np

from ward.keypoints import HEAD_JOINTS, OPENPOSE_18, OPENPOSE_INDEX

_HEAD_IDX = np.array([OPENPOSE_INDEX[n] for n in HEAD_JOINTS])
_NECK = OPENPOSE_INDEX["neck"]


def face_box(kpts18: np.ndarray, frame_hw: tuple[int, int], *, margin: float = 0.75,
             min_conf: float = 0.1) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, y0, x1, y1) around the face, or None when no head joint is confident.

    The box is the head joints' extent grown by `margin` times the head size on every side. The head
    size is the larger of that extent and the nose-neck distance (a single visible joint still gets a
    face-sized box), with a floor of 4 % of the frame height.
    """
    kpts18 = np.asarray(kpts18, dtype=np.float32)
    if kpts18.shape != (len(OPENPOSE_18), 3):
        raise ValueError(f"keypoints must have shape (18, 3) (x, y, confidence) in OpenPose order, got {kpts18.shape}")
    h, w = frame_hw
    head = kpts18[_HEAD_IDX]
    ok = head[:, 2] > min_conf
    if not ok.any():
        return None
    pts = head[ok, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = float(max(hi[0] - lo[0], hi[1] - lo[1], 0.04 * h))
    neck = kpts18[_NECK]
    if neck[2] > min_conf:
        size = max(size, float(np.linalg.norm(neck[:2] - pts.mean(axis=0))))
    pad = margin * size + size / 2
    centre = (lo + hi) / 2
    x0, y0 = np.floor(centre - pad).astype(int)
    x1, y1 = np.ceil(centre + pad).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _anonymise(region: np.ndarray) -> np.ndarray:
    h, w = region.shape[:2]
    tiny = cv2.resize(region, (max(1, min(6, w)), max(1, min(6, h))), interpolation=cv2.INTER_AREA)
    mosaic = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(h, w) // 4) | 1)
    return cv2.GaussianBlur(mosaic, (k, k), 0)


def blur_faces(frame: np.ndarray, kpts18: np.ndarray | None, *, margin: float = 0.75,
               min_conf: float = 0.1) -> np.ndarray:
    """Return a copy of `frame` (H, W, 3) uint8 with the patient's face anonymised.

    `kpts18` is the patient's (18, 3) keypoints in frame pixels; None or no confident head joint
    anonymises the whole frame.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 image, got shape {frame.shape} dtype {frame.dtype}")
    out = frame.copy()
    box = None if kpts18 is None else face_box(kpts18, frame.shape[:2], margin=margin, min_conf=min_conf)
    if box is None:
        return _anonymise(out)
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = _anonymise(out[y0:y1, x0:x1])
    return out


def blur_faces_clip(frames: np.ndarray, kpts18: np.ndarray | None) -> np.ndarray:
    """`blur_faces` over a clip (N, H, W, 3) with per-frame keypoints (N, 18, 3)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"clip must have shape (N, H, W, 3), got {frames.shape}")
    if kpts18 is not None and len(kpts18) != len(frames):
        raise ValueError(f"need one (18, 3) keypoint set per frame: {len(frames)} frames, {len(kpts18)} sets")
    return np.stack([blur_faces(f, None if kpts18 is None else k) for f, k in
                     zip(frames, kpts18 if kpts18 is not None else [None] * len(frames))])
