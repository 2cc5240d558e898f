"""Pose stage: batched preprocessing on the network's device, Lightweight OpenPose, decoding.

:func:`preprocess` reproduces the original demo's input pipeline in torch (so it runs next to the
network, GPU or CPU), for a batch of frames of one size (one camera):

1. ``scale = height / H``; bilinear resize with OpenCV's sampling grid (half-pixel centres,
   source step ``1 / scale``, output ``round(H * scale) x round(W * scale)``), rounded to integer
   grey levels like ``cv2.resize`` on uint8 (max difference to OpenCV: 1 level);
2. BGR kept, ``(x - 128) / 256``;
3. padded with ``pad_value`` (0 = grey after normalising) to a multiple of ``stride``, width at
   least ``height``, centred, the odd pixel at the bottom/right.

:class:`PoseEstimator` runs preprocess -> network -> :func:`decode_poses_batch` and maps keypoints
back to frame pixels with the demo's formula ``(x_input - pad_left) / scale`` (as floats, without
the demo's ``int()`` truncation). It is what the serving layer and the dataset builder call.

The network call runs on one engine (:mod:`ward.vision.engines`): torch fp32 (the eager module),
torch bf16/fp16 (autocast), or OpenVINO on the cached ONNX export (:func:`ward.vision.export.pose_model_file`).
Preprocessing and decoding are the same torch/numpy code for every engine.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ward.vision.engines import EngineChoice, OpenVINORunner, cache_dir, resolve
from ward.vision.openpose import fuse_for_inference, load_openpose
from ward.vision.pose_decode import decode_poses_batch

Pad = tuple[int, int, int, int]
"""(top, left, bottom, right) in network-input pixels."""


def _as_batch(frames: Any) -> torch.Tensor:
    """(N, H, W, 3) uint8 tensor from an array/tensor or a sequence of (H, W, 3) frames, validated."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("no frames given: pass a (N, H, W, 3) uint8 BGR batch with N >= 1")
        shapes = {tuple(np.shape(f)) for f in frames}
        if len(shapes) > 1:
            raise ValueError(f"frames of different sizes in one batch: {sorted(shapes)}; batch frames of one "
                             "camera (one size) together, or resize them first")
        frames = torch.stack([f if isinstance(f, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(f))
                              for f in frames])
    elif isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    elif not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a numpy array, a torch tensor or a list of them, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) BGR (channels last, 3 channels), got shape {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 BGR as decoded by OpenCV, got dtype {frames.dtype}; "
                         "convert with .astype(np.uint8) only if the values are 0..255")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"empty frame batch of shape {tuple(frames.shape)}: every frame needs H, W >= 1")
    return frames


def padded_size(h: int, w: int, height: int = 256, stride: int = 8) -> tuple[float, tuple[int, int], Pad]:
    """(scale, resized (h, w), pad) for a frame of h x w pixels: the preprocessing arithmetic alone."""
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {h}x{w}")
    if height <= 0 or stride <= 0:
        raise ValueError(f"height and stride must be positive, got height={height}, stride={stride}")
    scale = height / h
    rh, rw = int(round(h * scale)), max(1, int(round(w * scale)))
    th = math.ceil(height / stride) * stride
    tw = math.ceil(max(rw, height) / stride) * stride
    top, left = (th - rh) // 2, (tw - rw) // 2
    return scale, (rh, rw), (top, left, th - rh - top, tw - rw - left)


def preprocess(frames: Any, height: int = 256, stride: int = 8, pad_value: float = 0.0,
               device: str | torch.device | None = None) -> tuple[torch.Tensor, float, Pad]:
    """BGR uint8 frames (N, H, W, 3) -> network input (N, 3, h, w) float32, scale, pad.

    ``device`` defaults to the frames' device; only the uint8 frames travel there.
    """
    batch = _as_batch(frames)
    if device is not None:
        batch = batch.to(device, non_blocking=True)
    _, h, w, _ = batch.shape
    scale, (rh, rw), pad = padded_size(h, w, height, stride)
    x = batch.permute(0, 3, 1, 2).float()
    # aten op with both the output size and the scale: OpenCV's grid (step 1/scale) and its rounding
    x = torch.ops.aten.upsample_bilinear2d(x, [rh, rw], False, scale, scale).round_()
    x = (x - 128.0) / 256.0
    top, left, bottom, right = pad
    x = nn.functional.pad(x, (left, right, top, bottom), value=float(pad_value))
    return x.contiguous(), scale, pad


class OpenVINOPose:
    """The pose network on OpenVINO: ``x (N, 3, h, w) float32 -> (heatmaps, pafs)`` as numpy.

    By default one fully dynamic model serves every input size. With ``static_shapes`` one model
    is compiled per input (h, w), reshaped to that size with a dynamic batch (a camera's size never
    changes, so once per camera size); measured no faster here (docs/inference.md), so it is off.
    """

    def __init__(self, model_file: str | Path, precision: str = "fp32", *, num_threads: int | None = None,
                 static_shapes: bool = False) -> None:
        self.model_file = Path(model_file)
        self.precision = precision
        self.num_threads = num_threads
        self.static_shapes = static_shapes
        self._runners: dict[tuple[int, int], OpenVINORunner] = {}
        self._cache = cache_dir() / "openvino"

    def runner(self, h: int, w: int) -> OpenVINORunner:
        key = (h, w) if self.static_shapes else (0, 0)
        run = self._runners.get(key)
        if run is None:
            import openvino as ov  # noqa: PLC0415

            model: Any = self.model_file
            if self.static_shapes:
                model = ov.Core().read_model(str(self.model_file))
                model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([-1, 3, h, w])})
            run = self._runners[key] = OpenVINORunner(model, self.precision,  # type: ignore[arg-type]
                                                      num_threads=self.num_threads, cache=self._cache)
        return run

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.runner(int(x.shape[2]), int(x.shape[3]))(x)


class PoseEstimator:
    """Frames -> people per frame, keypoints in frame pixels.

    ``model`` returns ``(heatmaps, pafs)`` (see :mod:`ward.vision.openpose`); pass a
    :func:`fuse_for_inference` copy for speed. Call with a batch of same-size BGR uint8 frames;
    returns, per frame, a list of (18, 3) float32 arrays ``(x, y, score)``, all -1 for a missing joint.
    ``engine`` says how the network runs (default: torch fp32, the module as given); an OpenVINO
    engine needs ``runner`` (an :class:`OpenVINOPose`), and ``model`` may then be None.
    ``refine`` (default on): joints at their sub-cell heatmap peak rather than on the decoder's
    ``8 / upsample``-px grid (:func:`~ward.vision.pose_decode.refine_peaks`); off reproduces the
    official demo's coordinates.
    """

    def __init__(self, model: nn.Module | None, height: int = 256, device: str | torch.device = "cpu",
                 upsample: int = 4, *, engine: EngineChoice | None = None,
                 runner: Any = None, refine: bool = True) -> None:
        if height <= 0 or height % 8:
            raise ValueError(f"height must be a positive multiple of 8 (network stride), got {height}")
        if upsample not in (1, 2, 4, 8):
            raise ValueError(f"upsample must be 1, 2, 4 or 8, got {upsample}")
        self.device = torch.device(device)
        self.engine = engine or EngineChoice("torch", "fp32", str(self.device), "torch module given")
        if self.engine.backend == "openvino" and runner is None:
            raise ValueError("an openvino engine needs runner= (an OpenVINOPose); use PoseEstimator.from_checkpoint")
        self.runner = runner if self.engine.backend == "openvino" else None
        if model is None and self.runner is None:
            raise ValueError("model is required for the torch backend")
        self.model = model.to(self.device).eval() if model is not None else None
        self.height = height
        self.upsample = upsample
        self.refine = refine
        self.channels_last = bool(getattr(model, "channels_last", False))

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: str | None = None, refinement_stages: int | None = None,
                        *, height: int = 256, device: str = "cpu", upsample: int = 4, backend: str = "auto",
                        precision: str = "auto", num_threads: int | None = None, fuse: bool = True,
                        trusted: bool = False, refine: bool = True) -> "PoseEstimator":
        """Load weights strictly (see :func:`load_openpose`) and run them on the engine that
        :func:`ward.vision.engines.resolve` picks for ``backend``/``precision``/``device``.

        torch: BN folded for inference (``fuse``); OpenVINO: the cached, parity-checked ONNX export
        (int8: the quantized IR). ``num_threads``: OpenVINO's inference threads (torch uses the
        process's ``torch.set_num_threads``).
        """
        engine = resolve(backend, precision, device)  # type: ignore[arg-type]
        if engine.backend == "openvino":
            from ward.vision.export import pose_model_file  # noqa: PLC0415

            file = pose_model_file(path, config=config, refinement_stages=refinement_stages,
                                   precision=engine.precision, height=height, trusted=trusted)
            return cls(None, height=height, device="cpu", upsample=upsample, engine=engine, refine=refine,
                       runner=OpenVINOPose(file, engine.precision, num_threads=num_threads))
        model = load_openpose(path, config, refinement_stages, device="cpu", trusted=trusted)
        if fuse:
            model = fuse_for_inference(model, channels_last=torch.device(device).type == "cpu")
        return cls(model, height=height, device=device, upsample=upsample, engine=engine, refine=refine)

    @torch.inference_mode()
    def infer(self, frames: Any) -> tuple[torch.Tensor, torch.Tensor, float, Pad]:
        """Network outputs (heatmaps, pafs) at stride 8 for a batch, plus the preprocessing scale/pad."""
        x, scale, pad = preprocess(frames, self.height, device=self.device)
        if self.runner is not None:
            heatmaps, pafs = (torch.from_numpy(o) for o in self.runner(x.cpu().numpy()))
            return heatmaps, pafs, scale, pad
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.engine.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.engine.precision == "bf16" else torch.float16
            with torch.autocast(self.device.type, dtype=dtype):
                heatmaps, pafs = self.model(x)  # type: ignore[misc]
            return heatmaps.float(), pafs.float(), scale, pad
        heatmaps, pafs = self.model(x)  # type: ignore[misc]
        return heatmaps, pafs, scale, pad

    def __call__(self, frames: Any) -> list[list[np.ndarray]]:
        heatmaps, pafs, scale, pad = self.infer(frames)
        people = decode_poses_batch(heatmaps, pafs, self.upsample, refine=self.refine)
        return [[to_frame_pixels(p, scale, pad) for p in frame_people] for frame_people in people]


def to_frame_pixels(person: np.ndarray, scale: float, pad: Pad) -> np.ndarray:
    """(18, 3) network-input keypoints -> frame pixels; missing joints (-1) stay -1."""
    out = person.copy()
    present = person[:, 2] >= 0
    out[present, 0] = (person[present, 0] - pad[1]) / scale
    out[present, 1] = (person[present, 1] - pad[0]) / scale
    return out

