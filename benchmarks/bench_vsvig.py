"""VSViG speed per backend and precision, side by side in one run: clips/s for light and base.

    .venv/bin/python benchmarks/bench_vsvig.py [--batches 1 8 32] [--variants light base] [--quick]
        [--engines torch:fp32 openvino:bf16 ...] [--device cpu|cuda] [--json PATH]

Every engine this machine can run (torch fp32 = today's path and the reference, torch bf16 autocast
where the CPU has native bf16, OpenVINO fp32, bf16 where native, int8 where ``ward.vision.quantize``
exists and the model passes its gate) is loaded the way the ward loads it
(``load_vsvig_scorer``) and timed on the same clips; ``x_ref`` is its clips/s over torch fp32's and
``p_maxdiff`` its largest |p - p_torch_fp32| on those clips. Weights: ``models/ward-vsvig-light.pt``
(shipped, paper mode) where the variant and graph mode match, else random init with calibrated BN
statistics (``ward.vision.vsvig.calibrate_batchnorm``: fresh init is badly scaled and slows CPUs
10-50x), seed 0. Denormals are flushed.

Two torch-only reference rows come with torch fp32 (``--no-unfused`` / ``--no-reference`` drop them):
"unfused" (eval model as loaded, no BN folding) and "official-style" (the official formulation of
the temporal conv: a (3,3,1) Conv3d over a replicate-padded singleton axis, NCHW, no folding).
Models are timed in turn (A, B, A, B...) and clips/s comes from the median forward time, so load
swings on the shared machine hit all rows alike. Achieved GFLOP/s uses FLOPs counted by
torch.utils.flop_counter at batch 1, next to an fp32 GEMM measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

# OpenMP threads that spin-wait stall badly when other processes share the 2 cores (a 2-thread
# forward measured 10x slower at load 9); must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _util import (REFERENCE, add_engine_options, add_json_option, build_engines, engine_plan,  # noqa: E402
                   report, vsvig_checkpoint)

from ward.vision.vsvig import Part3DCNN, VSViG, load_vsvig, random_clips  # noqa: E402
from ward.vision.vsvig_engine import load_vsvig_scorer  # noqa: E402


def official_style_forward(self: Part3DCNN, x: torch.Tensor) -> torch.Tensor:
    """The official 3-D formulation: pad all three axes, (3,3,1) conv, keep the middle slice."""
    x = x.index_select(3, self.order)
    x5 = x.unsqueeze(-1)

    def cbr(cb, t, act=True, stride=1, pad=False):  # type: ignore[no-untyped-def]
        if pad:
            t = F.pad(t, (1, 1, 1, 1, 1, 1), mode="replicate")
        bn = cb[1]
        y = F.conv3d(t, cb[0].weight, cb[0].bias, stride=(stride, 1, 1))
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return F.relu(y) if act else y

    s = self.conv2.stride[0]
    y = cbr(self.conv1, x5)
    y = cbr(self.conv2, y, stride=s, pad=True)[..., 1:2]
    y = cbr(self.conv3, y)
    return F.relu(y + cbr(self.downsample, x5, act=False, stride=s)).squeeze(-1)


class OfficialStyle(torch.nn.Module):
    """Wraps a model so its Part_3DCNN blocks use the official-style forward (reference only)."""

    def __init__(self, model: VSViG) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).unfuse().eval()
        for m in self.model.modules():
            if isinstance(m, Part3DCNN):
                m.forward = official_style_forward.__get__(m, Part3DCNN)  # type: ignore[method-assign]

    def forward(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        return self.model(patches, kpts)


def count_gflops(model: torch.nn.Module) -> float:
    """GFLOPs of one clip (forward, batch 1) counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    patches, kpts = random_clips(1, torch.Generator().manual_seed(0))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(patches, kpts)
    return counter.get_total_flops() / 1e9


def gemm_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def time_interleaved(models: dict[str, Callable[..., Any]], batch: int, min_time: float, max_reps: int,
                     device: str = "cpu") -> dict[str, float]:
    """clips/s per model from the median time of single forwards taken in turn (A, B, A, B...):
    round-robin plus the median keeps load swings on a shared machine from favouring one model."""
    patches, kpts = random_clips(batch, torch.Generator().manual_seed(batch))
    patches, kpts = patches.to(device), kpts.to(device)
    times: dict[str, list[float]] = {k: [] for k in models}

    def once(m: Callable[..., Any]) -> None:
        m(patches, kpts)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        for m in models.values():
            once(m)  # warm-up (primitive creation, caches, compilation)
        t_start = time.perf_counter()
        while True:
            for name, m in models.items():
                t0 = time.perf_counter()
                once(m)
                times[name].append(time.perf_counter() - t0)
            n = len(next(iter(times.values())))
            if n >= max_reps or (n >= 3 and time.perf_counter() - t_start > min_time * len(models)):
                break
    return {k: batch / statistics.median(v) for k, v in times.items()}


def p_maxdiff(models: dict[str, Callable[..., Any]], device: str) -> dict[str, float]:
    """Largest |p - p_reference| per model on 8 clips (0 for the reference itself)."""
    patches, kpts = random_clips(8, torch.Generator().manual_seed(123))
    with torch.inference_mode():
        ps = {k: np.asarray(torch.as_tensor(m(patches.to(device), kpts.to(device))).float().cpu()).reshape(-1)
              for k, m in models.items()}
    ref = ps[REFERENCE]
    return {k: float(np.abs(p - ref).max()) for k, p in ps.items()}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--variants", nargs="+", default=["light", "base"])
    ap.add_argument("--modes", nargs="+", default=["paper"], help="graph modes (the shipped light is paper)")
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="one short pass (smoke test)")
    ap.add_argument("--no-reference", action="store_true", help="skip the official-style rows")
    ap.add_argument("--no-unfused", action="store_true", help="skip the unfused rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=ROOT / "models",
                    help="folder with ward-vsvig-<variant>.pt (else random init)")
    add_engine_options(ap)
    add_json_option(ap, "bench_vsvig")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    engines, skipped = engine_plan(args.engines, args.device)
    min_time, max_reps = (0.2, 3) if args.quick else (args.min_time, 200)
    load_before = os.getloadavg()
    gemm = gemm_gflops()
    rows, weights = [], {}
    for variant in args.variants:
        for mode in args.modes:
            ckpt, weights[f"{variant}/{mode}"] = vsvig_checkpoint(variant, mode, args.weights)
            model = load_vsvig(ckpt)
            gflop = count_gflops(model)
            impls: dict[str, Callable[..., Any]] = build_engines(engines, skipped, lambda b, p: load_vsvig_scorer(
                ckpt, device=args.device, backend=b, precision=p, num_threads=args.threads))  # type: ignore[arg-type]
            resolved = {k: str(v.engine) for k, v in impls.items()}
            if not args.device.startswith("cuda"):
                if not args.no_unfused:
                    impls["torch:fp32 unfused"] = model
                if not args.no_reference:
                    impls["official-style"] = OfficialStyle(model)
            diffs = p_maxdiff(impls, args.device)
            for batch in args.batches:
                for impl, cps in time_interleaved(impls, batch, min_time, max_reps, args.device).items():
                    rows.append({"variant": variant, "graph_mode": mode, "engine": impl, "batch": batch,
                                 "clips_per_s": round(cps, 1), "GFLOP_per_clip": round(gflop, 4),
                                 "GFLOP_per_s": round(cps * gflop, 2), "p_maxdiff": diffs[impl],
                                 "resolved": resolved.get(impl, "torch fp32 (reference formulation)"),
                                 "loadavg_1m": round(os.getloadavg()[0], 1)})
                    print(rows[-1], flush=True)
    ref = {(r["variant"], r["graph_mode"], r["batch"]): r["clips_per_s"] for r in rows if r["engine"] == REFERENCE}
    for r in rows:
        r["x_ref"] = round(r["clips_per_s"] / ref[(r["variant"], r["graph_mode"], r["batch"])], 2)
    extra = {"gemm_gflops_1024": round(gemm, 1), "gemm_gflops_end": round(gemm_gflops(), 1),
             "loadavg_before": load_before, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
             "loadavg_after": os.getloadavg(), "flush_denormal": True, "threads": args.threads,
             "device": args.device, "weights": weights, "skipped_engines": skipped,
             "note": "x_ref = clips/s over torch:fp32's, same variant, mode, batch and run"}
    print()
    out = report("bench_vsvig", rows, extra, json_path=args.json)
    print(f"GEMM 1024^3 fp32: {extra['gemm_gflops_1024']} GFLOP/s at start, {extra['gemm_gflops_end']} at end; "
          f"loadavg before {load_before[0]:.2f}, after {extra['loadavg_after'][0]:.2f}")
    return out


if __name__ == "__main__":
    main()
