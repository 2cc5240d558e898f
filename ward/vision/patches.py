"""Batched joint-patch extraction: frames + 18 OpenPose keypoints -> VSViG's 15 Gaussian-weighted patches.

The official VSViG patch script works one joint at a time: it zero-pads the whole frame by the window
size, cuts the 128x128 window centred on the joint (rows/cols ``floor(c) - 64 .. floor(c) + 63``),
multiplies it by a 2-D Gaussian (sigma = 0.3 * 128, centred at 63.5, min-max scaled to [0, 1]),
min-max normalises the product to 0..255 over the whole window (all channels) and resizes it by 1/4
with OpenCV's INTER_LINEAR. ``extract_patches`` computes the same numbers for all N x 15 windows at
once in torch, on the device of the input, without padding the frame:

- Each window row is one contiguous run of ``w * 3`` bytes of the frame, so a sliding view of the
  frame bytes (``as_strided``) lets a single ``index_select`` gather all window rows of all joints.
  Runs sticking out of the frame sideways read neighbouring pixels, which are zeroed (only for
  border windows): the official zero padding without padding anything.
- Because the Gaussian is exactly 0 at the window corners and pixels are >= 0, the minimum of the
  product is always 0, so min-max normalisation is a per-window scale.
- Windows up to ~720p size (w <= 90): the full product is formed and resized by torch's bilinear
  interpolation (align_corners=False, no antialias), which is what INTER_LINEAR computes.
- Larger windows: the maximum is ``max(max_c(p) * G)`` (``G >= 0``) and, as INTER_LINEAR downscaling
  does not antialias, each output pixel is a 2x2-tap bilinear blend of the product (for the exact 4x
  case, pixels 4d+1 and 4d+2 with weight 1/2 each): only those taps are read, by plain slicing when
  the window is 32 x an even number.

Other resolutions scale the window with the frame height (``window_size_for_height``); the output is
always 32x32. Joints with zero confidence (or non-finite coordinates) and windows without contrast
(max == min, e.g. black or entirely outside the frame) give all-zero patches, never NaN.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple, Union

import numpy as np
import torch

from ward.core.clip import PATCH_SIZE
from ward.core.keypoints import OPENPOSE_18, OPENPOSE_TO_VSVIG, VSVIG_15

REFERENCE_HEIGHT = 1080
"""Frame height the official window size is defined for."""
REFERENCE_WINDOW = 128
"""Official window (kernel) size in pixels at 1080 rows."""
SIGMA_FRACTION = 0.3
"""Gaussian sigma as a fraction of the window size (official ``kernel_sigma``)."""

ArrayLike = Union[np.ndarray, torch.Tensor]

_SMALL_WINDOW_AREA = 2 * (2 * PATCH_SIZE) ** 2
"""Windows up to this many pixels (w <= 90) take the full-product + interpolate path, larger ones the tap path."""
_NUM_IN = len(OPENPOSE_18)
_NUM_OUT = len(VSVIG_15)


def window_size_for_height(h: int) -> int:
    """Window side in pixels for frames with ``h`` rows: 128 at 1080, scaled linearly, rounded half up.

    At least 3 px, the smallest window whose Gaussian is 0 at the corners and 1 at the centre.
    """
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h <= 0:
        raise ValueError(f"frame height must be a positive integer, got {h!r}")
    return max(3, math.floor(REFERENCE_WINDOW * int(h) / REFERENCE_HEIGHT + 0.5))


class _Consts(NamedTuple):
    """Per-window-size constants (cached: they depend only on the window size and device)."""

    gauss: torch.Tensor  # (w, w) float32, min-max scaled to [0, 1]
    gauss3: torch.Tensor  # (w, w * 3) the same, repeated for the 3 interleaved channels
    row_taps: torch.Tensor  # (64,) rows i0[d], i0[d] + 1 interleaved, d = 0..31
    col_first: torch.Tensor  # (32,) left column i0[d] of each column tap pair
    weights: torch.Tensor  # (32, 2, 32, 6) Gaussian x bilinear weight per (row d, row tap, col d, col tap x channel)
    half_step: int  # s/2 if w = 32 * s with s even (taps are fixed offsets: slicing, no gather), else 0
    arange: torch.Tensor  # (w,) 0..w-1


@lru_cache(maxsize=32)
def _constants(w: int, device: str) -> _Consts:
    dev = torch.device(device)
    r = torch.arange(w, dtype=torch.float64) - (w - 1) / 2.0
    sigma = SIGMA_FRACTION * w
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma * sigma))
    g = (g - g.min()) / (g.max() - g.min())
    # OpenCV INTER_LINEAR source coordinates (no antialiasing), clamped at the borders, expressed as
    # two adjacent taps i0, i0 + 1 with weights (1 - frac, frac); needs w >= 2.
    d = torch.arange(PATCH_SIZE, dtype=torch.float64)
    src = ((d + 0.5) * (w / PATCH_SIZE) - 0.5).clamp(0.0, w - 1.0)
    i0 = torch.floor(src).clamp(max=w - 2)
    frac = src - i0
    i0 = i0.long()
    wt = torch.stack([1.0 - frac, frac], dim=1)  # (32, 2)
    rows = (i0[:, None] + torch.arange(2)).reshape(-1)  # (64,)
    gt = g[rows][:, rows].view(PATCH_SIZE, 2, PATCH_SIZE, 2)
    weights = gt * wt[:, :, None, None] * wt[None, None, :, :]
    weights = weights[..., None].expand(-1, -1, -1, -1, 3).reshape(PATCH_SIZE, 2, PATCH_SIZE, 6)
    step = w // PATCH_SIZE
    half_step = step // 2 if w % PATCH_SIZE == 0 and step % 2 == 0 else 0
    g32 = g.float()
    return _Consts(g32.to(dev), g32.repeat_interleave(3, dim=1).to(dev), rows.to(dev), i0.to(dev),
                   weights.float().to(dev), half_step,
                   torch.arange(w, device=dev))


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def _check_kpts(kpts18: ArrayLike, n: int | None) -> torch.Tensor:
    k = _as_tensor(kpts18, "kpts18")
    if k.ndim != 3 or k.shape[1:] != (_NUM_IN, 3):
        raise ValueError(
            f"kpts18 must have shape (N, {_NUM_IN}, 3) = (x, y, confidence) in OpenPose order, "
            f"got {tuple(k.shape)}"
        )
    if n is not None and k.shape[0] != n:
        raise ValueError(f"frames (N, H, W, 3) and kpts18 (N, 18, 3) disagree on N: "
                         f"{n} frames vs {k.shape[0]} keypoint sets")
    if k.dtype == torch.bool or k.is_complex():
        raise ValueError(f"kpts18 must be a real numeric array, got dtype {k.dtype}")
    return k


def extract_patches(frames: ArrayLike, kpts18: ArrayLike, *, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian-weighted joint patches for VSViG, all frames and joints at once.

    frames: (N, H, W, 3) uint8 (numpy or torch; channel order kept as given, BGR from OpenCV).
    kpts18: (N, 18, 3) (x, y, confidence) in frame pixels, OpenPose order.
    Returns (N, 15, 3, 32, 32) on the frames' device, rows in ``VSVIG_15`` order, values in 0..255.
    An integer ``out_dtype`` rounds to the nearest integer.
    """
    f = _as_tensor(frames, "frames")
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3) (a batch of colour frames), got {tuple(f.shape)}")
    if f.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3) as read by OpenCV, got dtype {f.dtype}")
    n, h, wd, _ = f.shape
    if h == 0 or wd == 0:
        raise ValueError(f"frames must be non-empty (N, H, W, 3), got {tuple(f.shape)}")
    k = _check_kpts(kpts18, n)
    dev = f.device
    w = window_size_for_height(h)
    if n == 0:
        return torch.zeros((0, _NUM_OUT, 3, PATCH_SIZE, PATCH_SIZE), dtype=out_dtype, device=dev)
    if wd < w:  # narrower than one window: zero-extend on the right (rare, tiny frames)
        f = torch.nn.functional.pad(f, (0, 0, 0, w - wd))
    f = f.contiguous()
    wp = f.shape[2]
    c = _constants(w, str(dev))
    ar = c.arange

    # Keypoints in VSViG order; float64 so floor() of fractional pixel coordinates is exact.
    k = k.to(device=dev, dtype=torch.float64)[:, torch.as_tensor(OPENPOSE_TO_VSVIG, device=dev)]
    x, y, conf = k[..., 0], k[..., 1], k[..., 2]
    valid = (conf > 0) & torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(conf)
    # Far-away joints give all-zero windows; clamping keeps the integer arithmetic in range.
    x = torch.nan_to_num(x, nan=0.0).clamp(-2.0 * w, wd + 2.0 * w)
    y = torch.nan_to_num(y, nan=0.0).clamp(-2.0 * w, h + 2.0 * w)
    x0 = torch.floor(x).long() - w // 2  # (N, 15) left column of the window
    y0 = torch.floor(y).long() - w // 2
    rows = y0[..., None] + ar  # (N, 15, w)
    row_ok = (rows >= 0) & (rows < h)

    # Sliding view over the flat bytes: row s is the w*3 bytes starting at byte s. One index_select
    # copies every window row of every joint as a contiguous run (no per-pixel indexing). A run that
    # starts left of the frame (x0 < 0) or ends right of it reads the neighbouring row's pixels in
    # those columns; they are zeroed below, which is the official zero padding.
    flat = f.view(-1)
    runs = flat.as_strided((flat.numel() - w * 3 + 1, w * 3), (1, 1))
    nidx = torch.arange(n, device=dev)[:, None, None]
    starts = ((nidx * h + rows.clamp(0, h - 1)) * wp + x0[..., None]) * 3  # (N, 15, w)
    clamped = starts.clamp(0, runs.shape[0] - 1)
    win = runs.index_select(0, clamped.reshape(-1)).view(n, _NUM_OUT, w, w, 3)

    border = (x0 < 0) | (x0 > wd - w) | ~row_ok.all(-1)
    if bool(border.any()):
        bi = border.nonzero(as_tuple=True)
        colpos = x0[bi][:, None] + ar  # (B, w) frame column of each window column
        col_ok = (colpos >= 0) & (colpos < wd)
        wb = win[bi] * (row_ok[bi][:, :, None] & col_ok[:, None, :])[..., None].to(torch.uint8)
        # Runs clamped at the very start/end of the buffer (top-left of frame 0, bottom-right of the
        # last frame) hold shifted pixels: re-read those few rows pixel by pixel.
        moved = (clamped != starts)[bi] & row_ok[bi]  # (B, w)
        if bool(moved.any()):
            b_idx, r_idx = moved.nonzero(as_tuple=True)
            px = f[bi[0][b_idx][:, None], rows[bi][b_idx, r_idx][:, None], colpos[b_idx].clamp(0, wp - 1)]
            wb[b_idx, r_idx] = px * col_ok[b_idx][..., None].to(torch.uint8)
        win[bi] = wb

    flat_win = win.view(n, _NUM_OUT, w, w * 3)
    if w * w <= _SMALL_WINDOW_AREA:
        # Small windows (<= ~720p): the full product is cheaper than the tap grid; torch's bilinear
        # resize (align_corners=False, no antialias) computes what OpenCV's INTER_LINEAR does.
        prod = flat_win.to(torch.float32).mul_(c.gauss3)
        peak = prod.view(n, _NUM_OUT, -1).amax(-1)
        t = torch.nn.functional.interpolate(
            prod.view(n * _NUM_OUT, w, w, 3).permute(0, 3, 1, 2), size=(PATCH_SIZE, PATCH_SIZE),
            mode="bilinear", align_corners=False, antialias=False,
        ).permute(0, 2, 3, 1).reshape(n, _NUM_OUT, PATCH_SIZE, PATCH_SIZE, 3)
    else:
        # Max of (pixel * G) over the window is max(max_c(pixel) * G) since G >= 0.
        cmax = torch.maximum(torch.maximum(flat_win[..., 0::3], flat_win[..., 1::3]), flat_win[..., 2::3])
        peak = cmax.to(torch.float32).mul_(c.gauss).view(n, _NUM_OUT, -1).amax(-1)  # (N, 15)
        # Bilinear taps of the product only, as (row d, row tap, col d, col tap x channel), weighted
        # by Gaussian x bilinear weights, then the two taps per axis added -> (N, 15, 32, 32, 3).
        if c.half_step:  # w = 32 * s, s even: taps s/2 - 1 and s/2 of every block of s pixels
            s, hs = w // PATCH_SIZE, c.half_step
            t = flat_win.view(n, _NUM_OUT, PATCH_SIZE, s, PATCH_SIZE, s * 3)
            t = t[:, :, :, hs - 1:hs + 1, :, (hs - 1) * 3:(hs + 1) * 3]
        else:
            t = flat_win.index_select(2, c.row_taps).view(n, _NUM_OUT, PATCH_SIZE, 2, w * 3)
            t = t.unfold(-1, 6, 3)[:, :, :, :, c.col_first]  # (N, 15, 32, 2, 32, 6)
        t = t.to(torch.float32).mul_(c.weights)
        t = t[:, :, :, 0] + t[:, :, :, 1]  # (N, 15, 32, 32, 6)
        t = t[..., :3] + t[..., 3:]
    # The product's minimum is 0 (G is 0 at the corners, pixels >= 0), so min-max is a scale.
    scale = torch.where(valid & (peak > 0), 255.0 / torch.where(peak > 0, peak, torch.ones_like(peak)),
                        torch.zeros_like(peak)).to(torch.float32)
    # Scale and move channels first in one pass, writing straight into the (N, 15, 3, 32, 32) result.
    out = torch.empty((n, _NUM_OUT, 3, PATCH_SIZE, PATCH_SIZE), dtype=torch.float32, device=dev)
    torch.mul(t, scale[:, :, None, None, None], out=out.permute(0, 1, 3, 4, 2))
    if out_dtype.is_floating_point:
        return out.to(out_dtype)
    return out.round_().clamp_(0, 255).to(out_dtype)


def normalise_keypoints(kpts18: ArrayLike, frame_hw: tuple[int, int]) -> torch.Tensor:
    """VSViG keypoint input: (x / W, y / H, confidence) in ``VSVIG_15`` order, zeros where confidence is 0.

    This is ward's convention (coordinates as fractions of the frame, so it is resolution independent);
    the official code's keypoint normalisation is not published beyond its fixture.
    kpts18: (N, 18, 3) pixels, OpenPose order. frame_hw: (H, W). Returns (N, 15, 3) float32 on the
    input's device. Non-finite coordinates are treated as missing (zeros).
    """
    k = _check_kpts(kpts18, None)
    if (not isinstance(frame_hw, (tuple, list)) or len(frame_hw) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in frame_hw)):
        raise ValueError(f"frame_hw must be (H, W) with positive integers, got {frame_hw!r}")
    h, w = int(frame_hw[0]), int(frame_hw[1])
    k = k.to(torch.float64)[:, torch.as_tensor(OPENPOSE_TO_VSVIG, device=k.device)]
    scale = torch.tensor([1.0 / w, 1.0 / h, 1.0], dtype=torch.float64, device=k.device)
    out = k * scale
    keep = (k[..., 2] > 0) & torch.isfinite(k).all(-1)
    return torch.where(keep[..., None], out, torch.zeros_like(out)).to(torch.float32)


def extract_patches_reference(frame: np.ndarray, kpts18: np.ndarray) -> np.ndarray:
    """Straightforward per-joint OpenCV/numpy version of the official algorithm, for one frame.

    Kept as the readable specification that ``extract_patches`` is tested and benchmarked against;
    far too slow for serving. frame (H, W, 3) uint8, kpts18 (18, 3) -> (15, 3, 32, 32) float32.
    """
    import cv2

    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError("frame must be a (H, W, 3) uint8 numpy array")
    kpts18 = np.asarray(kpts18, dtype=np.float64)
    if kpts18.shape != (_NUM_IN, 3):
        raise ValueError(f"kpts18 must have shape ({_NUM_IN}, 3), got {kpts18.shape}")
    h, wd = frame.shape[:2]
    w = window_size_for_height(h)
    padded = np.pad(frame, ((w, w), (w, w), (0, 0)))  # the official zero padding
    r = np.arange(w) - (w - 1) / 2.0
    gauss = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * (SIGMA_FRACTION * w) ** 2))
    gauss = ((gauss - gauss.min()) / (gauss.max() - gauss.min())).astype(np.float32)
    out = np.zeros((_NUM_OUT, 3, PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    for j, src in enumerate(OPENPOSE_TO_VSVIG):
        x, y, c = kpts18[src]
        if not (c > 0 and np.isfinite(x) and np.isfinite(y)):
            continue
        x0, y0 = math.floor(x) - w // 2, math.floor(y) - w // 2
        if x0 + w <= 0 or y0 + w <= 0 or x0 >= wd or y0 >= h:
            continue  # window entirely outside the frame: all padding, no contrast
        win = padded[y0 + w:y0 + 2 * w, x0 + w:x0 + 2 * w].astype(np.float32) * gauss[..., None]
        lo, hi = float(win.min()), float(win.max())
        if hi <= lo:
            continue
        win = (win - lo) / (hi - lo) * 255.0
        out[j] = cv2.resize(win, (PATCH_SIZE, PATCH_SIZE), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    return out
