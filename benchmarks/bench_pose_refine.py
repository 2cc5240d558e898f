"""Sub-cell peak refinement in the pose decoder: accuracy on and off, its cost, and the engine gates.

On held-out simulated frames (validation seeds 800000+, never used for training or tuning), with the
shipped small pose model, every engine's network outputs are computed once and decoded twice,
without (the official demo's 2-px grid) and with refinement (:func:`ward.vision.pose_decode.refine_peaks`).
Reported per engine and mode: PCK@0.1 and mean error (frame px) against the simulator's ground
truth, and the issue-15 gate against torch fp32 in the same mode (share of the selected patient's
joints within 1 network-input px; PCK delta; how many of the joints fp32 found the engine did not). Also the decode time per frame, on and off.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_pose_refine.py --frames 96 \
        --json docs/results/bench_pose_refine.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _util import add_json_option, report  # noqa: E402

POSE_CKPT = ROOT / "models" / "ward-pose-small.pt"
SEED = 800_000
BATCH = 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    add_json_option(ap, "bench_pose_refine")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ward.train.pose import match_patient, pose_accuracy, sim_frames
    from ward.vision.engines import cpu_native_bf16
    from ward.vision.pose import PoseEstimator, padded_size, to_frame_pixels
    from ward.vision.pose_decode import decode_poses_batch

    frames, people = sim_frames(args.frames, SEED, (640, 360), per_scenario=8)
    scale = padded_size(frames.shape[1], frames.shape[2], args.height)[0]
    engines = [("torch", "fp32"), ("openvino", "fp32")]
    if cpu_native_bf16():
        engines += [("openvino", "bf16"), ("torch", "bf16")]

    outputs = {}
    for backend, precision in engines:
        est = PoseEstimator.from_checkpoint(POSE_CKPT, height=args.height, backend=backend, precision=precision,
                                            num_threads=args.threads)
        maps = [est.infer(frames[i:i + BATCH]) for i in range(0, len(frames), BATCH)]
        outputs[f"{backend}-{precision}"] = maps

    def decode(maps, refine):
        dets = []
        for heat, pafs, s, pad in maps:
            dets += [[to_frame_pixels(p, s, pad) for p in fr]
                     for fr in decode_poses_batch(heat, pafs, 4, refine=refine)]
        return dets

    class Replay:
        def __init__(self, dets):
            self.dets, self.i = dets, 0

        def __call__(self, batch):
            out = self.dets[self.i:self.i + len(batch)]
            self.i += len(batch)
            return out

    rows = []
    for refine in (False, True):
        mode = "refine" if refine else "grid"
        dets = {name: decode(maps, refine) for name, maps in outputs.items()}
        ref = dets["torch-fp32"]
        ref_acc = pose_accuracy(Replay(ref), frames, people)
        for name, d in dets.items():
            acc = pose_accuracy(Replay(d), frames, people)
            close = total = missed = 0
            for ref_c, c, ppl in zip(ref, d, people):
                gt = ppl[0]
                ref_p, p = match_patient(ref_c, gt)[0], match_patient(c, gt)[0]
                if ref_p is None:
                    continue
                joints = (gt[:, 2] > 0) & (ref_p[:, 2] >= 0)
                total += int(joints.sum())
                if p is None:
                    missed += int(joints.sum())
                    continue
                ok = joints & (p[:, 2] >= 0)
                missed += int((joints & ~ok).sum())
                dist = np.linalg.norm(p[ok, :2] - ref_p[ok, :2], axis=1) * scale
                close += int((dist <= 1.0).sum())
            row = {"engine": name, "decode": mode, "pck@0.1": acc["pck@0.1"], "mean_error_px": acc["mean_error_px"],
                   "detection_rate": acc["detection_rate"], "within_1px_share": close / total,
                   "pck_delta": abs(acc["pck@0.1"] - ref_acc["pck@0.1"]), "joints": total,
                   "joints_not_found": missed}
            rows.append(row)

    maps = outputs["torch-fp32"]
    timing = {}
    for refine in (False, True):
        decode(maps, refine)
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            decode(maps, refine)
            best.append((time.perf_counter() - t0) / len(frames) * 1e3)
        timing["refine" if refine else "grid"] = min(best)
    print(f"decode ms/frame (min of 5, batches of {BATCH}): {timing}")
    report("bench_pose_refine", rows, {"decode_ms_per_frame": timing, "frames": len(frames), "seed": SEED,
                                       "height": args.height, "checkpoint": POSE_CKPT.name,
                                       "threads": args.threads}, args.json)


if __name__ == "__main__":
    main()
