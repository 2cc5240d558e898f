"""Motion-energy baseline: rhythmic 1-6 Hz motion scores high, slow drift and still noise score low."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from ward.alarms.rule import run_rule
from ward.evaluation.baseline import (BaselineConfig, MotionBaseline, band_power, pool_frames, scores_from_frames,
                                      scores_from_keypoints)

FPS = 25.0


def blob_video(motion: str, seconds: float = 8.0, fps: float = FPS, size: int = 160, freq: float = 3.0,
               amp: float = 8.0, noise: float = 0.015, seed: int = 0) -> np.ndarray:
    """A bright Gaussian blob on a grey background: oscillating, slowly drifting, or absent (still noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * fps))) / fps
    cx = {"osc": size / 2 + amp * np.sin(2 * np.pi * freq * t),
          "drift": size / 2 + 40 * np.sin(2 * np.pi * 0.05 * t),
          "static": np.full(t.shape, size / 2)}[motion]
    yy, xx = np.mgrid[0:size, 0:size]
    f = 0.2 + 0.6 * np.exp(-((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - size / 2) ** 2) / (2 * 12.0 ** 2))
    if motion == "static":
        f = np.full_like(f, 0.4)
    return np.clip(f + rng.normal(0, noise, f.shape), 0, 1).astype(np.float32)


def test_band_power_is_the_band_variance():
    t = np.arange(250) / FPS
    in_band = 0.3 * np.sin(2 * np.pi * 3.0 * t)
    slow = 0.3 * np.sin(2 * np.pi * 0.2 * t)
    fast = 0.3 * np.sin(2 * np.pi * 10.0 * t)
    p = band_power(np.stack([in_band, slow, fast]), FPS, (1.0, 6.0))
    assert p[0] == pytest.approx(0.3 ** 2 / 2, rel=0.05)  # variance of a sinusoid of amplitude 0.3
    assert p[1] < 0.01 * p[0] and p[2] < 0.01 * p[0]


def test_oscillating_blob_beats_drift_and_still_noise():
    scores = {}
    power = {}
    for motion, noise in (("osc", 0.015), ("drift", 0.015), ("static", 0.05)):
        v = blob_video(motion, noise=noise)
        ends, s = scores_from_frames(v, FPS, hop=25)
        assert ends.tolist() == [124, 149, 174, 199] and s.shape == ends.shape
        assert np.all((s >= 0) & (s <= 1))
        scores[motion] = s[-1]
        pooled = pool_frames(v[-125:], 48).reshape(125, -1).T
        power[motion] = np.percentile(band_power(pooled, FPS), 99)
    assert power["osc"] > 20 * power["drift"] and power["osc"] > 5 * power["static"]
    assert scores["osc"] > 0.9
    assert scores["drift"] < 0.1 and scores["static"] < 0.2


def test_streaming_matches_offline():
    v = (blob_video("osc", seconds=6.0, amp=3.0) * 255).astype(np.uint8)
    ends, offline = scores_from_frames(v, FPS, hop=7)
    mb = MotionBaseline(FPS, window_s=5.0)
    stream = np.array([mb.update(f) for f in v])
    assert np.all(stream[:124] == 0.0)
    assert np.allclose(stream[ends], offline, atol=1e-9)
    with pytest.raises(ValueError, match="reset"):
        mb.update(v[0][:100])
    mb.reset()
    assert mb.update(v[0][:100]) == 0.0
    hopped = MotionBaseline(FPS, hop=7)
    held = np.array([hopped.update(f) for f in v])
    assert np.allclose(held[ends], offline, atol=1e-9)
    assert np.all(held[ends[0]:ends[0] + 7] == held[ends[0]])  # held between scored frames


def test_keypoint_scores_follow_rhythmic_joint_motion():
    t = np.arange(200) / FPS
    base = np.stack(np.meshgrid(np.linspace(100, 200, 6), np.linspace(100, 400, 3)), -1).reshape(18, 2)
    kp = np.repeat(base[None], t.size, axis=0).astype(float)  # 18 joints, body diagonal ~316 px
    still = np.concatenate([kp, np.ones((t.size, 18, 1))], axis=-1)
    clonic = still.copy()
    clonic[:, 3:8, 0] += 20 * np.sin(2 * np.pi * 3.0 * t)[:, None]  # 5 joints (an arm and more) jerk at 3 Hz
    drift = still.copy()
    drift[:, :, 0] += 60 * np.sin(2 * np.pi * 0.05 * t)[:, None]  # the whole body slides slowly
    _, s_clonic = scores_from_keypoints(clonic, FPS)
    _, s_drift = scores_from_keypoints(drift, FPS)
    _, s_still = scores_from_keypoints(still, FPS)
    assert s_clonic[-1] > 0.9 and s_drift[-1] < 0.1 and s_still[-1] < 0.01
    hidden = clonic.copy()
    hidden[50:, :, 2] = 0  # everything hidden from frame 50: held positions, no motion, no score
    _, s_hidden = scores_from_keypoints(hidden, FPS)
    assert s_hidden[-1] < 0.01
    with pytest.raises(ValueError, match=r"\(T, J, 2\)"):
        scores_from_keypoints(kp[..., :1], FPS)


def test_low_frame_rate_cuts_band_at_nyquist_and_rejects_too_slow_streams():
    v = blob_video("osc", seconds=8.0, fps=6.0, freq=2.0)
    _, s = scores_from_frames(v, 6.0)
    assert s[-1] > 0.9
    _, s_drift = scores_from_frames(blob_video("drift", seconds=8.0, fps=6.0), 6.0)
    assert s_drift[-1] < 0.1
    with pytest.raises(ValueError, match="Nyquist"):
        scores_from_frames(v, 1.5, BaselineConfig(window_s=10.0))
    with pytest.raises(ValueError, match="grayscale"):
        scores_from_frames(np.zeros((10, 8, 8, 3, 1)), FPS)
    with pytest.raises(ValidationError, match="band_hz"):
        BaselineConfig(band_hz=(6.0, 1.0))


def test_baseline_scores_go_through_the_same_rule():
    still = blob_video("drift", seconds=20.0, size=96, seed=1)
    seizure = blob_video("osc", seconds=20.0, size=96, seed=2)
    video = np.concatenate([still, seizure, still])
    ends, s = scores_from_frames(video, FPS, hop=25)  # one score per second
    events = run_rule(ends / FPS, s)
    starts = [e.t for e in events if e.kind == "alarm_start"]
    assert len(starts) == 1 and 20.0 < starts[0] < 30.0
    _, s_still = scores_from_frames(np.concatenate([still, still]), FPS, hop=25)
    assert [e for e in run_rule(np.arange(s_still.size), s_still) if e.kind == "alarm_start"] == []
