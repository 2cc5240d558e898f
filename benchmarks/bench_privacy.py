"""Face-blur throughput (frames/s) at 640x360: ``ward.vision.privacy.blur_faces_clip`` on rendered patients.

Two cases, because they cost very differently: the patient's face is located from its keypoints
(only the face box is anonymised), and no head joint is confident (the whole frame is anonymised).
The dataset builder blurs every sampled frame of a recorded video, so this bounds its overhead.
Frames are a simulated patient (``ward.sim``) rendered at 640x360 with ground-truth keypoints.

``--compare FILE`` also times another version of ``ward/vision/privacy.py`` (e.g. the one before a change:
``git show REV:ward/vision/privacy.py > /tmp/privacy_old.py``), interleaved with the current one so both
see the same machine load.

    .venv/bin/python benchmarks/bench_privacy.py [--frames 32] [--repeats 7] [--threads 1] [--compare FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import add_json_option, report  # noqa: E402
from benchmarks.bench_patches import time_call  # noqa: E402
from ward import privacy  # noqa: E402
from ward.sim.render import SimCamera  # noqa: E402
from ward.sim.scenario import Scenario  # noqa: E402


def rendered_clip(n: int, width: int = 640, height: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """`n` frames of a simulated patient (one every 2 rendered frames) and its (n, 18, 3) keypoints."""
    cam = SimCamera(Scenario(seed=7, duration_s=max(6.0, n / 6 + 1), fps=12, width=width, height=height, seizures=[]))
    frames = np.stack([cam.frame(2 * i)[0] for i in range(n)])
    kpts = np.stack([cam.keypoints(2 * i) for i in range(n)])
    return frames, kpts


def load_version(path: Path) -> ModuleType:
    """Another version of ward/vision/privacy.py, imported from a file under its own name."""
    spec = importlib.util.spec_from_file_location("privacy_compared", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--compare {path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32, help="frames per call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 is steadier on a shared machine)")
    ap.add_argument("--compare", type=Path, default=None, metavar="FILE", help="another version of ward/vision/privacy.py")
    add_json_option(ap, "bench_privacy")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    frames, kpts = rendered_clip(args.frames)
    versions = {"current": privacy, **({str(args.compare): load_version(args.compare)} if args.compare else {})}
    rows = []
    for case, k in (("face located", kpts), ("no head: whole frame", None)):
        wall: dict[str, list[float]] = {v: [] for v in versions}
        cpu: dict[str, list[float]] = {v: [] for v in versions}
        for _ in range(args.repeats):  # interleaved: every version sees the same load
            for name, mod in versions.items():
                w_, c_ = time_call(lambda: mod.blur_faces_clip(frames, k), 1)
                wall[name] += w_
                cpu[name] += c_
        rows += [{"version": name, "case": case, "resolution": f"{frames.shape[2]}x{frames.shape[1]}",
                  "frames": len(frames), "fps_median": len(frames) / statistics.median(wall[name]),
                  "fps_best": len(frames) / min(wall[name]), "fps_per_cpu_s": len(frames) / statistics.median(cpu[name])}
                 for name in versions]
    report("bench_privacy", rows, {"repeats": args.repeats, "opencv_threads": args.threads}, json_path=args.json)


if __name__ == "__main__":
    main()
