"""Build VSViG training clips from videos plus onset annotations (or simulator output).

Output (contract read by training): a directory with manifest.json and shards shard_XXXX.npz. Each
shard holds clips of one split: patches uint8 (N, 30, 15, 3, 32, 32), kpts float32 (N, 30, 15, 3)
(normalise_keypoints convention), label float32 (N,) (target at the clip's last frame, see
ward.sim.labels), t_end float32 (N,) (time of the clip's last frame in its video, s), video (N,) str,
patient (N,) str, seizure_type (N,) str ("none" outside seizures). Frames are sampled at 6 fps and a
clip starts every `stride_s` seconds. Patients, never clips, are split into train/val/test.

Privacy: frames of recorded videos (real patients) are face-blurred (``ward.vision.privacy.blur_faces_clip``:
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from ward.core.clip import CLIP_FRAMES, CLIP_STRIDE_S, MODEL_FPS, stride_frames
from ward.core.keypoints import VSVIG_15
from ward.dataset.annotations import Annotation, load_annotations
from ward.pipeline import BedPipeline, NormFn, PatchFn, PoseFn
from ward.vision.privacy import blur_faces_clip, face_boxes
from ward.sim.labels import LABEL_FORMULA, target

BedRoi = tuple[float, float, float, float]
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


def clips_from_video(item: VideoItem, pose_fn: PoseFn | None = None, stride_s: float = CLIP_STRIDE_S,
                     block: int = 32, blur: BlurCounts | None = None, *, bed_roi: BedRoi | None = None,
                     patch_fn: PatchFn | None = None, norm_fn: NormFn | None = None) -> Iterator[dict[str, object]]:
    """Yield clips of one video through the bed pipeline (``ward.pipeline``, as in the ward):
    dict(patches (30,15,3,32,32) uint8, kpts (30,15,3) f32, label, t_end, seizure_type).

    ``pose_fn``: a pose estimator (frames -> people per frame); the pipeline selects the patient
    (in ``bed_roi`` when given). None: the simulator's ground-truth keypoints. ``blur``: face-blur
    each frame (after pose, before patches; counted there), the other people found by pose too.
    """
    cap = cv2.VideoCapture(str(item.path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    step = fps / MODEL_FPS
    cam = None
    if pose_fn is None:
        if item.scenario is None:
            raise ValueError(f"{item.path}: ground-truth keypoints need simulator output; give a pose estimator")
        from ward.sim.render import SimCamera

        cam = SimCamera(item.scenario)  # type: ignore[arg-type]

    def redact(frames: np.ndarray, k18: np.ndarray, people: Sequence | None) -> np.ndarray:
        frames = blur_faces_clip(frames, k18, people)
        blur.add(k18, frames.shape[1:3])  # type: ignore[union-attr]
        return frames

    # one pipeline per video: a new patient track, times from 0
    pipeline = BedPipeline(bed_roi, stride_frames=stride_frames(stride_s), patch_fn=patch_fn, norm_fn=norm_fn,
                           redact=redact if blur is not None else None)

    def process(batch):
        idx = np.array([i for i, _ in batch])
        frames = np.stack([f for _, f in batch])
        t = idx / fps
        if cam is not None:
            posed = pipeline.push(frames, t, patient=np.stack([cam.keypoints(int(i)) for i in idx]))
        else:
            posed = pipeline.push(frames, t, pose=pose_fn)
        for clip in posed.clips:
            patches, kpts = pipeline.vsvig_inputs(clip)
            t_end = clip.t_end
            st = "none"
            for s in item.seizures:
                if s.eeg_onset is not None and s.eeg_onset <= t_end < s.end:  # type: ignore[operator]
                    st = s.seizure_type
            yield {"patches": patches, "kpts": kpts,
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


def build_dataset(items: Sequence[VideoItem], out_dir: str | Path, *, pose_fn: PoseFn | None = None,
                  bed_roi: BedRoi | None = None, patch_fn: PatchFn | None = None, norm_fn: NormFn | None = None,
                  stride_s: float = CLIP_STRIDE_S,
                  shard_size: int = 64, seed: int = 0, source: str = "", face_blur: bool = True,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Write shards + manifest.json to out_dir; return the manifest path.

    ``face_blur``: blur faces in recorded videos' frames before cutting patches (default; see the
    module docstring). Off, the shards hold patients' unblurred faces: a warning is logged.
    ``pose_fn``: a pose estimator (frames -> people per frame; None: ground-truth keypoints of
    simulator output), the patient selected in ``bed_roi`` (normalised; None: the most complete person).
    ``patch_fn``/``norm_fn`` replace the real patch extractor/normaliser (tests).
    """
    if not items:
        raise ValueError("no videos to build a dataset from")
    n_recorded = sum(it.scenario is None for it in items)
    if not face_blur and n_recorded:
        log.warning("face blur is OFF: patches of %d recorded video(s) keep patients' faces unblurred", n_recorded)
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
        for clip in clips_from_video(it, pose_fn, stride_s, blur=blur, bed_roi=bed_roi, patch_fn=patch_fn,
                                     norm_fn=norm_fn):
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
        "format": "ward.clips/1", "clip_length": CLIP_FRAMES, "fps": int(MODEL_FPS), "joint_layout": list(VSVIG_15),
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
