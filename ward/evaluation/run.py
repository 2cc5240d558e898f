"""`ward eval`: the seizure-detection benchmark on held-out simulated scenarios.

Pipeline per scenario (the ward's own bed pipeline, ``ward.pipeline.BedPipeline``, with the clip
contract of ``ward.core.clip``: frames sampled at 6 fps, one clip per second, 30 frames = 5 s per clip):

* fast path: simulator ground-truth keypoints + realistic pose noise (`noisy_keypoints`: jitter,
  dropped joints, occasional left/right swaps) -> rendered frames -> joint patches -> VSViG -> rule;
* full path: rendered frames -> PoseEstimator -> PatientSelector (bed region from the scenario) ->
  patches -> VSViG -> rule.

Each frame is rendered and its patches extracted once (a chunk of frames at a time); clips are
gathered from the pipeline's ring and scored in batches of ``batch`` clips. The motion baseline (`ward.evaluation.baseline`) scores
the same rendered frames on the same clip grid and goes through the same `BedRule`; its threshold is
the highest one whose sensitivity reaches VSViG's (on this footage: it is a reference point, not a
tuned detector). Metrics come from `ward.evaluation.metrics.evaluate`.

Seeds: evaluation scenarios derive from ``EVAL_SEED`` (900000) or ``--seed``; training uses
1000-2999 (VSViG clips) and 3000-3999 (pose frames), so the default never overlaps training data.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch

from ward.alarms.rule import run_rule
from ward.config import RuleConfig
from ward.core.clip import MODEL_FPS, clip_ends
from ward.core.lifetime import die_with_parent
from ward.core.numerics import flush_denormals
from ward.evaluation.baseline import BaselineConfig, pool_frames, scores_from_frames
from ward.evaluation.metrics import Recording, SeizureAnnotation, evaluate, event_intervals, event_times
from ward.evaluation.szcore import szcore_crosscheck
from ward.pipeline import BedPipeline, ClipScorer
from ward.sim.pose_noise import MIRROR_18, PoseNoise, noisy_keypoints

EVAL_SEED = 900_000
__all__ = ["EVAL_SEED", "EvalConfig", "EvalInterrupted", "MIRROR_18", "PoseNoise", "StreamCache", "noisy_keypoints",
           "run_eval", "replay_eval", "score_scenario", "scenario_rng", "eval_scenarios"]  # MIRROR_18, PoseNoise, noisy_keypoints: from ward.sim.pose_noise
TRAIN_SEEDS = "1000-2999 (VSViG clips), 3000-3999 (pose frames)"
FPS = MODEL_FPS
TAIL_S = {"focal_clonic": 90, "tonic": 40, "tonic_clonic": 120, "hypermotor": 60, "myoclonic": 25}
"""Longest clinical phase per type (s): seizure scenarios last until it has certainly ended + 30 s."""

@dataclass
class EvalConfig:
    fast: bool = True
    seed: int | None = None
    hours: float = 24.0
    seizures_per_type: int = 4
    seizure_types: tuple[str, ...] = ("focal_clonic", "tonic", "tonic_clonic", "hypermotor", "myoclonic")
    vsvig: str = "models/ward-vsvig-light.pt"
    pose: str = "models/ward-pose-small.pt"
    vsvig_engine: tuple[str, str] = ("auto", "auto")
    """(backend, precision) VSViG runs with (:func:`ward.vision.engines.resolve`, on the CPU)."""
    pose_engine: tuple[str, str] = ("auto", "auto")
    """(backend, precision) of the pose network (full path only)."""
    batch: int = 64
    threads: int | None = None
    width: int = 640
    height: int = 360
    chunk_s: float = 1800.0
    pose_batch: int = 8
    """Frames per pose-network call on the full path (a chunk of rendered frames is posed in these batches)."""
    jobs: int = 1
    """Scenario-scoring processes (``ward eval --jobs N``); each runs ``threads`` (default cores // jobs) threads."""
    shard: tuple[int, int] = (0, 1)
    """(k, n): score only every n-th scenario starting at k (parallel runs, merged by `replay_eval`)."""
    noise: PoseNoise = field(default_factory=PoseNoise)
    rule: RuleConfig = field(default_factory=RuleConfig)
    rule_source: str = "built-in defaults (RuleConfig())"
    """Where ``rule`` came from (a file, or the built-in defaults): reported in the output and the JSON."""
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


# --------------------------------------------------------------------------------------- scenarios

def eval_scenarios(cfg: EvalConfig) -> list[Any]:
    """Held-out scenarios: seizures_per_type per type (one seizure each) + `hours` of seizure-free footage."""
    from ward.sim.scenario import SeizureSpec, random_scenario

    if cfg.hours < 0 or cfg.seizures_per_type < 0:
        raise ValueError(f"hours and seizures per type must be >= 0, got {cfg.hours}, {cfg.seizures_per_type}")
    base = EVAL_SEED if cfg.seed is None else int(cfg.seed)
    common = dict(fps=FPS, width=cfg.width, height=cfg.height)
    out = []
    for ti, typ in enumerate(cfg.seizure_types):
        for k in range(cfg.seizures_per_type):
            seed = base + 1 + 100 * ti + k
            eeg = float(np.random.default_rng([seed, 5]).uniform(30, 60))
            dur = eeg + 30 + TAIL_S[typ] + 30
            out.append(random_scenario(seed, dur, seizures=[SeizureSpec(type=typ, eeg_onset_s=eeg)], **common))
    remaining, j = cfg.hours * 3600.0, 0
    while remaining > 1e-6:
        d = min(cfg.chunk_s, remaining)
        if d >= 10:
            out.append(random_scenario(base + 10_000 + j, d, n_seizures=0, **common))
        remaining -= d
        j += 1
    return out


def bed_roi_from_track(k18: np.ndarray, width: int, height: int, margin: float = 0.15) -> tuple[float, ...]:
    """Normalised bed region for PatientSelector: the patient's ground-truth extent, widened by `margin`."""
    v = k18[..., 2] > 0
    xy = k18[..., :2][v]
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0.0, (x0 - mx) / width), max(0.0, (y0 - my) / height),
            min(1.0, (x1 + mx) / width), min(1.0, (y1 + my) / height))


# ------------------------------------------------------------------------------------------ scoring

def vsvig_score_fn(model: Any) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    """A local VSViG as the pipeline's score function: uint8 patches and keypoints -> probabilities.

    ``model``: a scorer (:func:`ward.vision.vsvig_engine.load_vsvig_scorer`, on its engine) or a torch module."""
    if not isinstance(model, torch.nn.Module):
        return lambda patches, k15: np.asarray(model(patches, k15), np.float32)

    @torch.no_grad()
    def score(patches: torch.Tensor, k15: torch.Tensor) -> np.ndarray:
        return model(patches.float(), k15).float().numpy()

    return score


def _engine(model: Any) -> dict[str, str] | None:
    """The engine a loaded model runs on (None: a torch module given by the caller)."""
    e = getattr(model, "engine", None)
    return asdict(e) if e is not None else None


def scenario_rng(base: int, sc: Any) -> np.random.Generator:
    """The pose-noise generator of one scenario: its own stream, so a scenario scores the same
    alone, in any shard or process, and when resumed from a cache."""
    return np.random.default_rng([int(base), 77, int(sc.seed)])


def _batched(pose: Any, batch: int) -> Callable[[np.ndarray], list[Any]]:
    """The pose estimator over a chunk of frames, ``batch`` frames per network call."""
    if batch < 1:
        raise ValueError(f"pose batch must be >= 1, got {batch}")
    return lambda frames: [ppl for s in range(0, len(frames), batch) for ppl in pose(frames[s:s + batch])]


def gray_frames(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) BGR -> (N, H, W) grey, OpenCV's conversion in one call for the whole chunk."""
    n, h, w, _ = frames.shape
    return cv2.cvtColor(frames.reshape(n * h, w, 3), cv2.COLOR_BGR2GRAY).reshape(n, h, w)


def score_scenario(sc: Any, model: Any, cfg: EvalConfig, rng: np.random.Generator,
                   pose: Any = None, chunk_frames: int = 360,
                   on_frames: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """One scenario through the bed pipeline (``ward.pipeline``, as in the ward): t_end, VSViG p,
    target, baseline score (per clip), keypoints used. Frames are rendered and posed in chunks
    (``cfg.pose_batch`` frames per pose-network call); ``on_frames(n)`` after each chunk (progress)."""
    from ward.sim.labels import target
    from ward.sim.render import SimCamera

    cam = SimCamera(sc)
    if abs(cam.fps - FPS) > 1e-6:
        raise ValueError(f"evaluation scenarios must be rendered at {FPS} fps, got {cam.fps}")
    n = cam.n_frames
    tr = cam.track()
    if pose is None:
        k18_all = noisy_keypoints(tr["kpts"], rng, cfg.noise)
        pipeline = BedPipeline()
    else:
        k18_all = np.zeros((n, 18, 3), np.float32)
        pipeline = BedPipeline(bed_roi_from_track(tr["kpts"], cam.width, cam.height))
        pose_fn = _batched(pose, cfg.pose_batch)
    scorer = ClipScorer(vsvig_score_fn(model), cfg.batch)
    pooled: list[np.ndarray] = []
    buf = np.empty((min(n, chunk_frames), cam.height, cam.width, 3), np.uint8)  # reused: no page faults per chunk
    t_clips: list[float] = []
    for a in range(0, n, chunk_frames):
        b = min(n, a + chunk_frames)
        frames = buf[:b - a]
        for r, i in enumerate(range(a, b)):
            frames[r] = cam.frame(i)[0]
        t = np.arange(a, b) / FPS
        if pose is None:
            posed = pipeline.push(frames, t, patient=k18_all[a:b])
        else:
            posed = pipeline.push(frames, t, pose=pose_fn)
            k18_all[a:b] = posed.keypoints
        for clip in posed.clips:
            scorer.add(pipeline.vsvig_inputs(clip))
            t_clips.append(clip.t_end)
        pooled.append(pool_frames(gray_frames(frames), cfg.baseline.grid_px))
        if on_frames is not None:
            on_frames(b - a)
    ends = clip_ends(n)
    p = scorer.finish()
    t_end = ends / FPS
    if not np.array_equal(np.asarray(t_clips), t_end):
        raise AssertionError("the bed pipeline's clips are off the clip grid")
    _, bscore = scores_from_frames(np.concatenate(pooled), FPS, cfg.baseline, hop=1)
    # scores_from_frames returns windows ending at frames n_w-1, n_w, ...; pick the clip ends
    n_w = int(round(cfg.baseline.window_s * FPS))
    b_at = np.where(ends >= n_w - 1, bscore[np.clip(ends - (n_w - 1), 0, None)], 0.0)
    tgt = np.asarray(target(t_end, _annotations(sc)), dtype=np.float32)
    return {"t_end": t_end, "p": p, "target": tgt, "baseline": b_at.astype(np.float32), "kpts": k18_all}


# ------------------------------------------------------------------------------------------ metrics

def _annotations(sc: Any) -> list[SeizureAnnotation]:
    return [SeizureAnnotation(s.type, float(s.eeg_onset_s), float(s.clinical_onset_s), float(s.end_s))
            for s in sc.seizures]


def recordings_for(scored: Sequence[dict[str, Any]], scenarios: Sequence[Any], key: str,
                   rule: RuleConfig) -> list[Recording]:
    """Run the rule on each scenario's stream `key` ("p" or "baseline") -> metric recordings."""
    recs = []
    for sc, s in zip(scenarios, scored):
        ev = run_rule(s["t_end"], s[key], rule)
        recs.append(Recording(f"seed{sc.seed}", float(sc.duration_s), _annotations(sc),
                              event_times(ev, "alarm_start"), event_times(ev, "review_start"),
                              alarm_intervals=event_intervals(ev, float(sc.duration_s))))
    return recs


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("baseline",)}


def calibrate_baseline(scored: Sequence[dict[str, Any]], scenarios: Sequence[Any], cfg: EvalConfig,
                       target_sensitivity: float | None) -> tuple[dict[str, Any], float]:
    """Baseline at the highest power threshold whose sensitivity reaches `target_sensitivity`
    (or the best sensitivity it can reach); scores are re-mapped from the default-threshold ones."""
    bc = cfg.baseline
    logp = [np.log10(bc.threshold_power) + bc.slope_decades *
            np.log(np.clip(s["baseline"], 1e-26, 1 - 1e-7) / np.clip(1 - s["baseline"], 1e-26, None)) / np.log(10)
            for s in scored]
    cands = np.arange(-7.0, 1.01, 0.25)[::-1]  # high threshold (few alarms) first
    best: tuple[dict[str, Any], float] | None = None
    for lt in cands:
        remapped = [{**s, "baseline": 1 / (1 + np.exp(-np.clip((lp - lt) / bc.slope_decades, -60, 60)))}
                    for s, lp in zip(scored, logp)]
        res = evaluate(recordings_for(remapped, scenarios, "baseline", cfg.rule),
                       clip_pred=np.concatenate([r["baseline"] for r in remapped]),
                       clip_target=np.concatenate([r["target"] for r in remapped]))
        sens = res["sensitivity"] or 0.0
        if best is None or sens > (best[0]["sensitivity"] or 0.0) + 1e-9:
            best = (res, float(10 ** lt))
        if target_sensitivity is not None and sens >= target_sensitivity - 1e-9:
            return res, float(10 ** lt)
    assert best is not None
    return best


class EvalInterrupted(RuntimeError):
    """Raised by ``run_eval(stop_after=k)`` once k scenarios are scored (tests of resuming a cache)."""


STREAM_KEYS = ("t_end", "p", "target", "baseline")


def cache_key(cfg: EvalConfig, base: int, model_given: Any = None) -> dict[str, Any]:
    """What a scored stream depends on besides its scenario: models (SHA-256), engines, pose and noise
    settings, frame size, evaluation seed. A cache made under another key is refused."""
    from ward.vision.engines import checkpoint_key, resolve

    def engine(spec: tuple[str, str]) -> list[str]:
        e = resolve(*spec, "cpu")  # type: ignore[arg-type]
        return [e.backend, e.precision]

    key: dict[str, Any] = {"path": "fast" if cfg.fast else "full", "eval_seed": int(base),
                           "vsvig": str(cfg.vsvig), "pose": None if cfg.fast else str(cfg.pose),
                           "frame": [cfg.width, cfg.height], "fps": FPS, "baseline": cfg.baseline.model_dump()}
    if model_given is not None:
        key["vsvig_sha256"] = f"a model given by the caller ({type(model_given).__name__})"
    else:
        key["vsvig_sha256"] = checkpoint_key(cfg.vsvig)
        key["vsvig_engine"] = engine(cfg.vsvig_engine)
    if cfg.fast:
        key["pose_noise"] = asdict(cfg.noise)
    else:
        key.update(pose_sha256=checkpoint_key(cfg.pose), pose_engine=engine(cfg.pose_engine), pose_height=POSE_HEIGHT)
    return key


class StreamCache:
    """A folder of scored streams, one npz per scenario (``scenario_<seed>.npz``, written atomically
    as soon as the scenario is scored), under a ``cache.json`` holding the :func:`cache_key`.

    ``ward eval --cache DIR`` skips the scenarios already there, so an interrupted run resumes; a
    folder made with other weights or settings is refused. ``ward eval --replay DIR`` reads it."""

    MANIFEST = "cache.json"

    def __init__(self, root: str | Path, key: dict[str, Any]) -> None:
        self.root = Path(root)
        self.key = json.loads(json.dumps(key))  # as stored (lists, not tuples)
        manifest = self.root / self.MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text()).get("key", {})
            if old != self.key:
                diff = sorted(k for k in set(old) | set(self.key) if old.get(k) != self.key.get(k))
                raise ValueError(f"{self.root} holds streams scored with other settings ({', '.join(diff)} differ: "
                                 + "; ".join(f"{k}: cached {old.get(k)!r}, now {self.key.get(k)!r}" for k in diff)
                                 + "); use another --cache folder, or delete this one to score again")
        elif self.root.exists() and any(not f.name.startswith(".") for f in self.root.iterdir()):
            # (hidden files: another shard's manifest being written into the same folder)
            raise ValueError(f"{self.root} is not empty and holds no {self.MANIFEST}: not a `ward eval --cache` "
                             "folder; give a new or empty folder")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps({"key": self.key}, indent=2)))

    def path(self, sc: Any) -> Path:
        return self.root / f"scenario_{int(sc.seed)}.npz"

    def get(self, sc: Any) -> dict[str, np.ndarray] | None:
        """The scenario's cached streams, or None when it has not been scored yet."""
        path = self.path(sc)
        if not path.is_file():
            return None
        (meta, streams), = load_streams(path)
        if meta["seed"] != int(sc.seed) or abs(meta["duration_s"] - float(sc.duration_s)) > 1e-6:
            raise ValueError(f"{path} holds scenario {meta['seed']} of {meta['duration_s']} s, not {sc.seed} of "
                             f"{sc.duration_s} s (other --hours or scenario settings): use another --cache folder")
        return streams

    def put(self, sc: Any, scored: dict[str, np.ndarray]) -> None:
        _atomic_write(self.path(sc), lambda tmp: save_streams(tmp, [scored], [sc], self.key["eval_seed"], self.key),
                      suffix=".npz")


def _atomic_write(path: Path, write: Callable[[Path], Any], suffix: str = "") -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# one scoring process of `ward eval --jobs N`: models loaded once per process
_WORKER: dict[str, Any] = {}


def _load_models(cfg: EvalConfig) -> tuple[Any, Any]:
    from ward.vision.vsvig_engine import load_vsvig_scorer

    if not Path(cfg.vsvig).is_file():
        raise FileNotFoundError(f"VSViG weights not found: {cfg.vsvig} (train with `ward train vsvig` or pass --vsvig)")
    backend, precision = cfg.vsvig_engine
    model = load_vsvig_scorer(cfg.vsvig, backend=backend, precision=precision, num_threads=cfg.threads)
    pose = None if cfg.fast else _load_pose(cfg.pose, *cfg.pose_engine, num_threads=cfg.threads)
    return model, pose


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)


def _worker_init(cfg: EvalConfig, scenarios: list[Any], base: int, cache: StreamCache | None, frames_done: Any,
                 parent_pid: int | None = None) -> None:
    die_with_parent(parent_pid)  # no orphan scoring on when `ward eval` is killed
    _set_threads(cfg.threads)
    model, pose = _load_models(cfg)
    _WORKER.update(cfg=cfg, scenarios=scenarios, base=base, cache=cache, model=model, pose=pose,
                   frames_done=frames_done)


@flush_denormals()
def _worker_score(i: int) -> tuple[int, dict[str, np.ndarray], dict[str, Any]]:
    w = _WORKER
    sc = w["scenarios"][i]
    s = score_scenario(sc, w["model"], w["cfg"], scenario_rng(w["base"], sc), w["pose"],
                       on_frames=w["frames_done"].put)
    s = {k: s[k] for k in STREAM_KEYS}
    if w["cache"] is not None:
        w["cache"].put(sc, s)
    return i, s, {"vsvig": _engine(w["model"]), "pose": None if w["pose"] is None else _engine(w["pose"])}


@flush_denormals()
def run_eval(cfg: EvalConfig, json_path: str | Path | None = None, png_path: str | Path | None = None,
             log: Callable[[str], None] = print, model: Any = None,
             progress: bool = True, streams_path: str | Path | None = None,
             cache_dir: str | Path | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dict (also written to json_path / png_path when given).

    ``streams_path`` saves every scenario's scored streams (npz) so the rule can be re-run or tuned
    (`ward eval-tune`) without scoring the footage again. ``cache_dir`` (:class:`StreamCache`) saves
    each scenario's streams as soon as it is scored and skips those already there (resume).
    ``cfg.jobs`` > 1 scores scenarios in that many processes (longest first, each with
    ``cfg.threads`` threads, default cores // jobs); the result is the single-process one.
    ``stop_after``: raise :class:`EvalInterrupted` after scoring that many scenarios (tests).
    """
    from tqdm import tqdm

    t0 = time.time()
    jobs = int(cfg.jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1:
        if model is not None:
            raise ValueError("jobs > 1 loads the models in each scoring process: do not pass model=")
        if not cfg.threads:
            cfg = replace(cfg, threads=max(1, (os.cpu_count() or 1) // jobs))
    base = EVAL_SEED if cfg.seed is None else int(cfg.seed)
    log(f"evaluation seed {base} ({'default held-out' if cfg.seed is None else 'user-given'}); "
        f"training seeds {TRAIN_SEEDS}; path: {'fast (ground truth + pose noise)' if cfg.fast else 'full (pose network)'}")
    scenarios = eval_scenarios(cfg)
    k, n = cfg.shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n}")
    if n > 1:
        scenarios = scenarios[k::n]
        log(f"shard {k}/{n}: {len(scenarios)} scenarios; merge the shards' --streams files (or --cache folders) "
            "with --replay")
    if not scenarios:
        raise ValueError("nothing to evaluate: give --seizures-per-type > 0 or --hours > 0")
    cache = StreamCache(cache_dir, cache_key(cfg, base, model)) if cache_dir else None
    scored: list[dict[str, np.ndarray] | None] = [None] * len(scenarios)
    if cache is not None:
        for i, sc in enumerate(scenarios):
            scored[i] = cache.get(sc)
        done = sum(s is not None for s in scored)
        log(f"cache {cache_dir}: {done} of {len(scenarios)} scenarios already scored" + (", resuming" if done else ""))
    todo = sorted((i for i, s in enumerate(scored) if s is None), key=lambda i: -scenarios[i].n_frames)
    n_frames = sum(sc.n_frames for sc in scenarios)
    todo_frames = sum(scenarios[i].n_frames for i in todo)
    engines: dict[str, Any] = {}
    if jobs > 1 and todo:
        log(f"{jobs} scoring processes, {cfg.threads} thread(s) each")
    bar = tqdm(total=todo_frames, desc=f"ward eval ({'fast' if cfg.fast else 'full'} path, {jobs} job(s))",
               unit="frame", unit_scale=True, disable=not progress, smoothing=0.1)
    t_score, cpu0 = time.time(), _cpu_seconds()
    try:
        if jobs == 1:
            _set_threads(cfg.threads)
            if model is None:
                model, pose = _load_models(cfg)
            else:
                pose = None if cfg.fast else _load_pose(cfg.pose, *cfg.pose_engine, num_threads=cfg.threads)
            if isinstance(model, torch.nn.Module):
                model.eval()
            engines = {"vsvig": _engine(model), "pose": None if pose is None else _engine(pose)}
            for j, i in enumerate(todo):
                if stop_after is not None and j >= stop_after:
                    raise EvalInterrupted(f"stopped after {stop_after} scenarios (stop_after)")
                sc = scenarios[i]
                s = score_scenario(sc, model, cfg, scenario_rng(base, sc), pose, on_frames=bar.update)
                scored[i] = {k: s[k] for k in STREAM_KEYS}
                if cache is not None:
                    cache.put(sc, scored[i])
        elif todo:
            import multiprocessing as mp
            import queue
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            ctx = mp.get_context("spawn")
            frames_done = ctx.Queue()  # the workers' chunks, for the progress bar
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                     initargs=(cfg, scenarios, base, cache, frames_done, os.getpid())) as pool:
                futures = [pool.submit(_worker_score, i) for i in todo]
                pending, finished = set(futures), 0
                try:
                    while pending:
                        done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                        while True:
                            try:
                                bar.update(frames_done.get_nowait())
                            except queue.Empty:
                                break
                        for fut in done:
                            i, s, engines = fut.result()
                            scored[i] = s
                            finished += 1
                            if stop_after is not None and finished >= stop_after:
                                raise EvalInterrupted(f"stopped after {stop_after} scenarios (stop_after)")
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    if not engines:  # everything came from the cache
        engines = {"vsvig": None, "pose": None}
        if cache is not None:
            engines = {m: {"backend": e[0], "precision": e[1], "device": "cpu", "reason": "every scenario from the cache"}
                       if (e := cache.key.get(f"{m}_engine")) else None for m in ("vsvig", "pose")}
    else:
        log("engines: " + "; ".join(f"{k} {_engine_text(e)}" for k, e in engines.items()
                                    if k == "vsvig" or not cfg.fast))
    done_scored: list[dict[str, np.ndarray]] = [s for s in scored if s is not None]
    assert len(done_scored) == len(scenarios)
    score_s, cpu_s = time.time() - t_score, _cpu_seconds() - cpu0
    if streams_path:
        save_streams(streams_path, done_scored, scenarios, base,
                     {"vsvig": str(cfg.vsvig), "path": "fast" if cfg.fast else "full",
                      "pose": None if cfg.fast else str(cfg.pose), "engine": engines})
        log(f"wrote {streams_path}")
    res = summarise(done_scored, scenarios, cfg, base)
    res["seconds"] = round(time.time() - t0, 1)
    res["engine"] = engines
    res["throughput"] = {"frames": int(n_frames), "frames_scored_now": int(todo_frames), "jobs": jobs,
                         "threads_per_job": cfg.threads, "scoring_seconds": round(score_s, 1),
                         "frames_per_s": round(todo_frames / score_s, 1) if todo_frames and score_s > 0 else None,
                         "cpu_seconds": round(cpu_s, 1),
                         "cpu_ms_per_frame": round(1e3 * cpu_s / todo_frames, 2) if todo_frames else None,
                         "loadavg": [round(x, 2) for x in os.getloadavg()],
                         "cache": None if cache_dir is None else str(cache_dir)}
    _write_outputs(res, done_scored, scenarios, json_path, png_path, log)
    return res


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the --jobs workers):
    what scoring cost whatever else loads the machine."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _engine_text(e: Mapping[str, str] | None) -> str:
    return "(a model given by the caller)" if e is None else f"{e['backend']} {e['precision']} on {e['device']} ({e['reason']})"


def summarise(scored: Sequence[dict[str, Any]], scenarios: Sequence[Any], cfg: EvalConfig, base: int
              ) -> dict[str, Any]:
    """Metrics of scored streams under cfg.rule: VSViG, and the motion baseline at equal sensitivity."""
    clip_p = np.concatenate([s["p"] for s in scored])
    clip_y = np.concatenate([s["target"] for s in scored])
    recs = recordings_for(scored, scenarios, "p", cfg.rule)
    res = evaluate(recs, clip_pred=clip_p, clip_target=clip_y)
    res["szcore"] = szcore_crosscheck(recs, pre_tolerance_s=res["pre_tolerance_s"],
                                      post_tolerance_s=res["post_tolerance_s"]).to_dict()
    bres, bthr = calibrate_baseline(scored, scenarios, cfg, res["sensitivity"])
    dres = evaluate(recordings_for(scored, scenarios, "baseline", cfg.rule),
                    clip_pred=np.concatenate([s["baseline"] for s in scored]), clip_target=clip_y)
    res["baseline"] = {**_strip(bres), "threshold_power": bthr,
                       "note": "highest threshold reaching VSViG's sensitivity (or its best) on this footage",
                       "at_default_threshold": {**{k: v for k, v in _strip(dres).items() if k != "seizures"},
                                                "threshold_power": cfg.baseline.threshold_power}}
    res.update({
        "eval_seed": base, "training_seeds": TRAIN_SEEDS, "path": "fast" if cfg.fast else "full",
        "scenario_seeds": [int(sc.seed) for sc in scenarios], "n_clips": int(clip_p.size),
        "vsvig": str(cfg.vsvig), "pose": None if cfg.fast else str(cfg.pose),
        "rule": cfg.rule.model_dump(), "rule_source": cfg.rule_source,
        "pose_noise": asdict(cfg.noise) if cfg.fast else None,
        "hours_requested_non_seizure": cfg.hours,
    })
    return res


def _write_outputs(res: dict[str, Any], scored: Sequence[dict[str, Any]], scenarios: Sequence[Any],
                   json_path: str | Path | None, png_path: str | Path | None, log: Callable[[str], None]) -> None:
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2, default=float))
        log(f"wrote {json_path}")
    if png_path:
        plot_traces(scored, scenarios, res, png_path)
        log(f"wrote {png_path}")


def replay_eval(streams_paths: str | Path | Sequence[str | Path], cfg: EvalConfig, json_path: str | Path | None = None,
                png_path: str | Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The benchmark's summary from saved streams under cfg.rule (no rendering, no model).

    Lets a rule chosen on validation streams be applied once to test streams scored earlier, and
    merges the shards of a parallel run (all files must come from one seed and one model).
    The output says which streams files and rule it used.
    """
    from types import SimpleNamespace

    paths = [streams_paths] if isinstance(streams_paths, (str, Path)) else list(streams_paths)
    if not paths:
        raise ValueError("replay needs at least one streams file")
    data: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = []
    bases, infos = set(), set()
    for p in [f for q in paths for f in stream_files(q)]:
        data += load_streams(p)
        with np.load(p) as z:
            bases.add(int(z["eval_seed"]))
            infos.add(str(z["info"]) if "info" in z.files else "{}")
    if len(bases) != 1 or len(infos) != 1:
        raise ValueError(f"streams files come from different seeds or models ({sorted(bases)}, {sorted(infos)}); "
                         "replay files of one run only")
    seeds = [m["seed"] for m, _ in data]
    if len(set(seeds)) != len(seeds):
        raise ValueError("a scenario appears in two streams files (the same shard given twice?)")
    data.sort(key=lambda d: d[0]["seed"])
    base, info = bases.pop(), json.loads(infos.pop())
    cfg = replace(cfg, fast=info.get("path", "fast") == "fast", vsvig=info.get("vsvig", "?"),
                  pose=info.get("pose") or cfg.pose)
    scenarios = [SimpleNamespace(seed=m["seed"], duration_s=m["duration_s"],
                                 seizures=[SimpleNamespace(type=t, eeg_onset_s=e, clinical_onset_s=c, end_s=x)
                                           for t, e, c, x in m["seizures"]]) for m, _ in data]
    scored = [st for _, st in data]
    res = summarise(scored, scenarios, cfg, base)
    non_seizure_s = sum(sc.duration_s for sc in scenarios if not sc.seizures)
    res.update({"replayed_from": [str(p) for p in paths],
                "hours_requested_non_seizure": round(non_seizure_s / 3600, 3)})
    _write_outputs(res, scored, scenarios, json_path, png_path, log)
    return res


def save_streams(path: str | Path, scored: Sequence[dict[str, Any]], scenarios: Sequence[Any], seed: int,
                 info: dict[str, Any] | None = None) -> None:
    """Scored streams + seizure annotations of every scenario in one npz (no frames, no keypoints);
    ``info`` (model, path) is kept so a replay can say what produced the streams."""
    arrays: dict[str, np.ndarray] = {"eval_seed": np.array(seed), "info": np.array(json.dumps(info or {}))}
    for i, (sc, s) in enumerate(zip(scenarios, scored)):
        for k in ("t_end", "p", "target", "baseline"):
            arrays[f"{i}/{k}"] = np.asarray(s[k])
        arrays[f"{i}/meta"] = np.array(json.dumps({
            "seed": int(sc.seed), "duration_s": float(sc.duration_s),
            "seizures": [[a.type, a.eeg_onset, a.clinical_onset, a.end] for a in _annotations(sc)]}))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def stream_files(path: str | Path) -> list[Path]:
    """The npz files of a `--streams` file or a `--cache` folder (its scenarios, by seed)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("scenario_*.npz"), key=lambda f: int(f.stem.split("_")[1]))
        if not files:
            raise ValueError(f"{p}: no scored scenarios (scenario_<seed>.npz) in this folder")
        return files
    if not p.is_file():
        raise FileNotFoundError(f"streams not found: {p}")
    return [p]


def load_streams(path: str | Path) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(meta, streams) per scenario, as written by `save_streams` (a file, or a `--cache` folder)."""
    if Path(path).is_dir():
        return [x for f in stream_files(path) for x in load_streams(f)]
    with np.load(path) as z:
        n = len({k.split("/")[0] for k in z.files if "/" in k})
        out = []
        for i in range(n):
            meta = json.loads(str(z[f"{i}/meta"]))
            out.append((meta, {k: z[f"{i}/{k}"] for k in ("t_end", "p", "target", "baseline")}))
    return out


def evaluate_streams(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], rule: RuleConfig,
                     key: str = "p") -> dict[str, Any]:
    """The detection metrics of saved streams under another rule (no re-scoring)."""
    recs = []
    for meta, s in streams:
        ev = run_rule(s["t_end"], s[key], rule)
        anns = [SeizureAnnotation(t, float(e), float(c), float(x)) for t, e, c, x in meta["seizures"]]
        recs.append(Recording(f"seed{meta['seed']}", float(meta["duration_s"]), anns,
                              event_times(ev, "alarm_start"), event_times(ev, "review_start"),
                              alarm_intervals=event_intervals(ev, float(meta["duration_s"]))))
    return evaluate(recs)


POSE_HEIGHT = 256
"""Network input height of the full path's pose model (as the ward serves it)."""


def _load_pose(path: str, backend: str = "auto", precision: str = "auto", *, num_threads: int | None = None) -> Any:
    """A PoseEstimator for the full path (frames -> people per frame), BN folded as in the ward."""
    from ward.vision.pose import PoseEstimator  # the pose concern's estimator

    if not Path(path).is_file():
        raise FileNotFoundError(f"pose weights not found: {path} (train with `ward train pose` or pass --pose)")
    return PoseEstimator.from_checkpoint(path, height=POSE_HEIGHT, device="cpu", backend=backend, precision=precision,
                                         num_threads=num_threads)


# ------------------------------------------------------------------------------------------- output

def plot_traces(scored: Sequence[dict[str, Any]], scenarios: Sequence[Any], res: dict[str, Any],
                path: str | Path, max_panels: int = 5) -> None:
    """PNG: VSViG probability and baseline score of one example seizure per type against its onsets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks, seen = [], set()
    for sc, s in zip(scenarios, scored):
        if sc.seizures and sc.seizures[0].type not in seen:
            seen.add(sc.seizures[0].type)
            picks.append((sc, s))
    picks = picks[:max_panels]
    if not picks:
        return
    alarms = {r["recording"]: r["alarm_t"] for r in res["seizures"]}
    fig, axes = plt.subplots(len(picks), 1, figsize=(9, 2.2 * len(picks)), squeeze=False)
    for ax, (sc, s) in zip(axes[:, 0], picks):
        z = sc.seizures[0]
        ax.plot(s["t_end"], s["target"], color="0.6", lw=1, label="target")
        ax.plot(s["t_end"], s["p"], color="C0", lw=1.2, label="VSViG p")
        ax.plot(s["t_end"], s["baseline"], color="C2", lw=0.8, alpha=0.7, label="motion baseline (default thr.)")
        ax.axvline(z.eeg_onset_s, color="C3", ls="--", lw=1, label="EEG onset")
        ax.axvline(z.clinical_onset_s, color="C1", ls="--", lw=1, label="clinical onset")
        a = alarms.get(f"seed{sc.seed}")
        if a is not None:
            ax.axvline(a, color="k", lw=1.5, label="alarm")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("p")
        ax.set_title(f"{z.type} (seed {sc.seed})", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(res: dict[str, Any]) -> None:
    """Rich table: VSViG and the baseline, overall and per seizure type."""
    from rich.console import Console
    from rich.table import Table

    def f(v: Any, pct: bool = False) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{100 * v:.0f} %" if pct else f"{v:.1f}" if isinstance(v, float) else str(v)

    t = Table(title=f"ward eval ({res['path']} path, seed {res['eval_seed']}, "
                    f"{res['hours_non_seizure']:.2f} h non-seizure, {res['n_clips']} clips)")
    for c in ("model", "group", "n", "sensitivity", "mean lat. (s)", "median lat. (s)", "median adv. (s)",
              "false alarms/24h", "reviews/24h", "clip RMSE"):
        t.add_column(c)
    for name, r in (("VSViG", res), ("baseline", res["baseline"])):
        t.add_row(name, "all", str(r["n_seizures"]), f(r["sensitivity"], True), f(r["mean_latency_after_eeg_s"]),
                  f(r["median_latency_after_eeg_s"]), f(r["median_advance_before_clinical_s"]),
                  f(r["false_alarms_per_24h"]), f(r["review_events_per_24h"]), f(r["clip_rmse"]))
        for typ, q in r["per_type"].items():
            t.add_row("", typ, str(q["n_seizures"]), f(q["sensitivity"], True), f(q["mean_latency_after_eeg_s"]),
                      f(q["median_latency_after_eeg_s"]), f(q["median_advance_before_clinical_s"]), "", "", "")
    console = Console()
    console.print(t)
    if res.get("szcore"):
        print_szcore(res["szcore"], console)
    console.print(f"rule: {res.get('rule_source', '?')}  {res['rule']}")


def print_szcore(cc: Mapping[str, Any], console: Any = None) -> None:
    """The SzCORE cross-check (``res["szcore"]``, :mod:`ward.evaluation.szcore`) as a short table."""
    from rich.console import Console
    from rich.table import Table

    def f(v: Any, pct: bool = False) -> str:
        return "-" if v is None else f"{100 * v:.0f} %" if pct else f"{v:.1f}" if isinstance(v, float) else str(v)

    t = Table(title="SzCORE cross-check (FA/24h: each scorer's own denominator; docs/detection.md)")
    for c in ("scorer", "detected", "sens.", "FA", "FA/24h", "FA/24h non-sz"):
        t.add_column(c)
    for key, label in (("ward", "ward"), ("szcore_mirrored", "SzCORE mirrored"), ("szcore_default", "SzCORE default")):
        s = cc[key]
        t.add_row(label, f"{s['n_detected']}/{s['n_seizures']}", f(s["sensitivity"], True), str(s["false_alarms"]),
                  f(s["false_alarms_per_24h"]), f(s["false_alarms_per_24h_non_seizure"]))
    console = console or Console()
    console.print(t)
    bites = [c["name"] + (f" ({c['occurrences']})" if c["occurrences"] is not None else "")
             for c in cc["conventions"] if c["occurrences"] != 0]
    console.print(("mirrored SzCORE agrees with ward" if cc["mirrored_agrees"] else
                   "mirrored SzCORE DISAGREES with ward (alarms on a window edge?)")
                  + "; conventions that separate ward from SzCORE's defaults: " + ", ".join(bites))
