"""`ward dataset generate`: VSViG training data rendered in-process from training seeds, format ``ward.frames/1``.

Every scenario is rendered by the simulator (``ward.sim.render.SimCamera``, 640x360 at 6 fps) and goes
through one :class:`ward.pipeline.BedPipeline` (the code the ward runs), with the pose model finding
the patient the patches are cut at, or, for a ``gt_fraction`` of the scenarios (drawn per seed, recorded
in its meta.json), the simulator's ground-truth keypoints plus pose noise
(:func:`ward.sim.pose_noise.noisy_keypoints`) as augmentation.

The plan (:func:`plan_scenarios`): patient ``i`` has seed ``seed_start + i`` (all inside the VSViG
training range 1000-2999). A ``seizure_share`` of the patients have one seizure, the five types in
turn (balanced), EEG onset 8-30 s into a ``seizure_seconds`` scenario, so the clips cover the whole
pre-clinical phase and the start of the clinical one (and, for the short types, the end and post-ictal
stillness). The others are seizure-free ``free_seconds`` scenarios of dense hard negatives: one forced
behaviour (the eight kinds in turn) and one forced scene event (the four in turn), plus random
behaviours at ``hard_negative_rate`` per minute.

On disk (``ward.frames/1``), per frame rather than per clip (clips overlap 5x at a 1 s stride)::

    DIR/manifest.json                     rewritten from the scenario dirs after every run
    DIR/scenarios/s01234/patches.npy      (F, 15, 3, 32, 32) uint8   (np.load(mmap_mode="r"))
                        kpts.npy         (F, 15, 3) float32 (BedPipeline.vsvig_inputs' normalisation)
                        label.npy        (F,) float32 soft target at the frame time (ward.sim.labels)
                        phase.npy        (F,) int8 0 none / 1 pre-clinical / 2 clinical / 3 post-ictal
                        clip_end.npy     (F,) bool: the pipeline emitted a clip ending at this frame
                        behaviour.npy    (F,) int8 index into meta["behaviour_names"] (0: none)
                        meta.json        seed, patient, split, seizure, behaviours/events, keypoint source

A clip is the 30 frames ending at a ``clip_end`` frame: exactly the clip the pipeline emitted.
A scenario directory is written under ``.tmp-<name>-<pid>`` and renamed when complete, so a re-run
skips complete scenarios and redoes an interrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ward.core.clip import CLIP_FRAMES, MODEL_FPS
from ward.core.keypoints import VSVIG_15
from ward.dataset.build import split_patients
from ward.pipeline import BedPipeline
from ward.sim.behaviours import BEHAVIOURS, SCENE_EVENTS
from ward.sim.labels import LABEL_FORMULA
from ward.sim.pose_noise import PoseNoise, noisy_keypoints
from ward.sim.scenario import legs_uncovered, with_legs_uncovered
from ward.sim.seizures import PHASES, SEIZURE_TYPES

FRAMES_FORMAT = "ward.frames/1"
TRAIN_SEED_RANGE = (1000, 2999)
"""VSViG training seeds (inclusive); 3000-3999 are pose frames, 800000+ validation, 900000+ evaluation."""
ARRAYS = ("patches", "kpts", "label", "phase", "clip_end", "behaviour")
BEHAVIOUR_NAMES = ("none", *BEHAVIOURS)


@dataclass
class GenerateConfig:
    """What `ward dataset generate` makes (stored in the manifest)."""

    out: str
    patients: int = 1000
    seed_start: int = 1000
    seizure_seconds: float = 90.0
    free_seconds: float = 60.0
    seizure_share: float = 0.6
    hard_negative_rate: float = 3.0
    """Random behaviours per minute in seizure-free scenarios (the simulator's default is 1.2)."""
    gt_fraction: float = 0.2
    uncovered_share: float = 0.3
    """Share of patients whose blanket is folded at the foot end (hips and legs in view); the
    simulator's default appearance always covers them (as every evaluation scenario does)."""
    pose: str = "models/ward-pose-small.pt"
    backend: str = "auto"
    precision: str = "auto"
    pose_height: int = 256
    width: int = 640
    height: int = 360
    chunk_frames: int = 120
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    threads: int | None = None
    noise: PoseNoise = field(default_factory=PoseNoise)
    command: str = field(default_factory=lambda: " ".join(sys.argv))


@dataclass(frozen=True)
class PlannedScenario:
    index: int
    seed: int
    patient: str
    seizure_type: str  # "none": seizure-free
    forced_behaviour: str | None
    forced_event: str | None
    gt: bool           # ground truth + pose noise instead of the pose model
    uncovered: bool = False  # blanket folded at the foot end: legs in view

    @property
    def name(self) -> str:
        return f"s{self.seed:05d}"


def plan_scenarios(cfg: GenerateConfig) -> list[PlannedScenario]:
    """The whole dataset's scenarios, deterministic from the config (independent of shards and runs)."""
    lo, hi = TRAIN_SEED_RANGE
    if cfg.patients < 1:
        raise ValueError(f"--patients must be >= 1, got {cfg.patients}")
    last = cfg.seed_start + cfg.patients - 1
    if cfg.seed_start < lo or last > hi:
        raise ValueError(f"seeds {cfg.seed_start}-{last} leave the VSViG training range {lo}-{hi} (3000-3999 are "
                         f"pose frames, 800000+ validation, 900000+ evaluation): lower --patients or move --seed-start")
    if not 0 <= cfg.gt_fraction <= 1 or not 0 <= cfg.seizure_share <= 1 or not 0 <= cfg.uncovered_share <= 1:
        raise ValueError(f"--gt-fraction, --seizure-share and --uncovered-share must be in [0, 1], got "
                         f"{cfg.gt_fraction}, {cfg.seizure_share}, {cfg.uncovered_share}")
    if cfg.seizure_seconds < 60 or cfg.free_seconds < 20:
        raise ValueError("seizure scenarios need >= 60 s (EEG onset at 8-30 s plus the onset gap) and "
                         "seizure-free ones >= 20 s")
    n_seiz = int(round(cfg.patients * cfg.seizure_share))
    out = []
    for i in range(cfg.patients):
        seed = cfg.seed_start + i
        gt = bool(np.random.default_rng([seed, 61]).random() < cfg.gt_fraction)
        unc = legs_uncovered(seed, cfg.uncovered_share)
        # seizure and seizure-free patients interleaved, so any prefix or shard keeps the mix
        is_seiz = (i * n_seiz) // cfg.patients != ((i + 1) * n_seiz) // cfg.patients
        if is_seiz:
            k = ((i + 1) * n_seiz) // cfg.patients - 1
            out.append(PlannedScenario(i, seed, f"sim{seed:05d}", SEIZURE_TYPES[k % len(SEIZURE_TYPES)], None, None, gt,
                                       unc))
        else:
            k = i - ((i + 1) * n_seiz) // cfg.patients
            out.append(PlannedScenario(i, seed, f"sim{seed:05d}", "none", BEHAVIOURS[k % len(BEHAVIOURS)],
                                       SCENE_EVENTS[k % len(SCENE_EVENTS)], gt, unc))
    return out


def make_scenario(p: PlannedScenario, cfg: GenerateConfig) -> Any:
    """The simulator scenario of one planned patient (blanket folded at the foot end when ``p.uncovered``)."""
    sc = _make_scenario(p, cfg)
    return with_legs_uncovered(sc, p.seed) if p.uncovered else sc


def _make_scenario(p: PlannedScenario, cfg: GenerateConfig) -> Any:
    from ward.sim.behaviours import DURATION_RANGE
    from ward.sim.scenario import BehaviourSpec, EventSpec, SeizureSpec, random_scenario

    common = dict(fps=MODEL_FPS, width=cfg.width, height=cfg.height)
    rng = np.random.default_rng([p.seed, 62])
    if p.seizure_type != "none":
        eeg = float(rng.uniform(8, 30))
        return random_scenario(p.seed, cfg.seizure_seconds, seizures=[SeizureSpec(type=p.seizure_type, eeg_onset_s=eeg)],
                               **common)
    dur = cfg.free_seconds
    beh, ev = [], []
    if p.forced_behaviour:
        lo, hi = DURATION_RANGE[p.forced_behaviour]
        d = float(min(rng.uniform(lo, hi), dur - 8))
        beh.append(BehaviourSpec(kind=p.forced_behaviour, start_s=round(float(rng.uniform(3, dur - d - 3)), 2),
                                 duration_s=round(d, 2), intensity=round(float(rng.uniform(0.8, 1.3)), 3)))
    if p.forced_event:
        lo, hi = DURATION_RANGE[p.forced_event]
        d = float(min(rng.uniform(lo, hi), dur - 4))
        s0 = 0.0 if p.forced_event == "compression" else round(float(rng.uniform(2, dur - d - 2)), 2)
        ev.append(EventSpec(kind=p.forced_event, start_s=s0, duration_s=round(d, 2),
                            intensity=round(float(rng.uniform(0.6, 1.4)), 3)))
    return random_scenario(p.seed, dur, n_seizures=0, behaviours=beh, events=ev,
                           behaviour_rate_per_min=cfg.hard_negative_rate, **common)


def _bed_roi(k18: np.ndarray, width: int, height: int, margin: float = 0.15) -> tuple[float, float, float, float]:
    """Normalised bed region for patient selection: the patient's ground-truth extent widened by `margin`
    (what a ward configures per bed; the same rule as ``ward eval``'s full path)."""
    xy = k18[..., :2][k18[..., 2] > 0]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0.0, (x0 - mx) / width), max(0.0, (y0 - my) / height),
            min(1.0, (x1 + mx) / width), min(1.0, (y1 + my) / height))


def _intervals(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"kind": b.kind, "start_s": float(b.start_s), "duration_s": float(b.duration_s)} for b in items]


def render_scenario(p: PlannedScenario, cfg: GenerateConfig, pose: Any, split: str,
                    timings: dict[str, float] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One scenario through the bed pipeline -> (per-frame arrays, meta). ``timings`` accumulates the
    seconds spent rendering (``render_s``), in the pose model (``pose_s``) and in the rest of the
    pipeline (``pipeline_s``: patient selection, patches, clips)."""
    from ward.sim.render import SimCamera

    sc = make_scenario(p, cfg)
    cam = SimCamera(sc)
    n = cam.n_frames
    tr = cam.track()
    use_gt = p.gt or pose is None
    if use_gt:
        k18_all = noisy_keypoints(tr["kpts"], np.random.default_rng([p.seed, 63]), cfg.noise)
        pipeline = BedPipeline()
    else:
        pipeline = BedPipeline(_bed_roi(tr["kpts"], cam.width, cam.height))
    arr = {"patches": np.zeros((n, len(VSVIG_15), 3, 32, 32), np.uint8),
           "kpts": np.zeros((n, len(VSVIG_15), 3), np.float32),
           "label": np.asarray(tr["target"], np.float32),
           "phase": np.array([PHASES.index(str(x)) for x in tr["phase"]], np.int8),
           "clip_end": np.zeros(n, bool),
           "behaviour": np.array([BEHAVIOUR_NAMES.index(str(b)) if str(b) in BEHAVIOUR_NAMES else 0
                                  for b in tr["behaviour"]], np.int8)}
    buf = np.empty((min(n, cfg.chunk_frames), cam.height, cam.width, 3), np.uint8)
    n_clips = 0
    tm = timings if timings is not None else {}
    for key in ("render_s", "pose_s", "pipeline_s"):
        tm.setdefault(key, 0.0)

    def timed_pose(frames: np.ndarray) -> Any:
        t0 = time.perf_counter()
        people = pose(frames)
        tm["pose_s"] += time.perf_counter() - t0
        return people

    for a in range(0, n, cfg.chunk_frames):
        b = min(n, a + cfg.chunk_frames)
        frames = buf[:b - a]
        t0 = time.perf_counter()
        for r, i in enumerate(range(a, b)):
            frames[r] = cam.frame(i)[0]
        t1 = time.perf_counter()
        tm["render_s"] += t1 - t0
        pose_before = tm["pose_s"]
        t = np.arange(a, b) / MODEL_FPS
        posed = pipeline.push(frames, t, patient=k18_all[a:b]) if use_gt else pipeline.push(frames, t, pose=timed_pose)
        tm["pipeline_s"] += time.perf_counter() - t1 - (tm["pose_s"] - pose_before)
        for clip in posed.clips:
            patches, kpts = pipeline.vsvig_inputs(clip)
            idx = np.rint(clip.t * MODEL_FPS).astype(int)
            arr["patches"][idx] = patches
            arr["kpts"][idx] = kpts
            arr["clip_end"][idx[-1]] = True
            n_clips += 1
    ends = np.flatnonzero(arr["clip_end"]) / MODEL_FPS
    kinds: dict[str, int] = {}
    for item in [*sc.behaviours, *sc.events]:  # clips ending inside each behaviour / scene event
        c = int(((ends >= item.start_s) & (ends < item.start_s + item.duration_s)).sum())
        kinds[item.kind] = kinds.get(item.kind, 0) + c
    s = sc.seizures[0] if sc.seizures else None
    meta = {
        "format": FRAMES_FORMAT, "seed": p.seed, "patient": p.patient, "split": split, "frames": n,
        "clips": n_clips, "fps": MODEL_FPS, "duration_s": float(sc.duration_s), "width": cam.width, "height": cam.height,
        "seizure_type": p.seizure_type,
        "seizure": None if s is None else {"type": s.type, "eeg_onset_s": s.eeg_onset_s, "clinical_onset_s":
                                           s.clinical_onset_s, "end_s": s.end_s, "post_ictal_s": s.post_ictal_s,
                                           "signs": list(s.signs or [])},
        "clips_by_phase": {PHASES[k]: int((arr["phase"][arr["clip_end"]] == k).sum()) for k in range(len(PHASES))},
        "behaviours": _intervals(sc.behaviours), "events": _intervals(sc.events), "hard_negative_clips": kinds,
        "forced": {"behaviour": p.forced_behaviour, "event": p.forced_event},
        "legs_uncovered": p.uncovered, "blanket_top_m": float(sc.appearance.blanket_top),
        "keypoints": "ground_truth+noise" if use_gt else "pose_model",
        "pose_noise": asdict(cfg.noise) if use_gt else None,
        "behaviour_names": list(BEHAVIOUR_NAMES), "phase_names": list(PHASES),
    }
    return arr, meta


def write_scenario(root: Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write one scenario atomically: a tmp dir, then rename (a complete dir always has meta.json)."""
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k in ARRAYS:
        np.save(tmp / f"{k}.npy", arrays[k])
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=float))
    os.replace(tmp, final) if not final.exists() else shutil.rmtree(tmp)
    return final


def load_scenario_arrays(d: str | Path) -> dict[str, np.ndarray]:
    """A scenario dir's arrays, memory-mapped (read-only)."""
    return {k: np.load(Path(d) / f"{k}.npy", mmap_mode="r") for k in ARRAYS}


def is_complete(d: Path) -> bool:
    return (d / "meta.json").is_file() and all((d / f"{k}.npy").is_file() for k in ARRAYS)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _select(plan: list[PlannedScenario], shard: tuple[int, int]) -> list[PlannedScenario]:
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard must be K/N with 0 <= K < N, got {k}/{n}")
    return plan[k::n]


def _load_pose(cfg: GenerateConfig) -> Any:
    from ward.vision.pose import PoseEstimator

    if not Path(cfg.pose).is_file():
        raise ValueError(f"pose weights {cfg.pose} not found (give --pose, or --gt-fraction 1 for ground truth + noise)")
    return PoseEstimator.from_checkpoint(cfg.pose, height=cfg.pose_height, device="cpu", backend=cfg.backend,
                                         precision=cfg.precision, num_threads=cfg.threads)


def generate(cfg: GenerateConfig, shard: tuple[int, int] = (0, 1), *, log: Callable[[str], None] = print,
             pose: Any = None) -> dict[str, Any]:
    """Render this shard's missing scenarios, then (re)write the manifest; returns run statistics.

    ``pose``: a pose estimator (frames -> people per frame); None loads ``cfg.pose`` when any scenario
    of the shard needs it."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    plan = plan_scenarios(cfg)
    splits = split_patients([p.patient for p in plan], cfg.split_seed, cfg.split_fractions)
    root = Path(cfg.out) / "scenarios"
    root.mkdir(parents=True, exist_ok=True)
    mine = _select(plan, shard)
    todo = [p for p in mine if not is_complete(root / p.name)]
    for p in todo:  # leftovers of an interrupted run of this scenario
        for stale in root.glob(f".tmp-{p.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    engine = None
    if any(not p.gt for p in todo) and pose is None:
        pose = _load_pose(cfg)
    if pose is not None and getattr(pose, "engine", None) is not None:
        engine = asdict(pose.engine)
    log(f"shard {shard[0]}/{shard[1]}: {len(mine)} scenarios, {len(mine) - len(todo)} already complete, "
        f"{len(todo)} to render")
    if engine:
        log(f"pose engine: {engine}")
    t0, frames, clips = time.time(), 0, 0
    timings: dict[str, float] = {}
    by_source: dict[str, dict[str, float]] = {}
    for j, p in enumerate(todo):
        ts = time.time()
        arrays, meta = render_scenario(p, cfg, None if p.gt else pose, splits[p.patient], timings)
        src = by_source.setdefault(meta["keypoints"], {"scenarios": 0, "frames": 0, "clips": 0, "seconds": 0.0})
        src["scenarios"] += 1
        src["frames"] += meta["frames"]
        src["clips"] += meta["clips"]
        meta["pose_engine"] = None if p.gt else engine
        meta["pose_model"] = None if p.gt else str(cfg.pose)
        write_scenario(root, p.name, arrays, meta)
        src["seconds"] += time.time() - ts
        frames += meta["frames"]
        clips += meta["clips"]
        dt = time.time() - t0
        log(f"[{j + 1}/{len(todo)}] {p.name} {p.seizure_type} ({meta['keypoints']}): {meta['frames']} frames, "
            f"{meta['clips']} clips; {frames / dt:.1f} frames/s, {clips / dt:.1f} clips/s")
    seconds = time.time() - t0
    write_manifest(cfg, plan, splits)
    return {"scenarios": len(todo), "frames": frames, "clips": clips, "seconds": round(seconds, 2),
            "stage_seconds": {k: round(v, 2) for k, v in timings.items()}, "by_keypoints": by_source,
            "pose_engine": engine,
            "frames_per_s": frames / seconds if seconds > 0 else None,
            "clips_per_s": clips / seconds if seconds > 0 else None}


def write_manifest(cfg: GenerateConfig, plan: Sequence[PlannedScenario] | None = None,
                   splits: dict[str, str] | None = None) -> Path:
    """(Re)write DIR/manifest.json from the complete scenario dirs (any shard, any run)."""
    plan = list(plan) if plan is not None else plan_scenarios(cfg)
    if splits is None:
        splits = split_patients([p.patient for p in plan], cfg.split_seed, cfg.split_fractions)
    out = Path(cfg.out)
    root = out / "scenarios"
    names: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    counts: dict[str, Any] = {s: {"patients": 0, "frames": 0, "clips": 0, "clips_by_type": {},
                                  "clips_by_phase": {}, "clips_by_keypoints": {}} for s in names}
    hard: dict[str, int] = {k: 0 for k in (*BEHAVIOURS, *SCENE_EVENTS)}
    hard_scen: dict[str, int] = {k: 0 for k in hard}
    engines: set[str] = set()
    uncovered = 0
    for p in plan:
        d = root / p.name
        if not is_complete(d):
            continue
        meta = json.loads((d / "meta.json").read_text())
        c = counts[meta["split"]]
        names[meta["split"]].append(p.name)
        c["patients"] += 1
        uncovered += bool(meta.get("legs_uncovered"))
        c["frames"] += meta["frames"]
        c["clips"] += meta["clips"]
        c["clips_by_type"][meta["seizure_type"]] = c["clips_by_type"].get(meta["seizure_type"], 0) + meta["clips"]
        for ph, v in meta["clips_by_phase"].items():
            c["clips_by_phase"][ph] = c["clips_by_phase"].get(ph, 0) + v
        c["clips_by_keypoints"][meta["keypoints"]] = c["clips_by_keypoints"].get(meta["keypoints"], 0) + meta["clips"]
        for k, v in meta["hard_negative_clips"].items():
            hard[k] = hard.get(k, 0) + v
            hard_scen[k] = hard_scen.get(k, 0) + 1
        if meta.get("pose_engine"):
            engines.add(json.dumps(meta["pose_engine"], sort_keys=True))
    n_done = sum(len(v) for v in names.values())
    pose_path = Path(cfg.pose)
    man = {
        "format": FRAMES_FORMAT, "clip_length": CLIP_FRAMES, "fps": int(MODEL_FPS), "joint_layout": list(VSVIG_15),
        "stride_s": 1.0, "label_formula": LABEL_FORMULA, "phases": list(PHASES),
        "seeds": {"start": cfg.seed_start, "stop": cfg.seed_start + cfg.patients - 1, "range": list(TRAIN_SEED_RANGE)},
        "complete": n_done == len(plan), "planned_scenarios": len(plan), "scenarios": names,
        "patients": {p.patient: splits[p.patient] for p in plan},
        "counts": {**counts, "total": {"patients": n_done, "frames": sum(c["frames"] for c in counts.values()),
                                       "clips": sum(c["clips"] for c in counts.values())}},
        "hard_negative_clips": hard, "hard_negative_scenarios": hard_scen, "patients_legs_uncovered": uncovered,
        "pose_model": {"path": str(pose_path), "sha256": sha256_file(pose_path) if pose_path.is_file() else None,
                       "height": cfg.pose_height, "engines": [json.loads(e) for e in sorted(engines)]},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("command", "out")},
        "command": cfg.command, "keypoints": "pose_model + ground_truth+noise (gt_fraction)",
        "trained_on_note": "simulated patients only (ward.sim), not clinical data",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = out / "manifest.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(man, indent=1))
    os.replace(tmp, path)
    return path
