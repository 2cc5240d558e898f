"""Small vectorised signal helpers shared by behaviours and seizures (all pure functions of time)."""

from __future__ import annotations

import numpy as np


def envelope(t: np.ndarray, duration: float, ramp: float) -> np.ndarray:
    """0 outside [0, duration], smooth (smoothstep) ramps of length `ramp` at both ends, 1 in between."""
    ramp = max(min(ramp, duration / 2), 1e-3)
    up = np.clip(t / ramp, 0.0, 1.0)
    down = np.clip((duration - t) / ramp, 0.0, 1.0)
    e = np.minimum(up, down)
    return e * e * (3 - 2 * e)


def keyframes(u: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Smoothstep interpolation of keyframe rows `values` (K, C) at normalised times `times` (K,) -> (N, C)."""
    idx = np.clip(np.searchsorted(times, u, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    f = np.clip((u - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
    f = f * f * (3 - 2 * f)
    return values[idx] + (values[idx + 1] - values[idx]) * f[:, None]


class Sines:
    """Band-limited pseudo-random signal: a sum of sines with seeded frequencies and phases, unit RMS-ish.

    A deterministic function of absolute time, so rendering any chunk of frames gives the same values.
    """

    def __init__(self, rng: np.random.Generator, fmin: float, fmax: float, n: int = 4, channels: int = 1):
        self.f = rng.uniform(fmin, fmax, size=(channels, n))
        self.ph = rng.uniform(0, 2 * np.pi, size=(channels, n))
        self.a = rng.uniform(0.5, 1.0, size=(channels, n))
        self.a /= np.sqrt((self.a ** 2).sum(1, keepdims=True) / 2)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(N,) times -> (N, channels)."""
        return np.einsum("cn,tcn->tc", self.a, np.sin(2 * np.pi * self.f[None] * t[:, None, None] + self.ph[None]))


def jerk_train(t: np.ndarray, onsets: np.ndarray, amps: np.ndarray, tau: float) -> np.ndarray:
    """Sum-free train of alpha-shaped jerks: the latest onset before t dominates (jerks barely overlap).

    pulse(dt) = (dt / tau) * exp(1 - dt / tau): peaks at 1 after tau, a fast jerk then relaxation.
    """
    if len(onsets) == 0:
        return np.zeros_like(t)
    idx = np.searchsorted(onsets, t, side="right") - 1
    valid = idx >= 0
    dt = t - onsets[np.maximum(idx, 0)]
    x = np.maximum(dt, 0.0) / tau
    return np.where(valid, amps[np.maximum(idx, 0)] * x * np.exp(1 - x), 0.0)


def poisson_times(rng: np.random.Generator, start: float, stop: float, rate: float, min_gap: float = 0.0) -> np.ndarray:
    """Event times of a Poisson process with a refractory gap, sorted."""
    if stop <= start or rate <= 0:
        return np.zeros(0)
    n = int((stop - start) * rate * 2 + 10)
    gaps = rng.exponential(1.0 / rate, size=n) + min_gap
    times = start + np.cumsum(gaps)
    return times[times < stop]


def chirp_phase(t: np.ndarray, duration: float, f0: float, f1: float) -> np.ndarray:
    """Phase (rad) of an exponential chirp from f0 to f1 Hz over `duration` s, for t >= 0."""
    t = np.clip(t, 0.0, duration)
    r = f1 / f0
    if abs(r - 1) < 1e-9:
        return 2 * np.pi * f0 * t
    return 2 * np.pi * f0 * duration / np.log(r) * (r ** (t / duration) - 1)


def chirp_freq(t: np.ndarray, duration: float, f0: float, f1: float) -> np.ndarray:
    """Instantaneous frequency of chirp_phase."""
    return f0 * (f1 / f0) ** (np.clip(t, 0.0, duration) / duration)


def clonic_wave(phase: np.ndarray, sharpness: float = 0.18) -> np.ndarray:
    """Clonic jerk waveform in [0, 1]: a fast flexion at the start of each cycle, slower relaxation."""
    frac = np.mod(phase / (2 * np.pi), 1.0)
    x = frac / sharpness
    return np.clip(x * np.exp(1 - x), 0.0, 1.0)
