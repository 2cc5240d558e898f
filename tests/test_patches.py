"""Joint-patch extraction: parity with the official script's output, scaling, borders, zeros, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ward.core.keypoints import OPENPOSE_INDEX, OPENPOSE_TO_VSVIG, VSVIG_15, VSVIG_INDEX
from ward.vision.patches import (
    extract_patches,
    extract_patches_reference,
    normalise_keypoints,
    window_size_for_height,
)


@pytest.fixture(scope="module")
def official(fixtures_dir):
    d = np.load(fixtures_dir / "official_patches.npz")
    return {k: d[k] for k in d.files}


def _with_conf(xy: np.ndarray, conf: float = 1.0) -> np.ndarray:
    return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), conf)], axis=-1)


def test_matches_official_fixture_joint_by_joint(official):
    frames, names = official["frames_bgr"], [str(n) for n in official["patch_joint_names"]]
    out = extract_patches(frames, _with_conf(official["keypoints_xy_coco18"]))
    assert out.shape == (2, 15, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
    common = [n for n in VSVIG_15 if n in names]
    assert len(common) == 13  # the fixture drops neck and both eyes
    for name in common:
        ours = out[:, VSVIG_INDEX[name]].permute(0, 2, 3, 1).numpy()
        theirs = official["patches"][:, names.index(name)]
        assert np.abs(ours - theirs).max() <= 1.0, name
    # The fixture contains joints off the frame (negative y) and near borders: not all trivially zero.
    assert (out.amax(dim=(2, 3, 4)) > 200).all()


def test_window_size_scales_with_height():
    assert window_size_for_height(1080) == 128
    assert window_size_for_height(540) == 64
    assert window_size_for_height(720) == 85
    assert window_size_for_height(360) == 43
    assert window_size_for_height(2160) == 256
    assert window_size_for_height(10) == 3  # smallest window with a proper Gaussian
    with pytest.raises(ValueError, match="positive integer"):
        window_size_for_height(0)


def _dot_frame(h: int, w: int, at: tuple[int, int]) -> np.ndarray:
    f = np.zeros((1, h, w, 3), np.uint8)
    f[0, at[1] - 1:at[1] + 2, at[0] - 1:at[0] + 2] = 255
    return f


def test_540_rows_uses_a_64px_window_and_still_gives_32x32():
    # A bright dot 28 px right of the joint lies inside a 64 px window (radius 32) but a dot 40 px
    # away does not; at 1080 rows (radius 64) both would be inside.
    k = np.zeros((1, 18, 3))
    k[0, :, :2] = (400, 270)
    k[0, :, 2] = 1
    inside = extract_patches(_dot_frame(540, 960, (428, 270)), k)
    outside = extract_patches(_dot_frame(540, 960, (440, 270)), k)
    assert inside.shape == (1, 15, 3, 32, 32)
    assert inside.amax() > 200
    # The dot lands 28 px / 2 px-per-output-pixel = 14 output columns right of the centre (~16).
    col = int(inside[0, 0, 0].amax(dim=0).argmax())
    assert 29 <= col <= 31
    assert float(outside.abs().amax()) == 0.0
    wide = extract_patches(_dot_frame(1080, 1920, (840, 540)), np.concatenate([k[..., :2] * 2, k[..., 2:]], -1))
    assert wide.amax() > 20


@pytest.mark.parametrize("hw", [(540, 960), (720, 1280), (360, 640), (100, 60), (810, 240), (1440, 300), (1080, 100)])
def test_matches_per_joint_reference_at_other_resolutions(hw):
    rng = np.random.default_rng(hw[0])
    h, w = hw
    frames = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    k = np.stack([rng.uniform(-0.2 * w, 1.2 * w, (2, 18)), rng.uniform(-0.2 * h, 1.2 * h, (2, 18)),
                  rng.uniform(0, 1, (2, 18))], -1)
    k[:, ::5, 2] = 0
    ours = extract_patches(frames, k).numpy()
    ref = np.stack([extract_patches_reference(frames[i], k[i]) for i in range(2)])
    assert np.abs(ours - ref).max() < 1e-2


def test_zero_confidence_and_flat_windows_give_zeros_not_nan():
    rng = np.random.default_rng(1)
    frames = rng.integers(1, 256, (1, 1080, 1920, 3), dtype=np.uint8)
    frames[0, :300, :300] = 0  # a black corner: no contrast at all after weighting
    k = np.zeros((1, 18, 3))
    k[0, :, :2] = (960, 540)
    k[0, :, 2] = 0.8
    k[0, OPENPOSE_INDEX["nose"], 2] = 0.0  # not detected
    k[0, OPENPOSE_INDEX["r_wri"]] = (150, 150, 1.0)  # inside the black corner
    k[0, OPENPOSE_INDEX["l_wri"]] = (-5000, 300, 1.0)  # far off the frame
    k[0, OPENPOSE_INDEX["l_ank"]] = (np.nan, 300, 1.0)  # undefined position
    out = extract_patches(frames, k)
    assert torch.isfinite(out).all()
    for name in ("nose", "r_wri", "l_wri", "l_ank"):
        assert float(out[0, VSVIG_INDEX[name]].abs().amax()) == 0.0, name
    assert float(out[0, VSVIG_INDEX["r_sho"]].amax()) > 200


def test_joint_at_the_corner_sees_zero_padding():
    frames = np.full((1, 1080, 1920, 3), 255, np.uint8)
    k = np.zeros((1, 18, 3))
    k[0, :, 2] = 1.0  # every joint at (0, 0): the window's top and left halves are padding
    out = extract_patches(frames, k)[0, 0]
    assert float(out[:, :16, :].abs().amax()) == 0.0
    assert float(out[:, :, :16].abs().amax()) == 0.0
    assert float(out[:, 16:, 16:].amin()) > 0.0
    ref = extract_patches_reference(frames[0], k[0])
    assert np.abs(out.numpy() - ref[0]).max() < 1e-2
    # And the bottom-right corner with fractional coordinates.
    k[0, :, :2] = (1919.7, 1079.2)
    out = extract_patches(frames, k)[0, 0]
    assert float(out[:, 17:, :].abs().amax()) == 0.0 and float(out[:, :, 17:].abs().amax()) == 0.0
    assert np.abs(out.numpy() - extract_patches_reference(frames[0], k[0])[0]).max() < 1e-2


def test_rows_follow_the_canonical_vsvig_order():
    frames = np.zeros((1, 540, 960, 3), np.uint8)
    frames[0, 100:103, 200:203] = 255
    k = np.zeros((1, 18, 3))
    k[0, :, :2] = (700, 400)  # everything else looks at black
    k[0, :, 2] = 1.0
    k[0, OPENPOSE_INDEX["l_eye"], :2] = (201, 101)
    out = extract_patches(frames, k)[0]
    lit = (out.amax(dim=(1, 2, 3)) > 0).nonzero().flatten().tolist()
    assert lit == [VSVIG_INDEX["l_eye"]]


def test_batch_equals_frame_by_frame_and_keeps_channel_order():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (4, 360, 640, 3), dtype=np.uint8)
    k = np.stack([rng.uniform(-30, 670, (4, 18)), rng.uniform(-30, 390, (4, 18)), np.ones((4, 18))], -1)
    batch = extract_patches(torch.from_numpy(frames), torch.from_numpy(k))
    single = torch.cat([extract_patches(frames[i:i + 1], k[i:i + 1]) for i in range(4)])
    assert torch.equal(batch, single)
    assert torch.equal(extract_patches(torch.from_numpy(frames)[1:3], k[1:3]), batch[1:3])  # storage offset
    swapped = extract_patches(frames[..., ::-1].copy(), k)
    assert torch.allclose(swapped, batch.flip(2), atol=1e-3)  # channels are kept as given (BGR in, BGR out)


def test_output_dtypes():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (1, 360, 640, 3), dtype=np.uint8)
    k = _with_conf(rng.uniform(0, 350, (1, 18, 2)))
    f32 = extract_patches(frames, k)
    u8 = extract_patches(frames, k, out_dtype=torch.uint8)
    assert u8.dtype == torch.uint8 and torch.equal(u8, f32.round().to(torch.uint8))
    assert extract_patches(frames, k, out_dtype=torch.float16).dtype == torch.float16
    assert extract_patches(frames[:0], k[:0]).shape == (0, 15, 3, 32, 32)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(12, 90), w=st.integers(12, 120), seed=st.integers(0, 2**31 - 1))
def test_random_small_frames_match_reference(h, w, seed):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    k = np.stack([rng.uniform(-w, 2 * w, 18), rng.uniform(-h, 2 * h, 18), rng.integers(0, 2, 18)], -1)
    ours = extract_patches(frame[None], k[None])[0].numpy()
    assert np.isfinite(ours).all()
    assert np.abs(ours - extract_patches_reference(frame, k)).max() < 1e-2


@pytest.mark.parametrize(
    ("frames", "kpts", "match"),
    [
        (np.zeros((360, 640, 3), np.uint8), np.zeros((1, 18, 3)), r"\(N, H, W, 3\)"),
        (np.zeros((1, 360, 640, 4), np.uint8), np.zeros((1, 18, 3)), r"\(N, H, W, 3\)"),
        (np.zeros((1, 360, 640, 3), np.float32), np.zeros((1, 18, 3)), "uint8"),
        (np.zeros((1, 360, 640, 3), np.uint8), np.zeros((1, 15, 3)), r"\(N, 18, 3\)"),
        (np.zeros((1, 360, 640, 3), np.uint8), np.zeros((1, 18, 2)), r"\(N, 18, 3\)"),
        (np.zeros((2, 360, 640, 3), np.uint8), np.zeros((1, 18, 3)), "disagree on N"),
        ([[0]], np.zeros((1, 18, 3)), "numpy array or torch tensor"),
    ],
)
def test_bad_input_is_rejected_with_the_expected_shape(frames, kpts, match):
    with pytest.raises(ValueError, match=match):
        extract_patches(frames, kpts)


def test_normalise_keypoints():
    k = np.zeros((2, 18, 3))
    k[..., 0] = np.arange(18) * 10.0
    k[..., 1] = 100.0
    k[..., 2] = 0.5
    k[1, OPENPOSE_INDEX["r_elb"], 2] = 0.0
    out = normalise_keypoints(k, (200, 400))
    assert out.shape == (2, 15, 3) and out.dtype == torch.float32
    expected_x = np.arange(18)[OPENPOSE_TO_VSVIG] * 10.0 / 400
    assert np.allclose(out[0, :, 0].numpy(), expected_x)
    assert np.allclose(out[0, :, 1].numpy(), 0.5) and np.allclose(out[0, :, 2].numpy(), 0.5)
    assert out[1, VSVIG_INDEX["r_elb"]].abs().sum() == 0
    assert out[1, VSVIG_INDEX["r_sho"], 2] == 0.5
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        normalise_keypoints(k, (0, 400))
    with pytest.raises(ValueError, match=r"\(N, 18, 3\)"):
        normalise_keypoints(k[:, :15], (200, 400))
