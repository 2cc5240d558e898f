"""Cost of the VSViG training data and training (issue 16 items 2-3), measured on a small generation,
projected to the full run.

1. `ward dataset generate` on ``--patients`` patients (one job, ``--threads``): frames/s and clips/s per
   keypoint source (pose model / ground truth + noise) and the seconds per stage (render, pose, rest
   of the pipeline);
2. VSViG training clips/s on those clips, fp32 and bf16 autocast side by side (alternated rounds, the
   best of each), batch ``--batch-size``, optimiser steps included;
3. the projection for the default full dataset (`GenerateConfig()`: 1000 patients) in CPU hours.

    .venv/bin/python benchmarks/bench_train_data.py --patients 10 --threads 2 --json PATH
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._util import add_json_option, report  # noqa: E402
from ward.dataset.generate import GenerateConfig, generate, plan_scenarios  # noqa: E402
from ward.train.frames import FrameSet  # noqa: E402
from ward.train.vsvig import augment  # noqa: E402
from ward.vision.engines import cpu_native_bf16  # noqa: E402
from ward.vision.partition_order import generate_partition_orders  # noqa: E402
from ward.vision.vsvig import build_vsvig  # noqa: E402


def train_rate(fs: FrameSet, bf16: bool, batch: int, steps: int, variant: str) -> float:
    """Training clips/s (data gather + augment + forward + backward + Adam step)."""
    torch.manual_seed(0)
    model = build_vsvig(variant, "paper", generate_partition_orders(0))  # type: ignore[arg-type]
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    t0 = 0.0
    for s in range(steps + 1):  # step 0 warms up
        if s == 1:
            t0 = time.perf_counter()
        p, k, y = fs.take(np.sort(rng.integers(0, len(fs), batch)))
        p, k = augment(torch.from_numpy(p).float(), torch.from_numpy(k), gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(p, k)
        loss = torch.mean((out.float() - torch.from_numpy(y)) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=1000,
                    help="training seeds (1000-2999); 1000-1009 hold both keypoint sources and uncovered legs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per precision per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variant", default="light")
    ap.add_argument("--out", type=Path, default=None, help="dataset dir (default: a temporary one, deleted)")
    add_json_option(ap, "bench_train_data")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_train_data_"))
    cfg = GenerateConfig(out=str(out), patients=args.patients, seed_start=args.seed_start, threads=args.threads,
                         free_seconds=60, seizure_seconds=90, command=" ".join(sys.argv))
    gen = generate(cfg, log=print)
    rows = []
    for src, s in sorted(gen["by_keypoints"].items()):
        rows.append({"case": f"generate ({src})", "scenarios": s["scenarios"], "frames": s["frames"],
                     "clips": s["clips"], "seconds": round(s["seconds"], 1),
                     "frames_per_s": s["frames"] / s["seconds"], "clips_per_s": s["clips"] / s["seconds"]})
    fs = FrameSet(out, "train")
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for prec in ("fp32", "bf16"):
            rates[prec].append(train_rate(fs, prec == "bf16", args.batch_size, args.steps, args.variant))
    for prec, r in rates.items():
        rows.append({"case": f"train VSViG-{args.variant} {prec}", "batch": args.batch_size,
                     "clips_per_s": max(r), "rounds": [round(x, 2) for x in r]})
    # projection: the default full plan
    full = GenerateConfig(out="-")
    plan = plan_scenarios(full)
    n_fr = {True: 0, False: 0}
    clips = 0
    for p in plan:
        sec = full.seizure_seconds if p.seizure_type != "none" else full.free_seconds
        f = int(round(sec * 6))
        n_fr[p.gt] += f
        clips += (f - 30) // 6 + 1
    fps = {src: s["frames"] / s["seconds"] for src, s in gen["by_keypoints"].items()}
    if not fps:
        raise SystemExit("nothing was generated (the --out dir was complete already): give a new --out")
    f_pose = fps.get("pose_model", min(fps.values()))       # a source not in the sample: the slower rate
    f_gt = fps.get("ground_truth+noise", min(fps.values()))
    gen_h = (n_fr[False] / f_pose + n_fr[True] / f_gt) / 3600
    train_clips = int(clips * full.split_fractions[0])
    best = max(max(rates["fp32"]), max(rates["bf16"]))
    projection = {
        "plan": {"patients": full.patients, "seizure_scenarios": sum(p.seizure_type != "none" for p in plan),
                 "seizure_seconds": full.seizure_seconds, "free_seconds": full.free_seconds,
                 "frames_pose_model": n_fr[False], "frames_ground_truth": n_fr[True], "clips": clips,
                 "train_clips_approx": train_clips, "disk_gb": round((n_fr[False] + n_fr[True]) * 46_260 / 1e9, 1)},
        "generation_hours_one_job": round(gen_h, 2),
        "generation_note": f"one job at --threads {args.threads} on this machine at this load; --jobs N on more cores divides it",
        "train_hours_per_epoch_of_train_clips": round(train_clips / best / 3600, 2),
        "train_precision_faster": "bf16" if max(rates["bf16"]) > max(rates["fp32"]) else "fp32",
    }
    report("bench_train_data", rows, {"generation": gen, "projection": projection, "native_bf16": cpu_native_bf16(),
                                      "threads": args.threads, "patients": args.patients}, args.json)
    print(projection)
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
