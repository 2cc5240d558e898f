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
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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


class PoseEstimator:
    """Frames -> people per frame, keypoints in frame pixels.

    ``model`` returns ``(heatmaps, pafs)`` (see :mod:`ward.vision.openpose`); pass a
    :func:`fuse_for_inference` copy for speed. Call with a batch of same-size BGR uint8 frames;
    returns, per frame, a list of (18, 3) float32 arrays ``(x, y, score)``, all -1 for a missing joint.
    """

    def __init__(self, model: nn.Module, height: int = 256, device: str | torch.device = "cpu",
                 upsample: int = 4) -> None:
        if height <= 0 or height % 8:
            raise ValueError(f"height must be a positive multiple of 8 (network stride), got {height}")
        if upsample not in (1, 2, 4, 8):
            raise ValueError(f"upsample must be 1, 2, 4 or 8, got {upsample}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.height = height
        self.upsample = upsample
        self.channels_last = bool(getattr(model, "channels_last", False))

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: str | None = None, num_refinement_stages: int | None = None,
                        *, height: int = 256, device: str = "cpu", upsample: int = 4, fuse: bool = True,
                        trusted: bool = False) -> "PoseEstimator":
        """Load weights strictly (see :func:`load_openpose`), fold BN for inference, wrap."""
        model = load_openpose(path, config, num_refinement_stages, device="cpu", trusted=trusted)
        if fuse:
            model = fuse_for_inference(model, channels_last=torch.device(device).type == "cpu")
        return cls(model, height=height, device=device, upsample=upsample)

    @torch.inference_mode()
    def infer(self, frames: Any) -> tuple[torch.Tensor, torch.Tensor, float, Pad]:
        """Network outputs (heatmaps, pafs) at stride 8 for a batch, plus the preprocessing scale/pad."""
        x, scale, pad = preprocess(frames, self.height, device=self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        heatmaps, pafs = self.model(x)
        return heatmaps, pafs, scale, pad

    def __call__(self, frames: Any) -> list[list[np.ndarray]]:
        heatmaps, pafs, scale, pad = self.infer(frames)
        people = decode_poses_batch(heatmaps, pafs, self.upsample)
        return [[to_frame_pixels(p, scale, pad) for p in frame_people] for frame_people in people]


def to_frame_pixels(person: np.ndarray, scale: float, pad: Pad) -> np.ndarray:
    """(18, 3) network-input keypoints -> frame pixels; missing joints (-1) stay -1."""
    out = person.copy()
    present = person[:, 2] >= 0
    out[present, 0] = (person[present, 0] - pad[1]) / scale
    out[present, 1] = (person[present, 1] - pad[0]) / scale
    return out

