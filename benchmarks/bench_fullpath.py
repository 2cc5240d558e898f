"""The full-path benchmark's cost per frame, stage by stage, and the projected headline run time.

``ward eval`` without ``--fast`` renders every frame, runs the pose network on it and sends the
patient's keypoints through the bed pipeline to VSViG and the rule. This script scores a few
scenarios exactly as ``ward.evaluation.run.score_scenario`` does (the same functions, in the same
order, the same chunking), timing each stage separately in one process:

* ``render``: ``SimCamera.frame`` (drawing, sensor noise, compression);
* ``pose_pre``: ``ward.vision.pose.preprocess`` (resize, normalise, pad);
* ``pose_net``: the pose network on its engine (OpenVINO fp32 by default, as ``ward eval``);
* ``pose_decode``: ``decode_poses_batch`` + mapping back to frame pixels;
* ``patient``: ``PatientSelector`` (tracking, smoothing) through ``BedPipeline``;
* ``patches``: the 15 joint patches (``extract_patches``) and the clip ring;
* ``baseline``: the motion baseline's grey pooling (``pool_frames``);
* ``vsvig``: VSViG on the clips (one per second), on its engine;
* ``rule``: the decision rule and the metrics (once per run, per frame here);

``total_ms`` is their sum (wall time per frame), ``cpu_ms`` the process's CPU time per frame (all its
threads), which a loaded machine inflates far less than wall time.

Then it projects the wall time of the headline run (6 h of seizure-free footage + 20 seizures,
4 per type: ~150k frames at 6 fps) for 1 and 2 parallel shards (``ward eval --jobs N``); with N
shards on N cores each shard runs 1 thread, so the 2-shard projection uses a 1-thread measurement
(``--threads 1``) and assumes the shards do not slow each other beyond that, which holds only on a
quiet machine with that many free cores; ``*_from_cpu_min`` projects the same from the 1-thread CPU
time instead of wall time (the figure to trust when other jobs load the machine).

    .venv/bin/python benchmarks/bench_fullpath.py [--minutes 3] [--threads 2] [--chunk 360]
        [--backend auto --precision auto] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _util import add_json_option, report  # noqa: E402

STAGES = ("render", "pose_pre", "pose_net", "pose_decode", "patient", "patches", "baseline", "vsvig", "rule")


def headline_frames(fps: float = 6.0) -> int:
    """Frames of the headline run: 6 h seizure-free + 20 seizure scenarios (their exact lengths)."""
    from ward.evaluation.run import EvalConfig, eval_scenarios

    return sum(sc.n_frames for sc in eval_scenarios(EvalConfig(hours=6.0, seizures_per_type=4)))


def profile(minutes: float, threads: int, chunk: int, backend: str, precision: str, seed: int) -> dict:
    """Seconds per stage over ~``minutes`` of footage (one seizure scenario + seizure-free footage)."""
    from ward.alarms.rule import run_rule
    from ward.config import RuleConfig
    from ward.core.clip import clip_ends
    from ward.evaluation.baseline import BaselineConfig, pool_frames, scores_from_frames
    from ward.evaluation.run import (FPS, EvalConfig, _load_pose, bed_roi_from_track, eval_scenarios, gray_frames,
                                     vsvig_score_fn)
    from ward.pipeline import BedPipeline, ClipScorer
    from ward.sim.render import SimCamera
    from ward.vision.pose import preprocess, to_frame_pixels
    from ward.vision.pose_decode import decode_poses_batch
    from ward.vision.vsvig_engine import load_vsvig_scorer

    torch.set_num_threads(threads)
    cfg = EvalConfig(fast=False, seed=seed, hours=minutes / 60, seizures_per_type=0, chunk_s=minutes * 60)
    scenarios = eval_scenarios(cfg)
    t0 = time.perf_counter()
    pose = _load_pose(cfg.pose, backend, precision, num_threads=threads)
    vsvig = load_vsvig_scorer(cfg.vsvig, backend=backend, precision=precision, num_threads=threads)
    load_s = time.perf_counter() - t0
    score = vsvig_score_fn(vsvig)
    tm: dict[str, float] = defaultdict(float)
    n_frames = 0
    bc = BaselineConfig()

    def clock(stage: str, t: float) -> float:
        now = time.perf_counter()
        tm[stage] += now - t
        return now

    cpu0, wall0 = time.process_time(), time.perf_counter()
    for sc in scenarios:
        cam = SimCamera(sc)
        n = cam.n_frames
        tr = cam.track()
        pipe = BedPipeline(bed_roi_from_track(tr["kpts"], cam.width, cam.height))
        scorer = ClipScorer(score, cfg.batch)
        buf = np.empty((min(n, chunk), cam.height, cam.width, 3), np.uint8)
        pooled = []
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            frames = buf[:b - a]
            t = time.perf_counter()
            for r, i in enumerate(range(a, b)):
                frames[r] = cam.frame(i)[0]
            t = clock("render", t)
            people_all = []
            for s in range(0, b - a, 8):  # the pose stage in the estimator's own batches
                with torch.inference_mode():
                    x, scale, pad = preprocess(frames[s:s + 8], pose.height, device=pose.device)
                    t = clock("pose_pre", t)
                    if pose.runner is not None:
                        hm, pf = (torch.from_numpy(o) for o in pose.runner(x.numpy()))
                    else:
                        hm, pf, _, _ = pose.infer(frames[s:s + 8])
                    t = clock("pose_net", t)
                    ppl = decode_poses_batch(hm, pf, pose.upsample)
                    people_all += [[to_frame_pixels(p, scale, pad) for p in fp] for fp in ppl]
                    t = clock("pose_decode", t)
            times = np.arange(a, b) / FPS
            pipe.size = (cam.width, cam.height)  # what push() sets; selection timed alone here
            k18, found = pipe._select(people_all, times)
            t = clock("patient", t)
            posed = pipe.push(frames, times, patient=np.where(found[:, None, None], k18, 0))
            inputs = [pipe.vsvig_inputs(clip) for clip in posed.clips]
            t = clock("patches", t)
            for x in inputs:
                scorer.add(x)
            t = clock("vsvig", t)
            pooled.append(pool_frames(gray_frames(frames), bc.grid_px))
            t = clock("baseline", t)
        p = scorer.finish()
        t = clock("vsvig", t)
        _, bscore = scores_from_frames(np.concatenate(pooled), FPS, bc, hop=1)
        run_rule(clip_ends(n) / FPS, p, RuleConfig())
        clock("rule", t)
        n_frames += n
    return {"n_frames": n_frames, "seconds": dict(tm), "load_s": load_s, "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0,
            "engines": {"pose": str(pose.engine), "vsvig": str(getattr(vsvig, "engine", "torch"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="footage to score per thread setting (min)")
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts to profile")
    ap.add_argument("--chunk", type=int, default=360, help="frames rendered and posed per chunk (as ward eval)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seed", type=int, default=800_500, help="scenario seed (validation range; never 900000+)")
    add_json_option(ap, "bench_fullpath")
    args = ap.parse_args()

    total = headline_frames()
    rows, proj, cpu = [], {}, {}
    for th in args.threads:
        r = profile(args.minutes, th, args.chunk, args.backend, args.precision, args.seed)
        ms = {s: 1e3 * r["seconds"].get(s, 0.0) / r["n_frames"] for s in STAGES}
        tot = sum(ms.values())
        rows.append({"threads": th, **{f"{s}_ms": round(v, 2) for s, v in ms.items()},
                     "total_ms": round(tot, 2), "cpu_ms": round(1e3 * r["cpu_s"] / r["n_frames"], 2),
                     "frames": r["n_frames"], "fps": round(1e3 / tot, 1)})
        proj[th] = tot
        cpu[th] = 1e3 * r["cpu_s"] / r["n_frames"]
        print(f"threads {th}: engines {r['engines']}; model load {r['load_s']:.1f} s", flush=True)
    ncores = os.cpu_count() or 1
    projections = {}
    if 2 in proj or ncores in proj:
        projections["1_shard_min"] = round(total * proj.get(ncores, proj.get(2, 0.0)) / 1e3 / 60, 1)
    if 1 in proj:
        for k in sorted({2, ncores}):
            projections[f"{k}_shards_min"] = round(total * proj[1] / 1e3 / 60 / k, 1)
            # from CPU time: what the run costs whatever else loads the machine, spread over k free cores
            projections[f"{k}_shards_from_cpu_min"] = round(total * cpu[1] / 1e3 / 60 / k, 1)
    print(f"\nheadline run: {total} frames (6 h seizure-free + 20 seizures at 6 fps); projected wall time "
          f"{projections} (minutes; the k-shard figure assumes k free cores, 1 thread per shard)\n")
    report("bench_fullpath", rows, {"headline_frames": total, "projected_minutes": projections,
                                    "minutes_profiled": args.minutes, "chunk": args.chunk,
                                    "backend": args.backend, "precision": args.precision}, args.json)


if __name__ == "__main__":
    main()
