"""One bed's clip path, written once: posed frames -> patient -> joint patches -> clips -> VSViG inputs.

VSViG only gives the numbers it was validated with when every user feeds it the same clips: the
live ward, the benchmark and the training data. So there is one :class:`BedPipeline`, used by

* ``ward.serve.camera_actor`` (live): one frame at a time, with the Ray Pose deployment's people
  (or the simulator's ground truth) passed in, and :meth:`BedPipeline.vsvig_inputs` sent to the Ray
  VSViG deployment;
* ``ward.evaluation.run`` (``ward eval``): chunks of rendered frames, with simulator keypoints plus
  pose noise (``--fast``) or a local pose network's people, scored by a local VSViG through
  :class:`ClipScorer`;
* ``ward.dataset.build`` (``ward dataset build``): blocks of video frames, with ground-truth
  keypoints or a local pose network's people, the clips written to shards.

Per frame: the patient is selected among the detected people (:class:`ward.vision.patient.
PatientSelector`; skipped when the caller already has the patient's keypoints), an optional
``redact`` step changes the frame before patches are cut (the dataset's face blur), the 15 joint
patches are cut (:func:`ward.vision.patches.extract_patches`) and the frame goes into the clip ring
(:class:`ward.core.clip.ClipAssembler`), which emits a clip every ``stride_frames`` frames.

Pure: no Ray, no I/O, no clock; pose and VSViG are callables given by the caller, or their results
are passed in. A batch of frames is processed at once (one patch extraction per batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ward.core.clip import CLIP_FRAMES, CLIP_STRIDE_FRAMES, POSE_JOINTS, Clip, ClipAssembler

__all__ = ["BedPipeline", "ClipScorer", "NormFn", "PatchFn", "PoseFn", "Posed", "RedactFn", "ScoreFn"]

PoseFn = Callable[[np.ndarray], Sequence[Sequence[np.ndarray]]]
"""(N, H, W, 3) uint8 frames -> per frame, the people in view, each (18, 3) (x, y, score) pixels."""
PatchFn = Callable[[np.ndarray, np.ndarray], Any]
"""(N, H, W, 3) uint8, (N, 18, 3) -> (N, 15, 3, 32, 32) patches, values 0..255 (any dtype)."""
NormFn = Callable[[np.ndarray, tuple[int, int]], Any]
"""(N, 18, 3) pixels, (H, W) -> (N, 15, 3) VSViG keypoints."""
RedactFn = Callable[[np.ndarray, np.ndarray, "Sequence[Sequence[np.ndarray]] | None"], np.ndarray]
"""(frames, patient keypoints (N, 18, 3), people or None) -> the frames patches are cut from."""
ScoreFn = Callable[[Any, Any], np.ndarray]
"""(B, 30, 15, 3, 32, 32) uint8 patches, (B, 30, 15, 3) float32 keypoints (torch) -> (B,) probabilities."""


@dataclass(frozen=True)
class Posed:
    """What one :meth:`BedPipeline.push` did."""

    keypoints: np.ndarray  # (N, 18, 3) float32: the patient's keypoints per frame (zeros: not found)
    found: np.ndarray      # (N,) bool: patient found (or held through a short gap) on each frame
    clips: list[Clip]      # the clips that became due, oldest first


def _default_patch_fn() -> PatchFn:
    import torch  # noqa: PLC0415

    from ward.vision.patches import extract_patches  # noqa: PLC0415

    return lambda frames, k18: extract_patches(frames, k18, out_dtype=torch.uint8)


def _default_norm_fn() -> NormFn:
    from ward.vision.patches import normalise_keypoints  # noqa: PLC0415

    return normalise_keypoints


def _as_uint8(patches: Any) -> np.ndarray:
    """Patches as uint8 numpy, float values rounded half to even (what extract_patches' uint8 does)."""
    arr = patches.numpy() if hasattr(patches, "numpy") else np.asarray(patches)
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


class BedPipeline:
    """One bed's posed frames -> clips (and their VSViG inputs); frames must come in time order.

    ``bed_roi``: normalised (x0, y0, x1, y1) bed region for patient selection, or None (largest,
    most complete person). ``max_gap_s``: a clip never spans a hole longer than this (None: no
    limit). ``patch_fn``/``norm_fn`` replace the real patch extractor/normaliser (tests).
    """

    def __init__(self, bed_roi: tuple[float, float, float, float] | None = None, *,
                 stride_frames: int = CLIP_STRIDE_FRAMES, max_gap_s: float | None = None,
                 patch_fn: PatchFn | None = None, norm_fn: NormFn | None = None,
                 redact: RedactFn | None = None) -> None:
        self.bed_roi = None if bed_roi is None else tuple(float(v) for v in bed_roi)
        self.assembler = ClipAssembler(CLIP_FRAMES, stride_frames, max_gap_s=max_gap_s)
        self.patch_fn = patch_fn or _default_patch_fn()
        self.norm_fn = norm_fn or _default_norm_fn()
        self.redact = redact
        self.selector: Any = None
        self.size: tuple[int, int] | None = None  # (w, h) of the frames
        self.last_keypoints: np.ndarray | None = None

    def reset(self) -> None:
        """Start over: a new patient track and an empty clip ring (new video, new camera resolution)."""
        self.selector = None
        self.assembler.reset()

    def push(self, frames: np.ndarray, t: Sequence[float] | np.ndarray, *,
             people: Sequence[Sequence[np.ndarray]] | None = None, patient: np.ndarray | None = None,
             pose: PoseFn | None = None) -> Posed:
        """Add consecutive frames (N, H, W, 3) uint8 captured at times ``t`` (s, increasing).

        Give exactly one of: ``people`` (per frame, the people a pose model found: the patient is
        selected among them), ``pose`` (a pose function to find them) or ``patient`` (N, 18, 3): the
        patient's keypoints already (simulator ground truth, with or without noise).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got shape {frames.shape}")
        n, h, w = frames.shape[:3]
        times = np.asarray(t, dtype=np.float64)
        if times.shape != (n,):
            raise ValueError(f"t must hold one time per frame ({n}), got shape {times.shape}")
        if sum(x is not None for x in (people, patient, pose)) != 1:
            raise ValueError("give exactly one of people, patient or pose")
        if self.size != (w, h):  # first frame, or the camera changed resolution: start over
            if self.size is not None:
                self.reset()
            self.size = (w, h)
        if pose is not None:
            people = pose(frames)
        if patient is not None:
            k18 = np.asarray(patient, dtype=np.float32)
            if k18.shape != (n, POSE_JOINTS, 3):
                raise ValueError(f"patient keypoints must be ({n}, {POSE_JOINTS}, 3), got {k18.shape}")
            found = (k18[..., 2] > 0).any(-1)
        else:
            assert people is not None
            if len(people) != n:
                raise ValueError(f"pose estimator returned {len(people)} results for {n} frames")
            k18, found = self._select(people, times)
        if self.redact is not None:
            frames = self.redact(frames, k18, people)
        patches = _as_uint8(self.patch_fn(frames, k18))
        valid = found & (k18[..., 2] > 0).any(-1)  # no patient in view: the clip records a hole
        clips = []
        for r in range(n):
            clip = self.assembler.push(k18[r], patches[r] if valid[r] else None, float(times[r]))
            if clip is not None:
                clips.append(clip)
        if n:
            self.last_keypoints = k18[-1]
        return Posed(k18, found, clips)

    def _select(self, people: Sequence[Sequence[np.ndarray]], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ward.vision.patient import PatientSelector  # noqa: PLC0415

        if self.selector is None:
            self.selector = PatientSelector(self.bed_roi, frame_size=self.size if self.bed_roi is not None else None)
        k18 = np.zeros((len(people), POSE_JOINTS, 3), np.float32)
        found = np.zeros(len(people), bool)
        for r, ppl in enumerate(people):  # the selector is sequential by design (tracking)
            k18[r] = self.selector.update(ppl, float(times[r]))
            found[r] = bool(self.selector.found or self.selector.has_identity)
        return k18, found

    def vsvig_inputs(self, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
        """What VSViG scores: patches (30, 15, 3, 32, 32) uint8 and keypoints (30, 15, 3) float32
        normalised to the frame (``ward.vision.patches.normalise_keypoints``)."""
        if self.size is None:
            raise ValueError("no frame pushed yet: the frame size is unknown")
        w, h = self.size
        return clip.patches, np.asarray(self.norm_fn(clip.keypoints, (h, w)), dtype=np.float32)


class ClipScorer:
    """Scores clips with a local VSViG in batches of ``batch`` clips, in the order they were added
    (the last batch may be smaller); only one batch of clips is held at a time."""

    def __init__(self, score: ScoreFn, batch: int = 64) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1 (got {batch})")
        self.score = score
        self.batch = batch
        self._patches: list[np.ndarray] = []
        self._kpts: list[np.ndarray] = []
        self._out: list[np.ndarray] = []

    def add(self, inputs: tuple[np.ndarray, np.ndarray]) -> None:
        """One clip's :meth:`BedPipeline.vsvig_inputs`."""
        self._patches.append(inputs[0])
        self._kpts.append(inputs[1])
        if len(self._patches) >= self.batch:
            self._run()

    def _run(self) -> None:
        import torch  # noqa: PLC0415

        if self._patches:
            p = torch.from_numpy(np.stack(self._patches))
            k = torch.from_numpy(np.stack(self._kpts))
            self._out.append(np.asarray(self.score(p, k), dtype=np.float32).reshape(-1))
            self._patches, self._kpts = [], []

    def finish(self) -> np.ndarray:
        """Probabilities of every clip added so far, (n_clips,) float32."""
        self._run()
        out = np.concatenate(self._out) if self._out else np.zeros(0, np.float32)
        self._out = []
        return out
