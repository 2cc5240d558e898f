"""VSViG inference throughput on CPU: clips/s for light/base at batch 1, 8, 32, both graph modes.

    .venv/bin/python benchmarks/bench_vsvig.py [--batches 1 8 32] [--variants light base] [--quick]

Weights are calibrated (BN running statistics from random-ish clips, see
``ward.vision.vsvig.calibrate_batchnorm``), never fresh init, and denormals are flushed: badly
scaled weights slow CPUs down 10-50x. Each configuration is timed as "ward" (BN folded into the
convs, channels_last) and "unfused" (eval model as loaded); the "official-style" row runs the same
weights through the official formulation of the temporal conv (a (3,3,1) Conv3d over a
replicate-padded singleton axis, NCHW, no folding) in the same process for a side-by-side
reference. Models are timed in turn (A, B, A, B...) and clips/s comes from the median forward time,
so load swings on the shared machine hit all rows alike. Achieved GFLOP/s uses FLOPs counted by torch.utils.flop_counter at batch 1, next to an
fp32 GEMM measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

# OpenMP threads that spin-wait stall badly when other processes share the 2 cores (a 2-thread
# forward measured 10x slower at load 9); must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import add_json_option, report  # noqa: E402

from ward.vision.vsvig import Part3DCNN, VSViG, build_vsvig, calibrate_batchnorm, random_clips  # noqa: E402


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


def time_interleaved(models: dict[str, torch.nn.Module], batch: int, min_time: float,
                     max_reps: int) -> dict[str, float]:
    """clips/s per model from the median time of single forwards taken in turn (A, B, A, B...):
    round-robin plus the median keeps load swings on a shared machine from favouring one model."""
    patches, kpts = random_clips(batch, torch.Generator().manual_seed(batch))
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(patches, kpts)  # warm-up (primitive creation, caches)
        t_start = time.perf_counter()
        while True:
            for name, m in models.items():
                t0 = time.perf_counter()
                m(patches, kpts)
                times[name].append(time.perf_counter() - t0)
            n = len(next(iter(times.values())))
            if n >= max_reps or (n >= 3 and time.perf_counter() - t_start > min_time * len(models)):
                break
    return {k: batch / statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--variants", nargs="+", default=["light", "base"])
    ap.add_argument("--modes", nargs="+", default=["paper", "official"])
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="one short pass (smoke test)")
    ap.add_argument("--no-reference", action="store_true", help="skip the official-style rows")
    ap.add_argument("--no-unfused", action="store_true", help="skip the unfused rows")
    ap.add_argument("--threads", type=int, default=2)
    add_json_option(ap, "bench_vsvig")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    min_time, max_reps = (0.2, 3) if args.quick else (args.min_time, 200)
    load_before = os.getloadavg()
    gemm = gemm_gflops()
    rows = []
    for variant in args.variants:
        for mode in args.modes:
            torch.manual_seed(0)
            model = calibrate_batchnorm(build_vsvig(variant, mode), n_batches=2, batch_size=4)  # type: ignore[arg-type]
            gflop = count_gflops(model)
            impls: dict[str, torch.nn.Module] = {"ward": copy.deepcopy(model).fuse_for_inference()}
            if not args.no_unfused:
                impls["unfused"] = model
            if not args.no_reference:
                impls["official-style"] = OfficialStyle(model)
            for batch in args.batches:
                for impl, cps in time_interleaved(impls, batch, min_time, max_reps).items():
                    rows.append({"variant": variant, "graph_mode": mode, "impl": impl, "batch": batch,
                                 "clips_per_s": round(cps, 1), "GFLOP_per_clip": round(gflop, 4),
                                 "GFLOP_per_s": round(cps * gflop, 2), "loadavg_1m": round(os.getloadavg()[0], 1)})
                    print(rows[-1], flush=True)
    extra = {"gemm_gflops_1024": round(gemm, 1), "gemm_gflops_end": round(gemm_gflops(), 1),
             "loadavg_before": load_before, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg_after": os.getloadavg(), "flush_denormal": True,
             "weights": "calibrate_batchnorm(n_batches=2, batch_size=4) on random-ish clips"}
    print()
    report("bench_vsvig", rows, extra, json_path=args.json)
    print(f"GEMM 1024^3 fp32: {extra['gemm_gflops_1024']} GFLOP/s at start, {extra['gemm_gflops_end']} at end; "
          f"loadavg before {load_before[0]:.2f}, after {extra['loadavg_after'][0]:.2f}")


if __name__ == "__main__":
    main()
