"""int8 against fp32 (and bf16 where the CPU has it) with OpenVINO: speed and the accuracy gate's numbers.

Why a script and not a benchmark: it produces the figures of docs/inference.md#int8 (what int8
would buy, and why the gate turns it down), with the shipped weights, in one run:

    PYTHONPATH=$PWD .venv/bin/python scripts/int8_speed.py [--frames 100] [--clips 100] [--json out.json]

The int8 models are built with ward.vision.quantize's recipe (calibrate_pose / calibrate_vsvig on
the simulator's calibration inputs) and gated on its held-out inputs; timings are the median of
``--repeats`` calls at pose batch 4 (256 x 456 input, the serving size) and VSViG batch 8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import ward.evaluation.calibration as calibration
from ward.vision import quantize as Q
from ward.vision.engines import OpenVINORunner, cpu_native_bf16
from ward.vision.export import export_pose_onnx, export_vsvig_onnx
from ward.vision.openpose import load_openpose
from ward.vision.vsvig import load_vsvig

ROOT = Path(__file__).resolve().parents[1]


def median_ms(run, args: tuple, repeats: int) -> float:
    run(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100, help="calibration and held-out pose frames (each)")
    ap.add_argument("--clips", type=int, default=100, help="calibration and held-out VSViG clips (each)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ward-int8-"))
    precisions = ["fp32", "int8"] + (["bf16"] if cpu_native_bf16() else [])
    rows, gates = [], {}

    pose_onnx = export_pose_onnx(load_openpose(ROOT / "models/ward-pose-small.pt"), tmp / "pose.onnx")
    frames = calibration.pose_samples(a.frames, "calibration")
    pose_int8 = Q.calibrate_pose(pose_onnx, frames, 256)
    gates["pose"] = Q.pose_gate(pose_onnx, pose_int8, calibration.pose_samples(a.frames, "held_out"), 256).numbers
    x = np.random.default_rng(0).standard_normal((4, 3, 256, 456)).astype(np.float32) * 0.25
    for prec in precisions:
        run = OpenVINORunner(pose_int8 if prec == "int8" else pose_onnx, prec, num_threads=a.threads)
        rows.append({"model": "pose small 256x456", "batch": 4, "precision": prec,
                     "ms_per_batch": median_ms(run, (x,), a.repeats)})

    vsvig_onnx = export_vsvig_onnx(load_vsvig(ROOT / "models/ward-vsvig-light.pt"), tmp / "vsvig.onnx")
    clips = calibration.clip_samples(a.clips, "calibration")
    vsvig_int8 = Q.calibrate_vsvig(vsvig_onnx, clips)
    gates["vsvig"] = Q.vsvig_gate(vsvig_onnx, vsvig_int8, calibration.clip_samples(a.clips, "held_out")).numbers
    batch = Q.vsvig_feed(vsvig_onnx)(clips.patches[:8], clips.kpts[:8])
    for prec in precisions:
        run = OpenVINORunner(vsvig_int8 if prec == "int8" else vsvig_onnx, prec, num_threads=a.threads)
        rows.append({"model": "VSViG light", "batch": 8, "precision": prec,
                     "ms_per_batch": median_ms(run, batch, a.repeats)})

    print(f"{'model':<22}{'batch':>6}{'precision':>10}{'ms/batch':>10}")
    for r in rows:
        print(f"{r['model']:<22}{r['batch']:>6}{r['precision']:>10}{r['ms_per_batch']:>10.1f}")
    for kind, numbers in gates.items():
        print(f"gate {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "gates": gates, "cpu_native_bf16": cpu_native_bf16()}, indent=1))


if __name__ == "__main__":
    main()
