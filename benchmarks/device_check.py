"""GPU outputs against CPU fp32 torch, with the accuracy gates' tolerances (run by device_check.sh).

A GPU figure is only worth quoting if the GPU computes what the CPU reference computes, so before
any timing ``benchmarks/device_check.sh`` runs this on the node, for every engine ``--device``
offers (torch fp32 and its ``auto`` autocast precision on CUDA):

* pose (each config): heatmap/PAF max |difference| (and the reference's scale), on simulated beds;
  the selected patient's joints within 1 px (network-input pixels) of CPU fp32 for >= 99 % of the
  joints fp32 finds; PCK@0.1 against the simulator's ground truth within 0.01 of fp32's
  (``ward.train.pose.pose_accuracy``). Untrained weights find no patient: then only the maps are
  compared and the joint gates say "no joints";
* VSViG (light, base): |p - p_fp32| <= 0.02 on every clip.

Writes ``parity.json`` under ``--out``; exits 1 when a gate fails. ``--device cpu`` runs the same
code against itself (the dry run of device_check.sh checks the script, not a GPU).

    .venv/bin/python benchmarks/device_check.py --device cuda --out device_out [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _util import machine_info, pose_checkpoint, vsvig_checkpoint  # noqa: E402

JOINT_PX = 1.0  # network-input pixels
JOINT_SHARE = 0.99
PCK_DELTA = 0.01
P_DELTA = 0.02


def device_engines(device: str, quick: bool = False) -> list[tuple[str, str]]:
    """(backend, precision) to check on ``device``: fp32 and whatever ``auto`` resolves to there
    (``quick``: fp32 only, which is all a dry run on a CPU needs to exercise this script)."""
    from ward.vision.engines import resolve

    if quick:
        return [("torch", "fp32")]
    auto = resolve("auto", "auto", device)
    return list(dict.fromkeys([("torch", "fp32"), (auto.backend, auto.precision)]))


def sim_data(n: int, width: int = 640, height: int = 360) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """n simulated frames (beds with seeds 1..n, frames 0, 7, 14...) and their ground-truth patient."""
    from ward.sim import SimCamera, parse_sim_uri

    frames, people = [], []
    for s in range(1, n + 1):
        img, kp, _ = SimCamera(parse_sim_uri(f"sim://?seed={s}&duration=30&fps=6&width={width}&height={height}")).frame(7 * s)
        frames.append(img)
        people.append([kp])
    return np.stack(frames), people


def patient_joints(people: list[list[np.ndarray]]) -> list[np.ndarray | None]:
    """The patient each frame's selector picks (a fresh selector: no history), (18, 3) or None."""
    from ward.vision.patient import PatientSelector

    out: list[np.ndarray | None] = []
    for ppl in people:
        sel = PatientSelector()
        k = sel.update(ppl, 0.0)
        out.append(k if sel.found else None)
    return out


def joint_agreement(ref: list[np.ndarray | None], test: list[np.ndarray | None], scale: float) -> dict[str, Any]:
    """Share of the joints fp32 finds that the engine puts within JOINT_PX network-input pixels."""
    n = close = 0
    for r, t in zip(ref, test):
        if r is None:
            continue
        vis = r[:, 2] >= 0
        n += int(vis.sum())
        if t is None:
            continue
        ok = vis & (t[:, 2] >= 0)
        d = np.linalg.norm((t[ok, :2] - r[ok, :2]) * scale, axis=1)
        close += int((d <= JOINT_PX).sum())
    return {"joints": n, "share_within_1px": close / n if n else None}


def check_pose(config: str, device: str, n_frames: int, height: int, weights: Path | None, quick: bool) -> list[dict[str, Any]]:
    from ward.train.pose import pose_accuracy
    from ward.vision.pose import PoseEstimator, padded_size

    ckpt, what = pose_checkpoint(config, weights)
    frames, gt = sim_data(n_frames)
    scale = padded_size(frames.shape[1], frames.shape[2], height)[0]

    def run(backend: str, precision: str, dev: str) -> dict[str, Any]:
        est = PoseEstimator.from_checkpoint(ckpt, config, height=height, device=dev, backend=backend,
                                            precision=precision)
        hm, pf = (np.asarray(torch.as_tensor(t).float().cpu()) for t in est.infer(frames)[:2])
        people = est(frames)
        return {"est": est, "hm": hm, "pf": pf, "patient": patient_joints(people),
                "pck": pose_accuracy(est, frames, gt)["pck@0.1"]}

    ref = run("torch", "fp32", "cpu")
    rows = []
    for backend, precision in device_engines(device, quick):
        t = run(backend, precision, device)
        agree = joint_agreement(ref["patient"], t["patient"], scale)
        pck_ok = bool(np.isnan(ref["pck"]) and np.isnan(t["pck"]) or abs(t["pck"] - ref["pck"]) <= PCK_DELTA)
        share = agree["share_within_1px"]
        rows.append({"model": f"pose {config}", "weights": what, "engine": str(t["est"].engine),
                     "hm_maxdiff": float(np.abs(t["hm"] - ref["hm"]).max()), "hm_scale": float(np.abs(ref["hm"]).max()),
                     "paf_maxdiff": float(np.abs(t["pf"] - ref["pf"]).max()), "paf_scale": float(np.abs(ref["pf"]).max()),
                     **agree, "pck_fp32": ref["pck"], "pck": t["pck"],
                     "pass": bool((share is None or share >= JOINT_SHARE) and pck_ok)})
    return rows


def check_vsvig(variant: str, device: str, n_clips: int, weights: Path | None, quick: bool) -> list[dict[str, Any]]:
    from ward.vision.vsvig import random_clips
    from ward.vision.vsvig_engine import load_vsvig_scorer

    ckpt, what = vsvig_checkpoint(variant, "paper", weights)
    patches, kpts = random_clips(n_clips, torch.Generator().manual_seed(7))

    def p(backend: str, precision: str, dev: str) -> tuple[np.ndarray, Any]:
        scorer = load_vsvig_scorer(ckpt, device=dev, backend=backend, precision=precision)  # type: ignore[arg-type]
        return np.asarray(scorer(patches, kpts), np.float64).reshape(-1), scorer.engine

    ref, _ = p("torch", "fp32", "cpu")
    rows = []
    for backend, precision in device_engines(device, quick):
        got, engine = p(backend, precision, device)
        d = float(np.abs(got - ref).max())
        rows.append({"model": f"vsvig {variant}", "weights": what, "engine": str(engine), "clips": n_clips,
                     "p_maxdiff": d, "p_range_fp32": [float(ref.min()), float(ref.max())], "pass": d <= P_DELTA})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("device_out"))
    ap.add_argument("--quick", action="store_true", help="small config only, 2 frames/clips, input 128 (dry run)")
    ap.add_argument("--weights", type=Path, default=ROOT / "models")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"device_check: {a.device} asked for but torch {torch.__version__} sees no CUDA GPU", file=sys.stderr)
        return 2
    configs, n, height = (["small"], 2, 128) if a.quick else (["official", "small"], 16, 256)
    rows = [r for c in configs for r in check_pose(c, a.device, n, height, a.weights, a.quick)]
    rows += [r for v in (["light"] if a.quick else ["light", "base"]) for r in check_vsvig(v, a.device, n * 2, a.weights, a.quick)]
    for r in rows:
        print(("PASS " if r["pass"] else "FAIL ") + json.dumps(r, default=str), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if a.device.startswith("cuda") else None
    (a.out / "parity.json").write_text(json.dumps(
        {"benchmark": "device_parity", "machine": machine_info(), "gpu": gpu, "device": a.device,
         "tolerances": {"joint_px": JOINT_PX, "joint_share": JOINT_SHARE, "pck_delta": PCK_DELTA, "p_delta": P_DELTA},
         "rows": rows}, indent=2, default=str) + "\n")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
