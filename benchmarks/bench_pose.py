"""Pose stage throughput: network only vs preprocess + network + decode + patient selection.

Also times the vectorised decoder against a straightforward loop re-implementation of the
original post-processing (ward.vision.pose_decode.reference_decode_poses) on the reference
fixture (3 people, 128x228 upsampled maps), side by side in the same run.

Usage: .venv/bin/python benchmarks/bench_pose.py [--batches 1 4 8 16] [--configs official small] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _util import add_json_option, report  # noqa: E402

from ward.vision.openpose import build_openpose, fuse_for_inference  # noqa: E402
from ward.vision.pose import PoseEstimator, preprocess  # noqa: E402
from ward.vision.pose_decode import decode_poses, decode_poses_batch, reference_decode_poses  # noqa: E402

try:
    from ward.vision.patient import PatientSelector
except ImportError:  # written by another helper; the benchmark still runs without it
    PatientSelector = None

FIXTURE = ROOT.parent / "shared" / "fixtures" / "lwop_postproc.npz"
VIDEO_DIR = Path("/usr/share/doc/opencv-doc/examples/data")


def load_frames(n: int) -> tuple[np.ndarray, str]:
    """n real frames (vtest.avi / Megamind.avi from opencv-doc) or synthetic 576x768 ones."""
    for name in ("vtest.avi", "Megamind.avi"):
        cap = cv2.VideoCapture(str(VIDEO_DIR / name))
        frames = []
        while len(frames) < n:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        if len(frames) == n:
            return np.stack(frames), name
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 576, 768, 3), dtype=np.uint8), "synthetic 576x768"


def timed(fn, reps: int) -> float:
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
            "speedup": t_ref / t_vec, "speedup_vs_11ms": 11.0 / (t_vec * 1e3)}


def bench_stage(config: str, batch: int, frames: np.ndarray, reps: int, fixture_maps: tuple) -> dict:
    model = fuse_for_inference(build_openpose(config, 1).eval(), channels_last=True)
    est = PoseEstimator(model, height=256)
    clip = frames[:batch]
    x, _, _ = preprocess(clip)
    x = x.contiguous(memory_format=torch.channels_last)
    selectors = [PatientSelector() for _ in range(batch)] if PatientSelector is not None else None
    hm3 = np.repeat(fixture_maps[0][None], batch, 0)
    pf3 = np.repeat(fixture_maps[1][None], batch, 0)
    clock = [0.0]

    def select(people_per_frame: list) -> None:
        clock[0] += 0.1
        if selectors is not None:
            for sel, people in zip(selectors, people_per_frame):  # one selector per bed
                sel.update(people, clock[0])

    def network_only() -> None:
        with torch.inference_mode():
            model(x)

    def full() -> None:
        select(est(clip))

    def full_3_people() -> None:
        # same work, but decode the 3-person reference maps instead of the (random-weight) outputs,
        # so decoding cost reflects people actually being in view
        est.infer(clip)
        select(decode_poses_batch(hm3, pf3))

    t_net, t_full, t_full3 = [], [], []
    for _ in range(reps):  # interleaved so machine load hits all three alike
        t_net.append(timed(network_only, 1))
        t_full.append(timed(full, 1))
        t_full3.append(timed(full_3_people, 1))
    net, ful, ful3 = (statistics.median(t) for t in (t_net, t_full, t_full3))
    return {"config": config, "batch": batch, "net_fps": batch / net, "full_fps": batch / ful,
            "full_ratio": net / ful, "full_3people_fps": batch / ful3, "full_3people_ratio": net / ful3,
            "loadavg_1m": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--configs", nargs="+", default=["official", "small"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    add_json_option(ap, "bench_pose")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    decoder = bench_decoder(args.reps)
    print("decoder (3 people, 128x228 upsampled):", {k: round(v, 3) for k, v in decoder.items()})

    frames, source = load_frames(max(args.batches))
    z = np.load(FIXTURE)
    rows = [bench_stage(c, b, frames, args.reps, (z["heatmaps_stride8"], z["pafs_stride8"]))
            for c in args.configs for b in args.batches]
    report("bench_pose", rows, extra={
        "decoder": decoder, "frames": f"{source} {frames.shape[1]}x{frames.shape[2]}", "height": 256,
        "patient_selector": PatientSelector is not None, "fused_bn": True, "channels_last": True,
        "note": "random weights: network outputs hold few/no people, hence full_3people (fixture maps decoded)"},
        json_path=args.json)


if __name__ == "__main__":
    main()
