"""Face-blur throughput (frames/s) at 640x360: ``ward.privacy.blur_faces_clip`` on rendered patients.

Two cases, because they cost very differently: the patient's face is located from its keypoints
(only the face box is anonymised), and no head joint is confident (the whole frame is anonymised).
The dataset builder blurs every sampled frame of a recorded video, so this bounds its overhead.
Frames are a simulated patient (``ward.sim``) rendered at 640x360 with ground-truth keypoints.

    .venv/bin/python benchmarks/bench_privacy.py [--frames 32] [--repeats 7] [--threads 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import report  # noqa: E402
from ward.privacy import blur_faces_clip  # noqa: E402
from ward.sim.render import SimCamera  # noqa: E402
from ward.sim.scenario import Scenario  # noqa: E402


def rendered_clip(n: int, width: int = 640, height: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """`n` frames of a simulated patient (one every 2 rendered frames) and its (n, 18, 3) keypoints."""
    cam = SimCamera(Scenario(seed=7, duration_s=max(6.0, n / 6 + 1), fps=12, width=width, height=height, seizures=[]))
    frames = np.stack([cam.frame(2 * i)[0] for i in range(n)])
    kpts = np.stack([cam.keypoints(2 * i) for i in range(n)])
    return frames, kpts


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of `repeats` calls after a warm-up call."""
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
    ap.add_argument("--frames", type=int, default=32, help="frames per call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 is steadier on a shared machine)")
    ap.add_argument("--json", default=None, help="where to write the JSON record (default bench_results/)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    frames, kpts = rendered_clip(args.frames)
    load_before = os.getloadavg()
    rows = []
    for case, k in (("face located", kpts), ("no head: whole frame", None)):
        wall, cpu = timed(lambda: blur_faces_clip(frames, k), args.repeats)
        rows.append({"case": case, "resolution": f"{frames.shape[2]}x{frames.shape[1]}", "frames": len(frames),
                     "fps_median": len(frames) / statistics.median(wall), "fps_best": len(frames) / min(wall),
                     "fps_per_cpu_s": len(frames) / statistics.median(cpu)})
    report("bench_privacy", rows, {"repeats": args.repeats, "opencv_threads": args.threads,
                                   "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
           json_path=args.json)


if __name__ == "__main__":
    main()
