"""VSViG scoring on the engine the machine suits: one callable for torch and OpenVINO.

The serving layer and the tools score clips without caring how the network runs: a
:class:`VSViGScorer` takes the inputs the torch VSViG forward takes (patches on the 0..255 scale,
uint8 or float, and keypoints; numpy or torch) and returns p per clip as numpy. The torch fp32
engine is the path the serving layer ran before engines existed (``fuse_for_inference()``, same
float32 conversion), so its p is unchanged; OpenVINO runs the cached, parity-checked ONNX export
(:func:`ward.vision.export.vsvig_model_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ward.vision.engines import EngineChoice, OpenVINORunner, cache_dir, resolve


def _as_float(x: Any, device: torch.device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=torch.float32)


class VSViGScorer:
    """``scorer(patches (B,30,15,3,32,32), kpts (B,30,15,3)) -> p (B,)`` float32 numpy."""

    def __init__(self, engine: EngineChoice, *, model: torch.nn.Module | None = None, runner: Any = None) -> None:
        if (model is None) == (runner is None):
            raise ValueError("give exactly one of model= (torch) and runner= (OpenVINO)")
        self.engine = engine
        self.model = model
        self.runner = runner
        self.device = torch.device(engine.device)

    def __call__(self, patches: Any, kpts: Any) -> np.ndarray:
        if self.runner is not None:
            p = np.asarray(patches.cpu() if isinstance(patches, torch.Tensor) else patches, np.float32)
            k = np.asarray(kpts.cpu() if isinstance(kpts, torch.Tensor) else kpts, np.float32)
            return np.asarray(self.runner(p, k)[0], np.float32).reshape(-1)
        p, k = _as_float(patches, self.device), _as_float(kpts, self.device)
        with torch.inference_mode():
            if self.engine.precision in ("bf16", "fp16"):
                dtype = torch.bfloat16 if self.engine.precision == "bf16" else torch.float16
                with torch.autocast(self.device.type, dtype=dtype):
                    probs = self.model(p, k)  # type: ignore[misc]
            else:
                probs = self.model(p, k)  # type: ignore[misc]
        return probs.detach().float().cpu().numpy().reshape(-1)


def load_vsvig_scorer(path: str | Path, *, variant: str | None = None, graph_mode: str | None = None,
                      partition_order: Any = None, device: str = "cpu", backend: str = "auto",
                      precision: str = "auto", num_threads: int | None = None) -> VSViGScorer:
    """A scorer for a VSViG checkpoint (official .pth or ward checkpoint, see ``load_vsvig``) on the
    engine :func:`ward.vision.engines.resolve` picks for ``backend``/``precision``/``device``.

    ``num_threads``: OpenVINO's inference threads (torch uses the process's ``torch.set_num_threads``)."""
    engine = resolve(backend, precision, device)  # type: ignore[arg-type]
    if engine.backend == "openvino":
        from ward.vision.export import vsvig_model_file  # noqa: PLC0415

        file = vsvig_model_file(path, variant=variant, graph_mode=graph_mode, partition_order=partition_order,
                                precision=engine.precision)
        return VSViGScorer(engine, runner=OpenVINORunner(file, engine.precision, num_threads=num_threads,
                                                         cache=cache_dir() / "openvino"))
    from ward.vision.vsvig import load_vsvig  # noqa: PLC0415

    dev = torch.device(device)
    net = load_vsvig(path, variant=variant, graph_mode=graph_mode, partition_order=partition_order,  # type: ignore[arg-type]
                     device=dev)
    return VSViGScorer(engine, model=net.fuse_for_inference(channels_last=dev.type == "cpu"))
