"""Inference engines: which runtime and precision run a network, and the OpenVINO runner.

Both model families (pose, VSViG) are served by one of two backends:

* ``torch``: eager PyTorch (BN folded, channels-last on CPU); fp32, or bf16/fp16 autocast;
* ``openvino``: the network exported to ONNX (:mod:`ward.vision.export`) and compiled by OpenVINO's
  CPU plugin, with an inference precision hint (fp32 or bf16), or quantized to int8 (NNCF).

:func:`resolve` turns what the configuration asks for (``auto | torch | openvino`` and
``auto | fp32 | bf16 | int8``) into one :class:`EngineChoice` for a device, with the reason, or a
:class:`EngineError` that says what to change:

* CUDA: ``auto`` is torch with bf16 autocast where the GPU supports it (fp16 otherwise);
* CPU: ``auto`` is OpenVINO (when installed) in fp32. bf16 is not chosen by ``auto``: measured on
  an AVX-512 BF16 CPU it misses the accuracy gates, even with the decoder's sub-cell peak
  refinement (pose: 97.3 % of the patient's joints within 1 px of fp32 on 96 validation frames,
  gate 99 %, the rest mostly joints that bf16 does not find at all; VSViG |dp| up to 0.057, gate
  0.02; docs/inference.md), and on an AMX CPU too (pose 97.2-97.9 %, VSViG |dp| 0.026; there it
  runs the official pose stage at 5.5-6x torch fp32), so it must be asked for (and only runs where the CPU has native bf16:
  AMX or AVX-512 BF16). int8 is never
  chosen by ``auto`` either: it must be asked for, and its model passes the accuracy gate when it
  is built (:mod:`ward.vision.export`).

Compiled and exported models live under :func:`cache_dir` in a folder named after the checkpoint's
SHA-256 (:func:`checkpoint_key`), so a changed checkpoint never reuses a stale export.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

Backend = Literal["auto", "torch", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
ResolvedBackend = Literal["torch", "openvino"]
ResolvedPrecision = Literal["fp32", "bf16", "fp16", "int8"]

CACHE_ENV = "WARD_CACHE_DIR"


class EngineError(ValueError):
    """A backend/precision that cannot run here, with what to do instead."""


@dataclass(frozen=True)
class EngineChoice:
    """The runtime and precision a network runs with, and why."""

    backend: ResolvedBackend
    precision: ResolvedPrecision
    device: str
    reason: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision} on {self.device} ({self.reason})"


# --------------------------------------------------------------------------------------- hardware

@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_native_bf16() -> bool:
    """True where the CPU computes bf16 natively: AMX (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------- choice

def resolve(backend: Backend = "auto", precision: Precision = "auto", device: str = "cpu", *,
            native_bf16: bool | None = None, have_openvino: bool | None = None,
            cuda_bf16: bool | None = None) -> EngineChoice:
    """The engine for ``device`` given what the configuration asks for (see the module docstring).

    The keyword-only arguments override what this machine reports (for tests and for checking a
    configuration meant for another node).
    """
    dev = str(device)
    kind = dev.split(":", 1)[0]
    if backend not in ("auto", "torch", "openvino"):
        raise EngineError(f"unknown backend {backend!r}: use auto, torch or openvino")
    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise EngineError(f"unknown precision {precision!r}: use auto, fp32, bf16 or int8")
    if kind == "cuda":
        if backend == "openvino":
            raise EngineError(f"backend openvino runs on CPUs here, not on {dev}: use backend auto or torch "
                              "for an NVIDIA GPU, or device cpu")
        if precision == "int8":
            raise EngineError("precision int8 is an OpenVINO CPU model: on a GPU use auto, fp32 or bf16")
        if precision == "auto":
            if cuda_bf16 is None:
                import torch  # noqa: PLC0415

                cuda_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
            return EngineChoice("torch", "bf16" if cuda_bf16 else "fp16", dev,
                                "auto on CUDA: torch autocast " + ("bf16" if cuda_bf16 else "fp16 (no bf16 on this GPU)"))
        return EngineChoice("torch", precision, dev, f"{precision} asked for")
    if kind != "cpu":
        raise EngineError(f"unsupported device {dev!r}: use cpu or cuda[:N]")
    native = cpu_native_bf16() if native_bf16 is None else native_bf16
    ov_ok = openvino_available() if have_openvino is None else have_openvino
    if backend == "openvino" and not ov_ok:
        raise EngineError("backend openvino asked for but the openvino package is not installed: "
                          "`pip install openvino` (it is in ward's dependencies), or use backend torch")
    chosen: ResolvedBackend
    if backend == "auto":
        chosen = "openvino" if ov_ok else "torch"
        why = "auto on CPU: " + ("OpenVINO" if ov_ok else "torch (openvino not installed)")
    else:
        chosen = backend
        why = f"{backend} asked for"
    if precision == "int8" and chosen != "openvino":
        raise EngineError("precision int8 needs the openvino backend (post-training quantization with NNCF): "
                          "set backend openvino or auto, or use precision fp32/bf16")
    if precision == "bf16" and not native:
        raise EngineError("precision bf16 asked for, but this CPU has no native bf16 (neither AMX nor AVX-512 "
                          "BF16), where it would be slower than fp32: use precision auto or fp32")
    if precision == "auto":
        prec: ResolvedPrecision = "fp32"
        why += ", fp32 (" + ("bf16 misses the accuracy gates: docs/inference.md" if native
                             else "no native bf16 on this CPU") + ")"
    else:
        prec = precision
        why += f", {precision} asked for"
    return EngineChoice(chosen, prec, dev, why)


# ----------------------------------------------------------------------------------------- cache

def cache_dir() -> Path:
    """Where exports and compiled models are kept: ``$WARD_CACHE_DIR`` or ``~/.cache/ward``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ward"


def checkpoint_key(path: str | Path) -> str:
    """First 16 hex digits of the checkpoint file's SHA-256: names its cache folder."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ OpenVINO

_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""OpenVINO's INFERENCE_PRECISION_HINT per precision (int8: quantized ops, the rest in f32)."""


class OpenVINORunner:
    """A model file (ONNX or OpenVINO IR) compiled for the CPU; call with numpy inputs, get outputs.

    Thread-safe (one infer request, one lock: a replica runs one batch at a time anyway). Compiled
    blobs are cached by OpenVINO in ``cache`` (``CACHE_DIR``), so a restart skips compilation.
    """

    def __init__(self, model: str | Path | Any, precision: ResolvedPrecision = "fp32", *,
                 num_threads: int | None = None, cache: str | Path | None = None) -> None:
        if precision not in _OV_PRECISION:
            raise EngineError(f"OpenVINO runs fp32, bf16 or int8 models, not {precision!r}")
        import openvino as ov  # noqa: PLC0415

        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        # No thread pinning: OpenVINO pins its threads to cores it picks by itself, so two processes
        # (Ray replicas, eval/generation jobs) land on the same core, and on 2-core VMs even one
        # process's 2 threads did: measured 16 -> 37 frames/s, small pose, 2 threads (docs/inference.md).
        config["ENABLE_CPU_PINNING"] = False
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        if cache is not None:
            Path(cache).mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache)
        net = core.read_model(str(model)) if isinstance(model, (str, Path)) else model
        self.precision = precision
        self.compiled = core.compile_model(net, "CPU", config)
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]
        self.outputs = [p.get_any_name() for p in self.compiled.outputs]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"model takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), got {len(inputs)}")
        with self._lock:
            res = self._request.infer([np.ascontiguousarray(x) for x in inputs])
            # copies: the request reuses its output buffers on the next call
            return tuple(np.array(res[o]) for o in self.compiled.outputs)

    @property
    def inference_precision(self) -> str:
        """What OpenVINO actually runs (``f32``, ``bf16``)."""
        return str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
