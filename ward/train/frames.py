"""Training windows over a ``ward.frames/1`` dataset (``ward dataset generate``), memory-mapped.

A clip is the 30 frames ending at a ``clip_end`` frame of one scenario; nothing is copied until a
batch is gathered (:meth:`FrameSet.take`), so a dataset far larger than RAM trains from disk and the
page cache.

Sampling (:func:`frames_epoch_indices`): ``pos_fraction`` of each epoch's draws are clips with a label
> 0, split equally over the seizure types present (types balanced whatever their clip counts); within
a type a clip whose last frame is in the pre-clinical phase (EEG onset -> clinical onset) is drawn
``preclinical_weight`` times as often as the others. The rest are drawn from the label-0 clips
(seizure-free patients' confounders, and the calm before and after seizures); a label-0 clip is *hard*
(:attr:`FrameSet.hard`) when its last frame lies in a behaviour (turning over, scratching, ...) or a
scene event (caregiver, lights off, camera shake; not stream-long compression), or less than
``HARD_AFTER_S`` seconds after one ended, and is drawn ``hard_negative_weight`` times as often as a calm
one. The after-window is there because the false alarms of the held-out benchmark started within 30 s
after a turning-over: the new posture, not the movement, is what the model mistook. ``hard_kinds``
narrows the hard set to some behaviour or event kinds (e.g. turning over and sitting up, which hold
about 10 % of the label-0 clips but cause most of the validation false alarms, while lights off alone
holds about 40 %).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ward.core.clip import CLIP_FRAMES
from ward.dataset.generate import FRAMES_FORMAT

MAPPED = ("patches", "kpts")
"""Arrays kept memory-mapped (one open file each); the small per-frame ones are read into memory."""

PRECLINICAL = 1
HARD_AFTER_S = 20.0
"""A label-0 clip ending this long after a behaviour or scene event still counts as a hard negative."""
HARD_EVENTS = ("caregiver", "lights_off", "camera_shake")
"""Scene events whose clips are hard negatives (compression spans the whole stream: not an event to learn)."""


def hard_kind_names() -> tuple[str, ...]:
    """Every kind ``hard_kinds`` may name: the simulator's behaviours and :data:`HARD_EVENTS`."""
    from ward.sim.behaviours import BEHAVIOURS

    return (*BEHAVIOURS, *HARD_EVENTS)


def check_hard_kinds(kinds: tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """``kinds`` as a tuple (None: every kind), or ValueError naming the unknown ones and the allowed ones."""
    if kinds is None:
        return None
    kinds = tuple(kinds)
    allowed = hard_kind_names()
    bad = [k for k in kinds if k not in allowed]
    if bad or not kinds:
        raise ValueError(f"hard-negative kinds {bad or '(none)'} unknown: choose among {', '.join(allowed)}")
    return kinds


def hard_negative_frames(meta: dict[str, Any], n_frames: int, after_s: float = HARD_AFTER_S,
                         kinds: tuple[str, ...] | None = None) -> np.ndarray:
    """Per frame: inside a behaviour or a scene event of :data:`HARD_EVENTS`, or < ``after_s`` after one;
    ``kinds`` keeps only spans of those kinds (None: all)."""
    fps = float(meta["fps"])
    t = np.arange(n_frames) / fps
    hard = np.zeros(n_frames, bool)
    spans = [*meta.get("behaviours", []), *(e for e in meta.get("events", []) if e["kind"] in HARD_EVENTS)]
    if kinds is not None:
        spans = [s for s in spans if s["kind"] in kinds]
    for s in spans:  # a handful of intervals per scenario
        hard |= (t >= s["start_s"]) & (t < s["start_s"] + s["duration_s"] + after_s)
    return hard


class FrameSet:
    """The clips (windows) of one split of a ward.frames/1 dataset."""

    def __init__(self, data_dir: str | Path, split: str, max_clips: int | None = None, seed: int = 0,
                 hard_kinds: tuple[str, ...] | None = None) -> None:
        hard_kinds = check_hard_kinds(hard_kinds)
        man = json.loads((Path(data_dir) / "manifest.json").read_text())
        if man.get("format") != FRAMES_FORMAT:
            raise ValueError(f"{data_dir}: format {man.get('format')!r}, expected {FRAMES_FORMAT!r}")
        if split not in man["scenarios"]:
            raise ValueError(f"{data_dir}: manifest has no split {split!r} (has {sorted(man['scenarios'])})")
        self.names = list(man["scenarios"][split])
        _allow_open_files(len(MAPPED) * len(self.names))
        self.arrays: list[dict[str, np.ndarray]] = []
        scen, ends, types, hard = [], [], [], []
        for i, name in enumerate(self.names):
            d = Path(data_dir) / "scenarios" / name
            a = {k: np.load(d / f"{k}.npy", mmap_mode="r" if k in MAPPED else None)
                 for k in (*MAPPED, "label", "phase", "clip_end")}
            meta = json.loads((d / "meta.json").read_text())
            self.arrays.append(a)
            e = np.flatnonzero(np.asarray(a["clip_end"]))
            e = e[e >= CLIP_FRAMES - 1]
            scen.append(np.full(len(e), i, np.int32))
            ends.append(e.astype(np.int32))
            types.append(np.full(len(e), meta["seizure_type"], dtype=object))
            hard.append(hard_negative_frames(meta, len(a["label"]), kinds=hard_kinds)[e])
        self.scen = np.concatenate(scen) if scen else np.zeros(0, np.int32)
        self.end = np.concatenate(ends) if ends else np.zeros(0, np.int32)
        self.seizure_type = np.concatenate(types).astype(str) if types else np.zeros(0, str)
        self.label = np.array([self.arrays[s]["label"][e] for s, e in zip(self.scen, self.end)], np.float32)
        self.phase = np.array([self.arrays[s]["phase"][e] for s, e in zip(self.scen, self.end)], np.int8)
        self.hard = (np.concatenate(hard) if hard else np.zeros(0, bool)) & (self.label <= 0)
        """Label-0 windows ending in or just after a behaviour or scene event (module docstring)."""
        if max_clips is not None and len(self) > max_clips:
            keep = np.sort(np.random.default_rng(seed).choice(len(self), max_clips, replace=False))
            for k in ("scen", "end", "seizure_type", "label", "phase", "hard"):
                setattr(self, k, getattr(self, k)[keep])

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """patches (B, 30, 15, 3, 32, 32) uint8, kpts (B, 30, 15, 3) f32, label (B,) of windows ``idx``."""
        idx = np.asarray(idx)
        p = np.empty((len(idx), CLIP_FRAMES, *self.arrays[0]["patches"].shape[1:]), np.uint8) if len(idx) else \
            np.zeros((0, CLIP_FRAMES, 15, 3, 32, 32), np.uint8)
        k = np.empty((len(idx), CLIP_FRAMES, 15, 3), np.float32)
        for r, j in enumerate(idx):
            a, e = self.arrays[self.scen[j]], int(self.end[j])
            p[r] = a["patches"][e - CLIP_FRAMES + 1:e + 1]
            k[r] = a["kpts"][e - CLIP_FRAMES + 1:e + 1]
        return p, k, self.label[idx]

    def describe(self) -> dict[str, Any]:
        return {"clips": len(self), "scenarios": len(self.names), "positive": int((self.label > 0).sum()),
                "preclinical": int((self.phase == PRECLINICAL).sum()), "hard_negative": int(self.hard.sum())}


def _allow_open_files(n: int) -> None:
    """Each memory-mapped array holds a file descriptor: raise the soft limit (up to the hard one)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 512
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ValueError(f"this split memory-maps {n} files but the open-file limit is {hard} "
                             f"(ulimit -Hn): raise it (e.g. `ulimit -n {need}` as allowed, or in limits.conf)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def frames_epoch_indices(fs: FrameSet, n: int, pos_fraction: float | None, preclinical_weight: float,
                         rng: np.random.Generator, hard_negative_weight: float = 1.0) -> np.ndarray:
    """Window indices for one epoch (see the module docstring); ``pos_fraction=None``: a plain permutation."""
    for name, v in (("preclinical_weight", preclinical_weight), ("hard_negative_weight", hard_negative_weight)):
        if v <= 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    pos = fs.label > 0
    if pos_fraction is None or not pos.any() or pos.all():
        return rng.permutation(len(fs))[:n] if n <= len(fs) else rng.integers(0, len(fs), n)
    n_pos = int(round(n * pos_fraction))
    pos_types = sorted(set(fs.seizure_type[pos]))
    w = np.zeros(len(fs))
    for t in pos_types:
        m = pos & (fs.seizure_type == t)
        wt = np.where(fs.phase[m] == PRECLINICAL, preclinical_weight, 1.0)
        w[m] = wt / wt.sum() / len(pos_types)
    neg = np.flatnonzero(~pos)
    if hard_negative_weight == 1.0:  # the draws of runs made before hard negatives were weighted, unchanged
        neg_draw = rng.choice(neg, n - n_pos, replace=True)
    else:
        wn = np.where(fs.hard[neg], hard_negative_weight, 1.0)
        neg_draw = rng.choice(neg, n - n_pos, replace=True, p=wn / wn.sum())
    out = np.concatenate([rng.choice(len(fs), n_pos, replace=True, p=w / w.sum()), neg_draw])
    return rng.permutation(out)
