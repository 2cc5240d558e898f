"""ONNX export of the two model families, checked against torch, and the per-checkpoint model cache.

OpenVINO (:class:`ward.vision.engines.OpenVINORunner`) runs an ONNX file, not a torch module. This
module turns a checkpoint into that file once and keeps it: the export starts from the fp32 eval
model with BatchNorm folded (the inference graph, not the training one), runs the ONNX file through
OpenVINO in fp32 on inputs of another batch size (and, for pose, another width) than the traced
ones, and refuses the file (:class:`ParityError`) when its outputs drift from torch's past a
tolerance. A wrong export therefore fails loudly at the first start, never silently in the ward.

Files live under ``cache_dir()/<checkpoint_key>/`` (:mod:`ward.vision.engines`): a changed
checkpoint gets a new folder. Every file is written under a temporary name and renamed into place,
so no reader ever sees half a file; and the build of each cached file holds an exclusive lock
(``fcntl.flock`` on ``<file>.lock`` next to it), so replicas starting at once on one machine export
(or quantize) a checkpoint once: the others wait for the lock and then find the file. int8 models come from :mod:`ward.vision.quantize`, which calibrates on
simulated data and enforces its own accuracy gate.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import os
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ward.vision.engines import EngineError, cache_dir, checkpoint_key

POSE_INPUTS = ("input",)
POSE_OUTPUTS = ("heatmaps", "pafs")
VSVIG_INPUTS = ("patches", "kpts")
VSVIG_OUTPUTS = ("p",)
OPSET = 17

POSE_TOLERANCE = 1e-3
"""Max |heatmap/PAF difference| between the ONNX file (OpenVINO fp32) and torch fp32."""
VSVIG_TOLERANCE = 0.02
"""Max |p difference| (the engines' accuracy gate): the calibrated official VSViG amplifies float32 rounding
(a random-weight official-mode base model exports at 6e-3, see vsvig.py)."""


class ParityError(EngineError):
    """An exported model whose outputs differ from torch fp32 past the tolerance."""


# ------------------------------------------------------------------------------------------ helpers

def _tmp_sibling(path: Path) -> Path:
    """A unique temporary name in ``path``'s folder with the same suffix (OpenVINO picks its reader by it)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _onnx_export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: Sequence[str],
                 outputs: Sequence[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation and tracer warnings
        torch.onnx.export(model, args, str(path), dynamo=False, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=dynamic_axes, opset_version=OPSET)


def check_parity(onnx_file: str | Path, reference: Callable[..., Sequence[torch.Tensor]],
                 inputs: Sequence[torch.Tensor], names: Sequence[str], tolerance: float,
                 what: str) -> dict[str, float]:
    """Max |difference| per output between the file run by OpenVINO fp32 and ``reference(*inputs)``.

    Raises :class:`ParityError` naming the output and the difference when one exceeds ``tolerance``.
    """
    from ward.vision.engines import OpenVINORunner  # noqa: PLC0415

    with torch.no_grad():
        ref = [t.detach().float().cpu().numpy() for t in reference(*inputs)]
    got = OpenVINORunner(onnx_file, "fp32")(*[t.numpy() for t in inputs])
    diffs: dict[str, float] = {}
    for name, r, g in zip(names, ref, got, strict=True):
        if r.shape != g.shape:
            raise ParityError(f"{what}: exported output {name} has shape {g.shape}, torch gives {r.shape}")
        d = float(np.max(np.abs(r - g))) if r.size else 0.0
        diffs[name] = d if np.isfinite(d) else float("inf")
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        raise ParityError(f"{what}: the ONNX export differs from torch fp32 by "
                          + ", ".join(f"{k} {v:.3g}" for k, v in bad.items())
                          + f" (max abs, tolerance {tolerance:g}); the model has ops or control flow the "
                          "exporter traced differently: do not serve this file, report the model and torch version")
    return diffs


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock for building ``path`` (blocks while another process builds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cached(path: Path, build: Callable[[], Any]) -> Path:
    """``path``, built by ``build()`` first unless it exists; one builder at a time (see :func:`build_lock`)."""
    if not path.is_file():
        with build_lock(path):
            if not path.is_file():  # another process may have built it while we waited
                build()
    return path


def _finish(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------- pose

def _pose_inputs(height: int, gen: torch.Generator) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A traced input (1, 3, height, 16:9 width) and a parity input of another batch size and width."""
    w = -(-height * 16 // 9 // 8) * 8
    trace = torch.rand(1, 3, height, w, generator=gen) - 0.5
    check = torch.rand(2, 3, height, height + 8 * max(1, height // 32), generator=gen) - 0.5
    return trace, (check,)


def export_pose_onnx(model: nn.Module, path: str | Path, *, height: int = 256,
                     tolerance: float = POSE_TOLERANCE) -> Path:
    """Export a pose network (``x -> (heatmaps, pafs)``) to ONNX, dynamic batch/height/width.

    BN is folded on a copy (``fuse_for_inference``, NCHW); the file is checked against that copy
    in torch fp32 before it replaces ``path``. Returns ``path``; attaches the differences as
    ``export_pose_onnx.last_parity`` (for the CLI).
    """
    from ward.vision.openpose import fuse_for_inference  # noqa: PLC0415

    if height <= 0 or height % 8:
        raise ValueError(f"height must be a positive multiple of 8 (network stride), got {height}")
    net = fuse_for_inference(model.float().cpu(), channels_last=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    gen = torch.Generator().manual_seed(0)
    trace, check = _pose_inputs(height, gen)
    axes = {"input": {0: "batch", 2: "height", 3: "width"},
            "heatmaps": {0: "batch", 2: "grid_h", 3: "grid_w"}, "pafs": {0: "batch", 2: "grid_h", 3: "grid_w"}}
    try:
        _onnx_export(net, (trace,), tmp, POSE_INPUTS, POSE_OUTPUTS, axes)
        export_pose_onnx.last_parity = check_parity(tmp, net, check, POSE_OUTPUTS, tolerance, "pose export")
        return _finish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


export_pose_onnx.last_parity = {}  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------------------- VSViG

def export_vsvig_onnx(model: nn.Module, path: str | Path, *, tolerance: float = VSVIG_TOLERANCE) -> Path:
    """Export VSViG (``(patches, kpts) -> p``) to ONNX, dynamic batch, checked against torch fp32.

    Exports a copy prepared with ``fuse_for_inference(channels_last=False)`` (the NCHW forward, BN
    folded where the torch path folds it); the caller's model is untouched. Parity is checked on a
    batch of 3 random image-like clips (traced with 2) against the torch path the serving layer
    runs (``fuse_for_inference()`` with its defaults).
    """
    from ward.vision.vsvig import random_clips  # noqa: PLC0415

    net = copy.deepcopy(model).float().cpu()
    ref = copy.deepcopy(net).fuse_for_inference()
    net.fuse_for_inference(channels_last=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    gen = torch.Generator().manual_seed(0)
    trace = random_clips(2, generator=gen)
    check = random_clips(3, generator=gen)
    axes = {"patches": {0: "batch"}, "kpts": {0: "batch"}, "p": {0: "batch"}}
    try:
        _onnx_export(net, trace, tmp, VSVIG_INPUTS, VSVIG_OUTPUTS, axes)
        export_vsvig_onnx.last_parity = check_parity(tmp, lambda p, k: (ref(p, k),), check, VSVIG_OUTPUTS,
                                                     tolerance, "VSViG export")
        return _finish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


export_vsvig_onnx.last_parity = {}  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------------------- cache

def _check_precision(precision: str) -> None:
    if precision not in ("fp32", "bf16", "int8"):
        raise EngineError(f"model files exist for precision fp32, bf16 or int8, not {precision!r}")


def int8_module() -> Any:
    """ward.vision.quantize, or EngineError when it is not there (int8 is optional)."""
    try:
        from ward.vision import quantize  # noqa: PLC0415
    except ImportError as exc:
        if exc.name != "ward.vision.quantize":
            raise
        raise EngineError("int8 not available yet (ward.vision.quantize is missing): use precision fp32 "
                          "or bf16") from None
    return quantize


def _tag(value: Any) -> str:
    """A short file-name token for an optional argument (``auto`` when None)."""
    if value is None:
        return "auto"
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return checkpoint_key(value)[:8]
    if isinstance(value, (str, int)):
        return str(value).replace(os.sep, "_")
    if hasattr(value, "name"):  # an OpenPoseConfig
        return str(value.name)
    data = torch.as_tensor(value).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:8]


def pose_onnx_path(checkpoint: str | Path, *, config: str | None = None,
                   refinement_stages: int | None = None) -> Path:
    """Where the fp32 ONNX of a pose checkpoint is cached (it may not exist yet)."""
    return cache_dir() / checkpoint_key(checkpoint) / f"pose-{_tag(config)}-r{_tag(refinement_stages)}.onnx"


def pose_model_file(checkpoint: str | Path, *, config: str | None = None, refinement_stages: int | None = None,
                    precision: str = "fp32", height: int = 256, trusted: bool = False) -> Path:
    """The cached ONNX (fp32, bf16: one dynamic fp32 file) or int8 IR of a pose checkpoint.

    Exported on first use (see :func:`export_pose_onnx`); int8 is quantized from the fp32 file by
    :func:`ward.vision.quantize.quantize_pose`, calibrated at input ``height``.
    """
    _check_precision(precision)
    onnx = pose_onnx_path(checkpoint, config=config, refinement_stages=refinement_stages)

    def export() -> None:
        from ward.vision.openpose import load_openpose  # noqa: PLC0415

        export_pose_onnx(load_openpose(checkpoint, config, refinement_stages, trusted=trusted), onnx, height=height)

    _cached(onnx, export)
    if precision != "int8":
        return onnx
    xml = onnx.with_name(f"{onnx.stem}-int8-h{height}.xml")
    return _cached(xml, lambda: int8_module().quantize_pose(onnx, xml, height))


def vsvig_onnx_path(checkpoint: str | Path, *, variant: str | None = None, graph_mode: str | None = None,
                    partition_order: Any = None) -> Path:
    """Where the fp32 ONNX of a VSViG checkpoint is cached (it may not exist yet)."""
    return (cache_dir() / checkpoint_key(checkpoint)
            / f"vsvig-{_tag(variant)}-{_tag(graph_mode)}-o{_tag(partition_order)}.onnx")


def vsvig_model_file(checkpoint: str | Path, *, variant: str | None = None, graph_mode: str | None = None,
                     partition_order: Any = None, precision: str = "fp32") -> Path:
    """The cached ONNX (fp32, bf16) or int8 IR of a VSViG checkpoint, exported on first use."""
    _check_precision(precision)
    onnx = vsvig_onnx_path(checkpoint, variant=variant, graph_mode=graph_mode, partition_order=partition_order)

    def export() -> None:
        from ward.vision.vsvig import load_vsvig  # noqa: PLC0415

        model = load_vsvig(checkpoint, variant=variant, graph_mode=graph_mode,  # type: ignore[arg-type]
                           partition_order=partition_order)
        export_vsvig_onnx(model, onnx)

    _cached(onnx, export)
    if precision != "int8":
        return onnx
    xml = onnx.with_name(f"{onnx.stem}-int8.xml")
    return _cached(xml, lambda: int8_module().quantize_vsvig(onnx, xml))
