"""Pose stage speed per backend and precision, side by side in one run, against today's torch fp32.

For each pose config (official, small) and batch size, every engine this machine can run
(torch fp32 = the reference, torch bf16 autocast where the CPU has native bf16, OpenVINO fp32,
bf16 where native, int8 where ``ward.vision.quantize`` exists and the model passes its gate) is
timed on the same frames, in turn (A, B, C, A, B, C...: load swings on a shared machine hit all
alike), as

* ``stage_ms``: the whole pose stage per frame, what a bed costs: preprocess + network + decode +
  patient selection (one :class:`PatientSelector` per bed, as ``ward.pipeline`` runs it);
* ``net_ms``: the network alone per frame (the same input tensor, no pre/post-processing);
* ``stage3_ms``: the stage with the 3-person reference maps decoded instead of the network's
  output (untrained weights find few people; this shows decoding at a realistic load);

with ``*_x`` = torch fp32's time / this engine's (the speed-up) and the largest heatmap/PAF
difference to torch fp32 on the same batch. Weights: ``models/official/pose.pth`` and
``models/ward-pose-small.pt`` where present, else random init (seed 0; speed does not depend on the
values). Frames: simulated beds at 640x360 (the ward's cameras), network input 256x456.

Also times the vectorised decoder against the loop re-implementation of the original
post-processing (``reference_decode_poses``) on the reference fixture.

    .venv/bin/python benchmarks/bench_pose.py [--batches 1 4 8] [--configs official small] [--reps 5]
        [--engines torch:fp32 openvino:bf16 ...] [--device cpu|cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (see bench_vsvig)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _util import (add_engine_options, add_json_option, build_engines, engine_plan,  # noqa: E402
                   pose_checkpoint, report, speedups)

from ward.vision.patient import PatientSelector  # noqa: E402
from ward.vision.pose import PoseEstimator, preprocess  # noqa: E402
from ward.vision.pose_decode import decode_poses, decode_poses_batch, reference_decode_poses  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "lwop_postproc.npz"


def sim_frames(n: int, width: int = 640, height: int = 360) -> np.ndarray:
    """n frames of n simulated beds (seeds 1..n, frame 30: a patient in bed), BGR uint8."""
    from ward.sim import SimCamera, parse_sim_uri

    return np.stack([SimCamera(parse_sim_uri(f"sim://?seed={s}&duration=10&fps=6&width={width}&height={height}"))
                     .frame(30)[0] for s in range(1, n + 1)])


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median wall time of fn() over reps runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_decoder(reps: int) -> dict:
    z = np.load(FIXTURE)
    hm8, pf8 = z["heatmaps_stride8"], z["pafs_stride8"]

    def reference() -> list:  # the original's per-frame path: cv2 x4 upsampling of all maps + loops
        hu = cv2.resize(np.ascontiguousarray(hm8.transpose(1, 2, 0)), (0, 0), fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        pu = cv2.resize(np.ascontiguousarray(pf8.transpose(1, 2, 0)), (0, 0), fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        return reference_decode_poses(hu, pu)

    assert len(reference()) == len(decode_poses(hm8, pf8)) == 3
    n = max(reps * 10, 30)
    t_ref = timed(reference, n)
    t_vec = timed(lambda: decode_poses(hm8, pf8), n)
    hm16, pf16 = np.repeat(hm8[None], 16, 0), np.repeat(pf8[None], 16, 0)
    t_b16 = timed(lambda: decode_poses_batch(hm16, pf16), max(reps, 5)) / 16
    return {"reference_ms": t_ref * 1e3, "vectorised_ms": t_vec * 1e3, "vectorised_batch16_ms_per_frame": t_b16 * 1e3,
            "speedup": t_ref / t_vec}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def network_only(est: PoseEstimator, x: torch.Tensor, device: str) -> Callable[[], Any]:
    """A call of the network alone on the preprocessed batch ``x``, as the estimator's engine runs it."""
    if est.runner is not None:  # OpenVINO
        xn = x.numpy()
        return lambda: est.runner(xn)
    model = est.model
    xd = x.to(device)
    if est.channels_last:
        xd = xd.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(est.engine.precision)
    dev_type = torch.device(device).type

    def run() -> None:
        with torch.inference_mode(), torch.autocast(dev_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            model(xd)
        sync(device)

    return run


def max_diffs(est: PoseEstimator, ref: tuple[np.ndarray, np.ndarray] | None, clip: np.ndarray) -> tuple[float, float]:
    """Largest |heatmap| and |PAF| difference to the reference engine's on the same frames."""
    hm, pf = (np.asarray(torch.as_tensor(t).float().cpu()) for t in est.infer(clip)[:2])
    if ref is None:
        return 0.0, 0.0
    return float(np.abs(hm - ref[0]).max()), float(np.abs(pf - ref[1]).max())


def bench_config(config: str, estimators: dict[str, PoseEstimator], batch: int, frames: np.ndarray,
                 args: argparse.Namespace, fixture_maps: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    clip = frames[:batch]
    x, _, _ = preprocess(clip, args.height)
    hm3 = np.repeat(fixture_maps[0][None], batch, 0)
    pf3 = np.repeat(fixture_maps[1][None], batch, 0)
    runs: dict[str, dict[str, Any]] = {}
    ref_maps = None
    for name, est in estimators.items():  # the reference (torch fp32) first
        selectors = [PatientSelector() for _ in range(batch)]  # one per bed, sequential as in the pipeline
        clock = [0.0]

        def select(people_per_frame: list, selectors: list = selectors, clock: list = clock) -> None:
            clock[0] += 1 / 6
            for sel, people in zip(selectors, people_per_frame):
                sel.update(people, clock[0])

        hm_d, pf_d = max_diffs(est, ref_maps, clip)
        if ref_maps is None:
            ref_maps = tuple(np.asarray(torch.as_tensor(t).float().cpu()) for t in est.infer(clip)[:2])
        runs[name] = {
            "fns": {"net": network_only(est, x, args.device),
                    "stage": lambda est=est, select=select: select(est(clip)),
                    "stage3": lambda est=est, select=select: (est.infer(clip), select(decode_poses_batch(hm3, pf3)))},
            "times": {"net": [], "stage": [], "stage3": []}, "engine": str(est.engine),
            "hm_maxdiff": hm_d, "paf_maxdiff": pf_d}
        for fn in runs[name]["fns"].values():
            fn()  # warm-up (compilation, primitive caches) before any timing
    for _ in range(args.reps):  # in turn, so load swings hit every engine alike
        for run in runs.values():
            for k, fn in run["fns"].items():
                t0 = time.perf_counter()
                fn()
                run["times"][k].append(time.perf_counter() - t0)
    rows = []
    for name, run in runs.items():
        med = {k: statistics.median(v) * 1e3 / batch for k, v in run["times"].items()}
        rows.append({"config": config, "batch": batch, "engine": name, "stage_ms": round(med["stage"], 2),
                     "net_ms": round(med["net"], 2), "stage3_ms": round(med["stage3"], 2),
                     "stage_fps": round(1e3 / med["stage"], 1), "hm_maxdiff": run["hm_maxdiff"],
                     "paf_maxdiff": run["paf_maxdiff"], "resolved": run["engine"],
                     "loadavg_1m": round(os.getloadavg()[0], 1)})
    return rows


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--configs", nargs="+", default=["official", "small"])
    ap.add_argument("--height", type=int, default=256, help="network input height (the ward's input_height)")
    ap.add_argument("--reps", type=int, default=5, help="timed rounds per engine (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch / OpenVINO threads")
    ap.add_argument("--weights", type=Path, default=ROOT / "models",
                    help="folder with official/pose.pth and ward-pose-<config>.pt (else random init)")
    ap.add_argument("--no-decoder", action="store_true", help="skip the decoder-vs-reference timing")
    add_engine_options(ap)
    add_json_option(ap, "bench_pose")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    engines, skipped = engine_plan(args.engines, args.device)

    decoder = None if args.no_decoder else bench_decoder(args.reps)
    if decoder:
        print("decoder (3 people, 128x228 upsampled):", {k: round(v, 3) for k, v in decoder.items()}, flush=True)
    frames = sim_frames(max(args.batches))
    z = np.load(FIXTURE)
    rows, weights = [], {}
    for config in args.configs:
        ckpt, weights[config] = pose_checkpoint(config, args.weights)
        estimators = build_engines(engines, skipped, lambda b, p: PoseEstimator.from_checkpoint(
            ckpt, config, height=args.height, device=args.device, backend=b, precision=p, num_threads=args.threads))
        for b in args.batches:
            new = bench_config(config, estimators, b, frames, args, (z["heatmaps_stride8"], z["pafs_stride8"]))
            for r in new:
                print({k: r[k] for k in ("config", "batch", "engine", "stage_ms", "net_ms")}, flush=True)
            rows += new
    for value in ("stage_ms", "net_ms"):
        speedups(rows, ("config", "batch"), value)
    return report("bench_pose", rows, extra={
        "decoder": decoder, "frames": f"simulated beds {frames.shape[2]}x{frames.shape[1]}", "height": args.height,
        "threads": args.threads, "device": args.device, "weights": weights, "skipped_engines": skipped,
        "note": "times per frame (ms), median of --reps rounds taken in turn; *_x = torch:fp32 time / this "
                "engine's, same config, batch and run; stage = preprocess + network + decode + patient selection"},
        json_path=args.json)


if __name__ == "__main__":
    main()
