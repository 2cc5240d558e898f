"""A motion-energy seizure baseline in the spirit of Kalitzin et al.: rhythmic motion power in 1-6 Hz.

Clonic and hypermotor seizures move the body rhythmically at a few Hz; most voluntary movement and
breathing do not. The baseline measures how much of the image (or of the keypoints) oscillates in that
band and maps it to a score in [0, 1] that goes through the same `ward.alarms.rule.BedRule` as VSViG's
probabilities, so both are judged with the same rule and metrics.

From frames (grayscale, any size):
  1. block-mean pool each frame to about `grid_px` pixels on its long side (averages camera noise,
     keeps limb-sized motion); uint8 input is scaled to [0, 1];
  2. for the last `window_s` seconds, each pooled pixel's intensity over time is detrended (mean
     removed), Hann-windowed and Fourier-transformed; its band power is the variance of the signal's
     `band_hz` component (Parseval, one-sided spectrum): P = 2 sum_band |X_k|^2 / (n sum w^2);
     moving edges make the intensity of the pixels they cross oscillate at the motion frequency
     (a signed signal, so a 3 Hz movement shows at 3 Hz, unlike |frame difference| energy at 6 Hz);
  3. the frame's power is the `percentile` of P over pixels (a limb covers few pixels) minus the median
     of P over pixels (the camera-noise floor: most of the image is still);
  4. score = 1 / (1 + exp(-(log10 P - log10 threshold_power) / slope_decades)).
From keypoints (T, J, 2|3): the same on each joint coordinate, divided by the body size (median
bounding-box diagonal), with `kp_threshold_power` and `kp_percentile`; hidden joints (v = 0) hold
their last seen position.

The band is cut at the Nyquist frequency (at 6 fps: 1-3 Hz); a stream too slow for the band's lower edge
raises ValueError. Scores need a full window: before it, the score is 0.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class BaselineConfig(BaseModel):
    """Parameters of the motion baseline (powers are variances of [0, 1] intensity or body-size units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(5.0, gt=0.0)
    band_hz: tuple[float, float] = (1.0, 6.0)
    grid_px: int = Field(48, ge=4, description="pooled frame size on its long side")
    percentile: float = Field(99.0, ge=0.0, le=100.0)
    threshold_power: float = Field(5e-4, gt=0.0, description="band power that scores 0.5 (frames)")
    slope_decades: float = Field(0.3, gt=0.0, description="log10 power range of the logistic's rise")
    kp_percentile: float = Field(90.0, ge=0.0, le=100.0)
    kp_threshold_power: float = Field(2e-4, gt=0.0, description="band power that scores 0.5 (keypoints)")

    @model_validator(mode="after")
    def _band(self) -> "BaselineConfig":
        lo, hi = self.band_hz
        if not 0.0 < lo < hi:
            raise ValueError(f"band_hz must be (low, high) with 0 < low < high, got {self.band_hz}")
        return self


def _window_len(fps: float, cfg: BaselineConfig) -> int:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    n = int(round(cfg.window_s * fps))
    if n < 8:
        raise ValueError(f"window of {cfg.window_s} s at {fps} fps has {n} samples; need >= 8: raise window_s")
    if cfg.band_hz[0] >= fps / 2:
        raise ValueError(f"band {cfg.band_hz} Hz starts above the Nyquist frequency {fps / 2} Hz of {fps} fps; "
                         "use a higher frame rate or a lower band")
    return n


def _band_weights(n: int, fps: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Hann window and the rfft-bin mask of the band (cut at Nyquist, excluding the Nyquist bin)."""
    w = np.hanning(n + 2)[1:-1]  # no zero end points: every sample counts
    f = np.fft.rfftfreq(n, 1.0 / fps)
    mask = (f >= band[0]) & (f <= band[1]) & (f < fps / 2)
    if not mask.any():
        raise ValueError(f"no frequency bin of a {n}-sample window at {fps} fps lies in {band} Hz; lengthen window_s")
    return w, mask


def band_power(x: np.ndarray, fps: float, band: tuple[float, float] = (1.0, 6.0)) -> np.ndarray:
    """Variance of the band component of each series; x has time on its LAST axis: (..., n) -> (...)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    w, mask = _band_weights(n, fps, band)
    spec = np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * w, axis=-1)[..., mask]
    return 2.0 * (spec.real ** 2 + spec.imag ** 2).sum(axis=-1) / (n * float((w ** 2).sum()))


def _logistic(power: np.ndarray, threshold: float, slope: float) -> np.ndarray:
    z = (np.log10(np.maximum(power, 1e-30)) - np.log10(threshold)) / slope
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def pool_frames(frames: np.ndarray, grid_px: int) -> np.ndarray:
    """(T, H, W) or (H, W) grayscale -> block-mean pooled float32 in [0, 1] (uint8 scaled by 1/255)."""
    a = np.asarray(frames)
    if a.ndim not in (2, 3):
        raise ValueError(f"frames must be grayscale (T, H, W) or (H, W), got shape {a.shape}; convert colour "
                         "frames with cv2.cvtColor(..., cv2.COLOR_BGR2GRAY)")
    scale = 1.0 / 255.0 if a.dtype == np.uint8 else 1.0
    h, w = a.shape[-2:]
    b = max(1, max(h, w) // grid_px)
    hh, ww = (h // b) * b, (w // b) * b
    a = a[..., :hh, :ww]
    blocks = a.reshape(*a.shape[:-2], hh // b, b, ww // b, b)
    if a.dtype == np.uint8:  # integer block sums: no float copy of every pixel (4x the memory traffic)
        return blocks.sum(axis=(-3, -1), dtype=np.uint32).astype(np.float32) * np.float32(scale / (b * b))
    return blocks.astype(np.float32).mean(axis=(-3, -1)) * np.float32(scale)


def _aggregate(p: np.ndarray, q: float, subtract_median: bool) -> np.ndarray:
    """(W, P) band powers -> (W,): the q-th percentile over series, less the median if asked."""
    if not subtract_median:
        return np.percentile(p, q, axis=-1)
    hi, med = np.percentile(p, [q, 50.0], axis=-1)
    return np.maximum(hi - med, 0.0)


def _window_scores(series: np.ndarray, ends: np.ndarray, n: int, fps: float, band: tuple[float, float],
                   q: float, threshold: float, slope: float, subtract_median: bool,
                   chunk_bytes: int = 64 << 20) -> np.ndarray:
    """series (T, P); score of the window of n samples ending at each index in ends (all >= n - 1)."""
    if ends.size == 0:
        return np.zeros(0)
    view = np.lib.stride_tricks.sliding_window_view(series, n, axis=0)  # (T - n + 1, P, n), no copy
    per = max(1, chunk_bytes // (n * series.shape[1] * 16))
    power = np.concatenate([
        _aggregate(band_power(view[ends[i:i + per] - (n - 1)], fps, band), q, subtract_median)
        for i in range(0, ends.size, per)])  # chunks only bound memory
    return _logistic(power, threshold, slope)


def scores_from_frames(frames: np.ndarray, fps: float, config: BaselineConfig | None = None,
                       hop: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Offline scores of a (T, H, W) grayscale video: (end_frame_indices, scores), one per `hop` frames.

    Scores are computed for the windows ending at frames n-1, n-1+hop, ... (n = window frames); the same
    values `MotionBaseline.update` returns at those frames.
    """
    cfg = config or BaselineConfig()
    if hop < 1:
        raise ValueError(f"hop must be >= 1 frame, got {hop}")
    n = _window_len(fps, cfg)
    pooled = pool_frames(frames, cfg.grid_px)
    if pooled.ndim != 3:
        raise ValueError(f"frames must be a (T, H, W) stack, got shape {np.shape(frames)}")
    series = pooled.reshape(pooled.shape[0], -1)
    ends = np.arange(n - 1, series.shape[0], hop)
    return ends, _window_scores(series, ends, n, fps, cfg.band_hz, cfg.percentile, cfg.threshold_power,
                                cfg.slope_decades, True)


def scores_from_keypoints(keypoints: np.ndarray, fps: float, config: BaselineConfig | None = None,
                          hop: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Offline scores of a (T, J, 2|3) keypoint track (x, y[, v]) in pixels: (end_frame_indices, scores)."""
    cfg = config or BaselineConfig()
    if hop < 1:
        raise ValueError(f"hop must be >= 1 frame, got {hop}")
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 3 or k.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must have shape (T, J, 2) or (T, J, 3), got {k.shape}")
    n = _window_len(fps, cfg)
    xy = k[..., :2].copy()
    seen = (k[..., 2] > 0) if k.shape[2] == 3 else np.ones(k.shape[:2], dtype=bool)
    seen &= np.isfinite(xy).all(axis=-1)
    # hold the last seen position (vectorised forward fill along time); never-seen joints stay at 0
    idx = np.where(seen, np.arange(k.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    xy = np.where(seen[..., None], xy, 0.0)
    xy = np.take_along_axis(xy, idx[..., None], axis=0)
    if seen.any():
        lo = np.where(seen[..., None], xy, np.inf).min(axis=1)
        hi = np.where(seen[..., None], xy, -np.inf).max(axis=1)
        diag = np.linalg.norm(hi - lo, axis=-1)
        scale = float(np.median(diag[np.isfinite(diag) & (diag > 0)])) if np.any(np.isfinite(diag) & (diag > 0)) \
            else 1.0
    else:
        scale = 1.0
    series = (xy / scale).reshape(k.shape[0], -1)
    ends = np.arange(n - 1, series.shape[0], hop)
    return ends, _window_scores(series, ends, n, fps, cfg.band_hz, cfg.kp_percentile, cfg.kp_threshold_power,
                                cfg.slope_decades, False)


class MotionBaseline:
    """Streaming version for one camera: feed grayscale frames in order, get a score per frame.

    With hop > 1 the window is scored only every hop frames once full (the same frames as
    `scores_from_frames(..., hop=hop)`); in between, `update` returns the last score (cheap).
    """

    def __init__(self, fps: float, window_s: float = 5.0, config: BaselineConfig | None = None,
                 hop: int = 1) -> None:
        if hop < 1:
            raise ValueError(f"hop must be >= 1 frame, got {hop}")
        self.hop = int(hop)
        base = config or BaselineConfig()
        self.config = base.model_copy(update={"window_s": window_s}) if window_s != base.window_s else base
        BaselineConfig.model_validate(self.config.model_dump())
        self.fps = float(fps)
        self.n = _window_len(self.fps, self.config)
        self._buf: deque[np.ndarray] = deque(maxlen=self.n)
        self._shape: tuple[int, ...] | None = None
        self._count = 0
        self.score = 0.0

    def reset(self) -> None:
        """Forget the window (e.g. after a gap or camera change)."""
        self._buf.clear()
        self._shape = None
        self._count = 0
        self.score = 0.0

    def update(self, frame_gray: np.ndarray) -> float:
        """Add one frame; return the score of the last window_s seconds (0 until the window is full)."""
        pooled = pool_frames(frame_gray, self.config.grid_px)
        if pooled.ndim != 2:
            raise ValueError(f"update takes one (H, W) grayscale frame, got shape {np.shape(frame_gray)}")
        if self._shape is not None and pooled.shape != self._shape:
            raise ValueError(f"frame size changed ({np.shape(frame_gray)}); call reset() after a camera change")
        self._shape = pooled.shape
        self._buf.append(pooled.ravel())
        self._count += 1
        if self._count < self.n or (self._count - self.n) % self.hop:
            return self.score
        series = np.stack(self._buf)  # (n, P)
        c = self.config
        self.score = float(_window_scores(series, np.array([self.n - 1]), self.n, self.fps, c.band_hz,
                                          c.percentile, c.threshold_power, c.slope_decades, True)[0])
        return self.score
