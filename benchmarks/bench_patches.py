"""Joint-patch extraction throughput (frames/s, all 15 joints per frame) at 1080p, 720p and 360p.

Compares ``ward.vision.patches.extract_patches`` (batched torch) with ``extract_patches_reference``
(a straightforward per-joint OpenCV/numpy version of the official algorithm), measured side by side
in the same run, interleaved, so machine load affects both alike. Frames are the official fixture's
two 1080p frames (resized for lower resolutions) with its keypoints, tiled to the batch size.

    .venv/bin/python benchmarks/bench_patches.py [--repeats 7] [--batches 8 32] [--threads 2 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import add_json_option, report  # noqa: E402
from ward.vision.patches import extract_patches, extract_patches_reference, window_size_for_height  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_patches.npz"
RESOLUTIONS = ((1080, 1920), (720, 1280), (360, 640))


def load_frames() -> tuple[np.ndarray, np.ndarray, str]:
    """Two 1080p frames and (2, 18, 3) keypoints: the fixture if present, else seeded noise."""
    if FIXTURE.is_file():
        d = np.load(FIXTURE)
        xy = d["keypoints_xy_coco18"]
        return d["frames_bgr"], np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1), "fixture"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 1080, 1920, 3), dtype=np.uint8)
    k = np.stack([rng.uniform(0, 1920, (2, 18)), rng.uniform(0, 1080, (2, 18)), np.ones((2, 18))], -1)
    return frames, k, "random"


def at_resolution(frames: np.ndarray, kpts: np.ndarray, hw: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize the frames (and scale keypoints) to hw and tile them to n frames."""
    h, w = hw
    if (h, w) != frames.shape[1:3]:
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        kpts = kpts * np.array([w / 1920, h / 1080, 1.0])
    reps = -(-n // len(frames))
    return np.ascontiguousarray(np.concatenate([frames] * reps)[:n]), np.concatenate([kpts] * reps)[:n]


def time_call(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of each of `repeats` calls after one warm-up call.

    CPU time is what the call would take on an idle machine when single-threaded; wall time is
    inflated by other processes on a shared machine (and multi-threaded spin-waits inflate CPU time).
    """
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--ref-frames", type=int, default=4, help="frames per timed call of the reference")
    ap.add_argument("--threads", type=int, nargs="+", default=[2],
                    help="torch/OpenCV thread counts to measure (1 is steadier on a loaded machine)")
    add_json_option(ap, "bench_patches")
    args = ap.parse_args()
    frames2, kpts2, source = load_frames()
    load_before = os.getloadavg()
    rows = []
    for threads, hw in ((t, hw) for t in args.threads for hw in RESOLUTIONS):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        ref_f, ref_k = at_resolution(frames2, kpts2, hw, args.ref_frames)
        for n in args.batches:
            f, k = at_resolution(frames2, kpts2, hw, n)
            ft, kt = torch.from_numpy(f), torch.from_numpy(k)
            ours, ref, ours_cpu, ref_cpu = [], [], [], []
            for _ in range(args.repeats):  # interleave: both see the same machine load
                w_, c_ = time_call(lambda: extract_patches(ft, kt), 1)
                ours += w_
                ours_cpu += c_
                w_, c_ = time_call(lambda: [extract_patches_reference(a, b) for a, b in zip(ref_f, ref_k)], 1)
                ref += w_
                ref_cpu += c_
            ours_fps = [n / t for t in ours]
            ref_fps = [len(ref_f) / t for t in ref]
            rows.append({
                "threads": threads,
                "resolution": f"{hw[1]}x{hw[0]}",
                "window": window_size_for_height(hw[0]),
                "batch": n,
                "torch_fps_median": statistics.median(ours_fps),
                "torch_fps_best": max(ours_fps),
                "reference_fps_median": statistics.median(ref_fps),
                "speedup_median": statistics.median(ours_fps) / statistics.median(ref_fps),
                "torch_fps_per_cpu_s": n / statistics.median(ours_cpu),
                "reference_fps_per_cpu_s": len(ref_f) / statistics.median(ref_cpu),
            })
    report("bench_patches", rows, {
        "frames": source,
        "repeats": args.repeats,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "target": ">= 300 frames/s at 1920x1080 (original ~98 frames/s)",
    }, json_path=args.json)
    print(f"load average before {load_before}, after {os.getloadavg()}")


if __name__ == "__main__":
    main()
