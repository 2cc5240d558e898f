"""Build VSViG training clips from videos plus onset annotations (or simulator output).

Output (contract read by training): a directory with manifest.json and shards shard_XXXX.npz. Each
shard holds clips of one split: patches uint8 (N, 30, 15, 3, 32, 32), kpts float32 (N, 30, 15, 3)
(normalise_keypoints convention), label float32 (N,) (target at the clip's last frame, see
ward.sim.labels), t_end float32 (N,) (time of the clip's last frame in its video, s), video (N,) str,
patient (N,) str, seizure_type (N,) str ("none" outside seizures). Frames are sampled at 6 fps and a
clip starts every `stride_s` seconds. Patients, never clips, are split into train/val/test.

Privacy: frames of recorded videos (real patients) are face-blurred (``ward.privacy.blur_faces_clip``:
the patient's face box from its keypoints, other detected people's too, the whole frame when the
patient's head is not found) AFTER pose estimation and BEFORE the patches are cut, so the stored
head-joint patches (nose, eyes) never hold a recognisable face. ``face_blur=False`` (CLI
``--no-face-blur``) keeps raw patches, e.g. for a research dataset under its own ethics approval;
the manifest records which (``face_blur``). Simulator renders show synthetic people and are never
blurred (``face_blur_simulated: false``). See docs/privacy.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from ward.dataset.annotations import Annotation, load_annotations
from ward.keypoints import VSVIG_15
from ward.privacy import blur_faces_clip, face_boxes
from ward.sim.labels import CLIP_FPS, CLIP_FRAMES, LABEL_FORMULA, target

PatchFn = Callable[[np.ndarray, np.ndarray], np.ndarray]      # (N,H,W,3) uint8, (N,18,3) -> (N,15,3,32,32)
NormFn = Callable[[np.ndarray, tuple[int, int]], np.ndarray]  # (N,18,3), (H, W) -> (N,15,3)
PoseFn = Callable[[np.ndarray], np.ndarray]                   # (N,H,W,3) uint8 -> (N,18,3)
VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov")
log = logging.getLogger("ward.dataset")


@dataclass
class VideoItem:
    """One video with its seizures; `scenario` is set for simulator output (ground-truth keypoints)."""

    path: Path
    patient: str
    seizures: list[Annotation] = field(default_factory=list)
    scenario: object | None = None

    @property
    def name(self) -> str:
        return self.path.name


def collect_sim(dirs: Sequence[str | Path]) -> list[VideoItem]:
    """Items from `ward sim render` output directories (video.mp4 + groundtruth.json each)."""
    from ward.sim.scenario import Scenario

    items = []
    for d in dirs:
        d = Path(d)
        gt = d / "groundtruth.json"
        if not gt.is_file():
            raise ValueError(f"{d}: no groundtruth.json (not a `ward sim render` output directory)")
        data = json.loads(gt.read_text())
        sc = Scenario.model_validate(data["scenario"])
        video = d / "video.mp4"
        if not video.is_file():
            raise ValueError(f"{d}: no video.mp4 (render without --no-video)")
        anns = [Annotation(f"{d.name}/{video.name}", s.eeg_onset_s, s.clinical_onset_s, s.end_s, sc.patient_id or d.name,
                           s.type) for s in sc.seizures]
        items.append(VideoItem(video, sc.patient_id or d.name, anns, sc))
    return items


def collect_annotated(video_dir: str | Path, table: str | Path) -> list[VideoItem]:
    """Items from a folder of videos and an annotation table (CSV/XLSX)."""
    video_dir = Path(video_dir)
    files = sorted(p for p in video_dir.rglob("*") if p.suffix.lower() in VIDEO_EXT)
    if not files:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXT)}) under {video_dir}")
    anns = load_annotations(table, [str(p.relative_to(video_dir)) for p in files])
    by_key = {}
    for p in files:
        for key in (str(p.relative_to(video_dir)), p.name, p.stem):
            by_key.setdefault(key, p)
    items: dict[Path, VideoItem] = {}
    for a in anns:
        p = by_key.get(a.video) or by_key[Path(a.video).stem]
        it = items.setdefault(p, VideoItem(p, a.patient_id))
        if it.patient != a.patient_id:
            raise ValueError(f"video {a.video} is annotated with two patient ids ({it.patient}, {a.patient_id})")
        if a.has_seizure:
            it.seizures.append(a)
    return list(items.values())


def split_patients(patients: Sequence[str], seed: int = 0,
                   fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, str]:
    """Assign every patient to train/val/test (deterministic by seed); with >= 3 patients no split is empty."""
    ps = sorted(set(patients))
    if not ps:
        raise ValueError("no patients to split")
    order = [ps[i] for i in np.random.default_rng(seed).permutation(len(ps))]
    n = len(order)
    if n >= 3:
        n_train = min(max(1, round(fractions[0] * n)), n - 2)
        rest = n - n_train
        n_val = round(rest * fractions[1] / max(fractions[1] + fractions[2], 1e-9) - 1e-9)
        n_val = min(max(1, n_val), rest - 1)
        n_test = rest - n_val
    else:   # one or two patients: train (and test)
        n_train, n_val, n_test = 1, 0, n - 1
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(order, names))


@dataclass
class BlurCounts:
    """Sampled frames of recorded videos whose patient face box was anonymised, or the whole frame
    (no confident head joint of the patient: the face could not be located)."""

    face: int = 0
    whole_frame: int = 0

    def add(self, k18: np.ndarray, frame_hw: tuple[int, int]) -> None:
        whole = int((face_boxes(k18, frame_hw)[:, 0] < 0).sum())
        self.whole_frame += whole
        self.face += len(k18) - whole


def _sampled_frames(path: Path, step_frames: float) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        i, k = 0, 0
        nxt = 0
        while True:
            if not cap.grab():
                break
            if i == nxt:
                ok, img = cap.retrieve()
                if not ok:
                    break
                yield i, img
                k += 1
                nxt = int(round(k * step_frames))
            i += 1
    finally:
        cap.release()


def clips_from_video(item: VideoItem, patch_fn: PatchFn, norm_fn: NormFn, pose_fn: PoseFn | None = None,
                     stride_s: float = 1.0, block: int = 32,
                     blur: BlurCounts | None = None) -> Iterator[dict[str, object]]:
    """Yield clips of one video: dict(patches (30,15,3,32,32) uint8, kpts (30,15,3) f32, label, t_end, seizure_type).

    ``blur``: face-blur each frame (after pose, before patches; counted there); other people are
    taken from ``pose_fn.last_people`` when the pose function keeps them (``PoseTracker`` does).
    """
    cap = cv2.VideoCapture(str(item.path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    step = fps / CLIP_FPS
    stride = max(1, int(round(stride_s * CLIP_FPS)))
    cam = None
    if pose_fn is not None and callable(getattr(pose_fn, "reset", None)):
        pose_fn.reset()  # type: ignore[attr-defined]  # a new video: new patient track
    if pose_fn is None:
        if item.scenario is None:
            raise ValueError(f"{item.path}: ground-truth keypoints need simulator output; give a pose estimator")
        from ward.sim.render import SimCamera

        cam = SimCamera(item.scenario)  # type: ignore[arg-type]
    ring: deque = deque(maxlen=CLIP_FRAMES)
    n_seen = 0

    def process(batch):
        nonlocal n_seen
        idx = np.array([i for i, _ in batch])
        frames = np.stack([f for _, f in batch])
        k18 = np.stack([cam.keypoints(int(i)) for i in idx]) if cam is not None else pose_fn(frames)  # type: ignore[misc]
        if blur is not None:
            frames = blur_faces_clip(frames, k18, getattr(pose_fn, "last_people", None))
            blur.add(k18, frames.shape[1:3])
        patches = np.clip(np.rint(np.asarray(patch_fn(frames, k18))), 0, 255).astype(np.uint8)
        k15 = np.asarray(norm_fn(k18, frames.shape[1:3]), dtype=np.float32)
        for r, i in enumerate(idx):
            ring.append((i / fps, patches[r], k15[r]))
            n_seen += 1
            if len(ring) == CLIP_FRAMES and (n_seen - CLIP_FRAMES) % stride == 0:
                t_end = ring[-1][0]
                st = "none"
                for s in item.seizures:
                    if s.eeg_onset is not None and s.eeg_onset <= t_end < s.end:  # type: ignore[operator]
                        st = s.seizure_type
                yield {"patches": np.stack([x[1] for x in ring]), "kpts": np.stack([x[2] for x in ring]),
                       "label": float(target(t_end, [s for s in item.seizures if s.has_seizure])),
                       "t_end": float(t_end), "seizure_type": st}

    batch = []
    for i, img in _sampled_frames(item.path, step):
        batch.append((i, img))
        if len(batch) == block:
            yield from process(batch)
            batch = []
    if batch:
        yield from process(batch)


class PoseTracker:
    """PoseFn for the builder's pose path: PoseEstimator (people per frame) + PatientSelector (one patient).

    The builder calls it block by block through one video, in frame order; ``reset()`` starts a new
    video (fresh selector, time 0). Frames are assumed to be sampled at ``fps`` (the builder's 6 fps).
    ``estimator``: callable (N, H, W, 3) uint8 -> list (per frame) of lists of (18, 3) people, e.g.
    ``ward.vision.pose.PoseEstimator``. ``bed_roi``: normalised (x0, y0, x1, y1) or None.
    """

    def __init__(self, estimator: Callable[[np.ndarray], list], fps: float = CLIP_FPS,
                 bed_roi: tuple[float, float, float, float] | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.estimator = estimator
        self.fps = float(fps)
        self.bed_roi = bed_roi
        self.reset()

    def reset(self) -> None:
        self._selector = None
        self._n = 0
        self.last_people: list = []  # the estimator's people per frame of the last call (face blur)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        from ward.vision.patient import PatientSelector

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got shape {frames.shape}")
        if self._selector is None:
            h, w = frames.shape[1:3]
            self._selector = PatientSelector(self.bed_roi, frame_size=(w, h) if self.bed_roi else None)
        people = self.estimator(frames)
        if len(people) != len(frames):
            raise ValueError(f"pose estimator returned {len(people)} results for {len(frames)} frames")
        self.last_people = list(people)
        out = np.zeros((len(frames), 18, 3), np.float32)
        for r, ppl in enumerate(people):  # the selector is sequential by design (tracking)
            out[r] = self._selector.update(ppl, self._n / self.fps)
            self._n += 1
        return out


def _default_fns() -> tuple[PatchFn, NormFn]:
    from ward.vision.patches import extract_patches, normalise_keypoints  # written by the vision concern

    return extract_patches, normalise_keypoints


def build_dataset(items: Sequence[VideoItem], out_dir: str | Path, *, pose_fn: PoseFn | None = None,
                  patch_fn: PatchFn | None = None, norm_fn: NormFn | None = None, stride_s: float = 1.0,
                  shard_size: int = 64, seed: int = 0, source: str = "", face_blur: bool = True,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Write shards + manifest.json to out_dir; return the manifest path.

    ``face_blur``: blur faces in recorded videos' frames before cutting patches (default; see the
    module docstring). Off, the shards hold patients' unblurred faces: a warning is logged.
    """
    if not items:
        raise ValueError("no videos to build a dataset from")
    n_recorded = sum(it.scenario is None for it in items)
    if not face_blur and n_recorded:
        log.warning("face blur is OFF: patches of %d recorded video(s) keep patients' faces unblurred", n_recorded)
    if patch_fn is None or norm_fn is None:
        p, nf = _default_fns()
        patch_fn, norm_fn = patch_fn or p, norm_fn or nf
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = split_patients([it.patient for it in items], seed)
    buffers: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    shards: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    counter = [0]

    def flush(split: str) -> None:
        buf = buffers[split]
        if not buf:
            return
        name = f"shard_{counter[0]:04d}.npz"
        counter[0] += 1
        np.savez_compressed(
            out / name, patches=np.stack([c["patches"] for c in buf]).astype(np.uint8),
            kpts=np.stack([c["kpts"] for c in buf]).astype(np.float32),
            label=np.array([c["label"] for c in buf], np.float32), t_end=np.array([c["t_end"] for c in buf], np.float32),
            video=np.array([c["video"] for c in buf], dtype=str), patient=np.array([c["patient"] for c in buf], dtype=str),
            seizure_type=np.array([c["seizure_type"] for c in buf], dtype=str))
        shards[split].append(name)
        buffers[split] = []

    n_clips = {"train": 0, "val": 0, "test": 0}
    blurred = BlurCounts()
    for it in items:
        split = splits[it.patient]
        vname = str(it.path.parent.name + "/" + it.path.name) if it.scenario is not None else it.path.name
        blur = blurred if face_blur and it.scenario is None else None
        for clip in clips_from_video(it, patch_fn, norm_fn, pose_fn, stride_s, blur=blur):
            clip["video"], clip["patient"] = vname, it.patient
            buffers[split].append(clip)
            n_clips[split] += 1
            if len(buffers[split]) >= shard_size:
                flush(split)
        if progress:
            progress(f"{vname}: {split}")
    for s in buffers:
        flush(s)
    manifest = {
        "format": "ward.clips/1", "clip_length": CLIP_FRAMES, "fps": int(CLIP_FPS), "joint_layout": list(VSVIG_15),
        "splits": shards, "patients": splits, "label_formula": LABEL_FORMULA,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": source,
        "keypoints": "ground_truth" if pose_fn is None else "pose_estimator", "stride_s": stride_s,
        "n_clips": n_clips, "videos": {"recorded": n_recorded, "simulated": len(items) - n_recorded},
        "face_blur": face_blur, "face_blur_simulated": False,
        "face_blur_frames": {"face": blurred.face, "whole_frame": blurred.whole_frame},
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path
