"""Simulator speed: rendered frames/s at several resolutions (with and without camera noise/JPEG), and the
keypoints-only ground-truth path. Target (issue 4): >= 200 frames/s rendering at 640x360.

    .venv/bin/python benchmarks/bench_sim.py [--seconds 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._util import add_json_option, report  # noqa: E402
from ward.sim.render import SimCamera  # noqa: E402
from ward.sim.scenario import EventSpec, random_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per case (25 fps)")
    add_json_option(ap, "bench_sim")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    cases = [("640x360", 640, 360, "none"), ("640x360", 640, 360, "noise"), ("640x360", 640, 360, "noise+jpeg"),
             ("1280x720", 1280, 720, "noise"), ("1920x1080", 1920, 1080, "noise")]
    for name, w, h, fx in cases:
        events = [EventSpec(kind="compression", start_s=0, duration_s=args.seconds)] if "jpeg" in fx else []
        sc = random_scenario(7, args.seconds, n_seizures=1, width=w, height=h, fps=25.0, scene_events=False,
                             events=events, noise=0.0 if fx == "none" else 0.015)
        cam = SimCamera(sc)
        cam.frame(0)   # background, noise bank
        t0 = time.perf_counter()
        for i in range(cam.n_frames):
            cam.frame(i)
        dt = time.perf_counter() - t0
        rows.append({"path": "render", "resolution": name, "effects": fx, "frames": cam.n_frames,
                     "frames_per_s": cam.n_frames / dt, "x_realtime": cam.n_frames / dt / 25.0})
    sc = random_scenario(7, 3600.0, n_seizures=3, width=640, height=360, fps=25.0)
    cam = SimCamera(sc)
    t0 = time.perf_counter()
    tr = cam.track()
    dt = time.perf_counter() - t0
    rows.append({"path": "keypoints (track)", "resolution": "-", "effects": "-", "frames": len(tr["t"]),
                 "frames_per_s": len(tr["t"]) / dt, "x_realtime": len(tr["t"]) / dt / 25.0})
    report("bench_sim", rows, {"loadavg": os.getloadavg(), "target_frames_per_s_640x360": 200},
           json_path=args.json)


if __name__ == "__main__":
    main()
