"""fp32 or bf16 autocast for a training step: asked for, or measured on this machine (``auto``).

Both trainers (``ward.train.vsvig``, ``ward.train.pose``) choose the same way: bf16 only where the
device computes it natively (CUDA with bf16, or a CPU with AVX512-BF16 / AMX) and, on a CPU, only
when a measured forward+backward step is at least 10 % faster than fp32.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from ward.vision.engines import cpu_native_bf16

__all__ = ["choose_precision", "step_seconds"]

LossFn = Callable[[bool], torch.Tensor]
"""One training forward on a fixed probe batch: ``loss_fn(bf16)`` -> scalar loss (autocast inside)."""


def step_seconds(model: torch.nn.Module, loss_fn: LossFn, bf16: bool, reps: int = 2) -> float:
    """Best seconds of one forward+backward (weights unchanged: no optimiser step)."""
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms up
        t0 = time.perf_counter()
        loss_fn(bf16).backward()
        best = min(best, time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return best


def choose_precision(requested: str, model: torch.nn.Module, loss_fn: LossFn, dev: torch.device,
                     what: str = "step") -> tuple[str, dict[str, Any]]:
    """fp32 or bf16 for training, and why (the measured step times when measured). ``what`` names
    the probe in the reason, e.g. "step of 64 clips"."""
    if requested not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {requested!r}")
    if requested != "auto":
        return requested, {"reason": "requested"}
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ("bf16" if ok else "fp32"), {"reason": "CUDA " + ("supports" if ok else "lacks") + " bf16"}
    if not cpu_native_bf16():
        return "fp32", {"reason": "CPU without native bf16 (avx512_bf16/amx_bf16)"}
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()  # timed as trained; the BN statistics the probe updates are put back after it
    for bf in (False, True, False, True):  # warm-up: first calls of either are slow (kernels, allocations)
        step_seconds(model, loss_fn, bf, reps=0)
    t32 = t16 = float("inf")
    for _ in range(2):  # alternated, the best of each
        t32 = min(t32, step_seconds(model, loss_fn, False, reps=1))
        t16 = min(t16, step_seconds(model, loss_fn, True, reps=1))
    model.load_state_dict(saved)
    pick = "bf16" if t16 < 0.9 * t32 else "fp32"
    return pick, {"reason": f"measured: fp32 {t32:.3f} s, bf16 {t16:.3f} s per {what}",
                  "fp32_step_s": t32, "bf16_step_s": t16}
