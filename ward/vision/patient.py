"""One tracked patient per bed: selection among detected people, gap filling and smoothing.

The pose decoder returns every person in view; VSViG must see one body, the patient's, on every
sampled frame. :class:`PatientSelector` picks the person who lies in the bed region and stays
continuous with the previous frames, ignores others (a nurse at the bedside), holds joints with
decaying confidence through short gaps, and smooths positions with a :class:`OneEuroFilter`.

Conventions
-----------
* Keypoints are (18, 3) rows ``(x, y, score)`` in the OpenPose-18 order, frame pixels; a joint is
  missing when its score is <= ``min_joint_score``, a coordinate is negative (the decoder writes -1)
  or a value is not finite.
* ``bed_roi`` is **normalised**: ``(x0, y0, x1, y1)`` in 0..1 of the frame width/height, so one
  region per camera survives a change of resolution; ``frame_size=(width, height)`` converts it to
  pixels and is required whenever ``bed_roi`` is given.
* Output is always (18, 3) float32 ``(x, y, confidence)``; joints not available are all zeros.

Pure numpy, no I/O: one instance per bed lives in that bed's camera actor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ward.core.keypoints import OPENPOSE_18

NUM_JOINTS = len(OPENPOSE_18)


def match_patient(cands: Sequence[np.ndarray], gt: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The detected person nearest to the patient's ground truth ``gt`` (18, 3) and that distance:
    mean pixel distance over the joints both have (visible in ``gt``, found in the detection).

    For accuracy measurements on simulated frames (pose training's check, the engines' and the int8
    accuracy gates), not for serving (that is :class:`PatientSelector`)."""
    vis = gt[:, 2] > 0
    best, best_d = None, np.inf
    for c in cands:
        both = vis & (c[:, 2] >= 0)
        if both.any():
            d = float(np.linalg.norm(c[both, :2] - gt[both, :2], axis=1).mean())
            if d < best_d:
                best, best_d = c, d
    return best, best_d


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-euro filter (Casiez et al., CHI 2012) over an array of values, all updated at once.

    Each element (e.g. each joint's x and y) has its own state and its own last update time, so
    joints can be skipped (``mask``) or reset independently without per-joint Python objects.
    Low speed -> low cutoff (jitter removed); high speed -> cutoff rises by ``beta * |speed|``
    (lag removed). ``min_cutoff``/``d_cutoff`` are in Hz, ``beta`` in 1/(value unit).
    """

    def __init__(self, shape: tuple[int, ...], *, min_cutoff: float = 1.0, beta: float = 0.05,
                 d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got "
                             f"min_cutoff={min_cutoff}, d_cutoff={d_cutoff}, beta={beta}")
        self.shape = tuple(shape)
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._x = np.zeros(self.shape)
        self._dx = np.zeros(self.shape)
        self._t = np.zeros(self.shape)
        self._init = np.zeros(self.shape, dtype=bool)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget the state of all elements, or of those where ``mask`` is True."""
        if mask is None:
            self._init[...] = False
        else:
            self._init &= ~np.broadcast_to(np.asarray(mask, dtype=bool), self.shape)

    def __call__(self, x: np.ndarray, t: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Filter ``x`` observed at time ``t`` (s); elements where ``mask`` is False keep their state.

        Returns the filtered values (for masked-out elements: their last filtered value).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"OneEuroFilter expects values of shape {self.shape}, got {x.shape}")
        upd = np.ones(self.shape, dtype=bool) if mask is None else np.broadcast_to(
            np.asarray(mask, dtype=bool), self.shape)
        first = upd & ~self._init
        step = upd & self._init
        dt = t - self._t
        if np.any(step & (dt <= 0)):
            raise ValueError(f"timestamps must increase: got t={t} after t={self._t[step].max()}")
        dt = np.where(step, dt, 1.0)  # placeholder where unused, avoids division warnings
        dx = (x - self._x) / dt
        dx_hat = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._x = np.where(step, x_hat, np.where(first, x, self._x))
        self._dx = np.where(step, dx_hat, np.where(first, 0.0, self._dx))
        self._t = np.where(upd, t, self._t)
        self._init |= upd
        return self._x.copy()


def _as_people(people: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack the decoder's people into (N, 18, 3) float64, with a clear error on a wrong shape."""
    if isinstance(people, np.ndarray) and people.ndim == 3:
        arr = people
    elif len(people) == 0:
        return np.zeros((0, NUM_JOINTS, 3))
    else:
        shapes = {np.shape(p) for p in people}
        if shapes != {(NUM_JOINTS, 3)}:
            raise ValueError(f"each person must be an ({NUM_JOINTS}, 3) array of (x, y, score) in "
                             f"OpenPose-18 order; got shapes {sorted(shapes)}")
        arr = np.stack([np.asarray(p) for p in people])
    if arr.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"people must have shape (N, {NUM_JOINTS}, 3); got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"keypoints must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


class PatientSelector:
    """Track the one patient of a bed through the people the pose decoder finds on each frame.

    Call :meth:`update` once per sampled frame, in time order. Selection:

    * **acquire** (no identity yet, or lost for more than ``max_gap_frames``): the person whose
      valid joints lie most inside the bed region (fraction >= ``min_roi_overlap``), ties broken by
      number of joints and size; without a bed region, the largest, most complete person;
    * **keep** (identity held): only people within ``max_match_dist`` body sizes of the patient's
      last known joints (mean joint distance) are candidates, scored by continuity
      ``exp(-d / 0.5)`` plus ``roi_weight`` times bed overlap. A nurse at the bedside is far
      from the patient's joints, so she cannot take over even while the patient is undetected.

    Gaps: a joint (or the whole patient) missing for k <= ``max_gap_frames`` frames is held at its
    last smoothed position with confidence ``last_score * gap_decay**k``; beyond that it is zeros
    and its filter state is reset. Attributes: ``found`` (patient detected on the last frame),
    ``frames_missing`` (consecutive frames without the patient).
    """

    def __init__(
        self,
        bed_roi: tuple[float, float, float, float] | None = None,
        *,
        frame_size: tuple[int, int] | None = None,
        max_gap_frames: int = 6,
        gap_decay: float = 0.7,
        min_cutoff: float = 1.0,
        beta: float = 0.05,
        d_cutoff: float = 1.0,
        min_joint_score: float = 0.0,
        min_joints: int = 3,
        min_roi_overlap: float = 0.5,
        max_match_dist: float = 0.4,
        roi_weight: float = 0.5,
    ) -> None:
        if max_gap_frames < 0:
            raise ValueError(f"max_gap_frames must be >= 0, got {max_gap_frames}")
        if not 0.0 <= gap_decay <= 1.0:
            raise ValueError(f"gap_decay must be in [0, 1], got {gap_decay}")
        if min_joints < 1:
            raise ValueError(f"min_joints must be >= 1, got {min_joints}")
        if frame_size is not None:
            if len(frame_size) != 2 or min(frame_size) <= 0:
                raise ValueError(f"frame_size must be (width, height) in pixels, got {frame_size}")
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))
        self.roi_px: np.ndarray | None = None
        if bed_roi is not None:
            x0, y0, x1, y1 = (float(v) for v in bed_roi)
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                raise ValueError(f"bed_roi must be normalised (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 "
                                 f"and 0 <= y0 < y1 <= 1; got {bed_roi} (divide pixels by the frame size)")
            if self.frame_size is None:
                raise ValueError("bed_roi is normalised to 0..1: pass frame_size=(width, height) to "
                                 "convert it to frame pixels")
            w, h = self.frame_size
            self.roi_px = np.array([x0 * w, y0 * h, x1 * w, y1 * h])
        self.max_gap_frames = int(max_gap_frames)
        self.gap_decay = float(gap_decay)
        self.min_joint_score = float(min_joint_score)
        self.min_joints = int(min_joints)
        self.min_roi_overlap = float(min_roi_overlap)
        self.max_match_dist = float(max_match_dist)
        self.roi_weight = float(roi_weight)
        self._filter = OneEuroFilter((NUM_JOINTS, 2), min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the patient (e.g. on a camera change or a new recording)."""
        self._filter.reset()
        self._last_raw = np.zeros((NUM_JOINTS, 2))        # last observed (unsmoothed) joints
        self._last_out = np.zeros((NUM_JOINTS, 2))        # last smoothed joints
        self._last_score = np.zeros(NUM_JOINTS)           # score when each joint was last seen
        self._joint_missing = np.full(NUM_JOINTS, np.iinfo(np.int32).max // 2)  # frames since seen
        self._has_identity = False
        self._t: float | None = None
        self.found = False
        self.frames_missing = 0

    @property
    def has_identity(self) -> bool:
        """Whether a patient is currently tracked (found, or missing for a short gap only)."""
        return self._has_identity

    # -- selection ---------------------------------------------------------------------------

    def _valid(self, p: np.ndarray) -> np.ndarray:
        """(N, 18) mask of present joints."""
        finite = np.isfinite(p).all(axis=-1)
        with np.errstate(invalid="ignore"):
            return finite & (p[..., 2] > self.min_joint_score) & (p[..., 0] >= 0) & (p[..., 1] >= 0)

    def _body_size(self, xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(N,) diagonal of the valid joints' bounding box, floored so tiny people don't divide by ~0."""
        hi = np.where(valid[..., None], xy, -np.inf).max(axis=-2)
        lo = np.where(valid[..., None], xy, np.inf).min(axis=-2)
        span = np.where(valid.any(-1)[..., None], hi - lo, 0.0)
        diag = np.hypot(span[..., 0], span[..., 1])
        floor = 0.02 * float(np.hypot(*self.frame_size)) if self.frame_size else 8.0
        return np.maximum(diag, floor)

    def _roi_overlap(self, xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(N,) fraction of each person's valid joints inside the bed region (1 without a region)."""
        n_valid = valid.sum(-1)
        if self.roi_px is None:
            return np.ones(len(xy))
        x0, y0, x1, y1 = self.roi_px
        inside = valid & (xy[..., 0] >= x0) & (xy[..., 0] <= x1) & (xy[..., 1] >= y0) & (xy[..., 1] <= y1)
        return inside.sum(-1) / np.maximum(n_valid, 1)

    def _select(self, people: np.ndarray) -> int | None:
        """Index of the patient among ``people`` (N, 18, 3), or None."""
        if len(people) == 0:
            return None
        valid = self._valid(people)
        xy = people[..., :2]
        ok = valid.sum(-1) >= self.min_joints
        if not ok.any():
            return None
        overlap = self._roi_overlap(xy, valid)
        size = self._body_size(xy, valid)
        if not self._has_identity:
            eligible = ok & (overlap >= self.min_roi_overlap)
            if not eligible.any():
                return None
            # Most inside the bed, then most complete, then largest.
            key = overlap * 1e6 + valid.sum(-1) * 1e3 + np.minimum(size, 999.0)
            return int(np.argmax(np.where(eligible, key, -np.inf)))
        # Continuity with the patient's last known joints (held ones included while in the gap).
        known = self._joint_missing <= self.max_gap_frames
        common = valid & known[None]
        n_common = common.sum(-1)
        dist = np.linalg.norm(xy - self._last_raw[None], axis=-1)
        mean_joint = np.where(common, dist, 0.0).sum(-1) / np.maximum(n_common, 1)
        # Too few shared joints: compare centroids of what each side has.
        cent_p = np.where(valid[..., None], xy, 0).sum(-2) / np.maximum(valid.sum(-1), 1)[:, None]
        cent_ref = (self._last_raw * known[:, None]).sum(0) / max(int(known.sum()), 1)
        mean_cent = np.linalg.norm(cent_p - cent_ref[None], axis=-1)
        d = np.where(n_common >= 2, mean_joint, mean_cent)
        ref_size = self._body_size(self._last_raw[None], known[None])[0]
        d_rel = d / ref_size  # in patient body sizes: a bigger bystander is not "closer"
        eligible = ok & (d_rel <= self.max_match_dist)
        if not eligible.any():
            return None
        score = np.exp(-d_rel / 0.5) + self.roi_weight * overlap
        return int(np.argmax(np.where(eligible, score, -np.inf)))

    # -- per frame ---------------------------------------------------------------------------

    def update(self, people: Sequence[np.ndarray] | np.ndarray, t: float) -> np.ndarray:
        """Patient keypoints (18, 3) float32 ``(x, y, confidence)`` for the frame at time ``t`` (s).

        ``people``: the decoder's persons on this frame, each (18, 3) ``(x, y, score)`` in frame
        pixels with -1 for missing joints (a list, possibly empty, or an (N, 18, 3) array).
        """
        t = float(t)
        if not np.isfinite(t):
            raise ValueError(f"t must be a finite time in seconds, got {t}")
        if self._t is not None and t <= self._t:
            raise ValueError(f"update() must be called in time order: t={t} after t={self._t}")
        self._t = t
        arr = _as_people(people)
        idx = self._select(arr)
        self.found = idx is not None
        if idx is None:
            self.frames_missing += 1
            seen = np.zeros(NUM_JOINTS, dtype=bool)
        else:
            self.frames_missing = 0
            self._has_identity = True
            person = arr[idx]
            seen = self._valid(person[None])[0]
        stale = self._joint_missing > self.max_gap_frames
        self._joint_missing = np.where(seen, 0, self._joint_missing + 1)
        if idx is not None:
            # Joints back after a long absence start a fresh filter (no smoothing across the gap).
            self._filter.reset(seen[:, None] & stale[:, None])
            self._last_raw = np.where(seen[:, None], person[:, :2], self._last_raw)
            self._last_score = np.where(seen, person[:, 2], self._last_score)
            self._last_out = np.where(seen[:, None],
                                      self._filter(np.where(seen[:, None], person[:, :2], 0.0), t, seen[:, None]),
                                      self._last_out)
        elif self.frames_missing > self.max_gap_frames:
            self._has_identity = False
            self._filter.reset()
        held = self._joint_missing <= self.max_gap_frames
        conf = np.where(held, self._last_score * self.gap_decay ** np.minimum(self._joint_missing, 10**6), 0.0)
        out = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
        out[:, :2] = np.where(held[:, None], self._last_out, 0.0)
        out[:, 2] = conf
        return out
