"""The clip contract (ward.core.clip): the ring that turns per-frame pose results into clips, and its grid."""

from __future__ import annotations

import numpy as np
import pytest

from ward.core.clip import CLIP_FRAMES, CLIP_STRIDE_FRAMES, ClipAssembler, clip_ends, stride_frames
from ward.vision.vsvig import NUM_FRAMES, PATCH_SIZE


def test_the_contract_is_the_models() -> None:
    assert CLIP_FRAMES == NUM_FRAMES == 30 and PATCH_SIZE == 32
    assert CLIP_STRIDE_FRAMES == stride_frames(1.0, 6.0) == 6 and stride_frames(0.01, 6.0) == 1
    np.testing.assert_array_equal(clip_ends(47), [29, 35, 41])


def _frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    kp = np.full((18, 3), i, np.float32)
    patches = np.full((15, 3, 32, 32), i % 256, np.uint8)
    return kp, patches


def test_clip_assembler_emits_first_at_30_then_every_stride() -> None:
    a = ClipAssembler(30, 6)
    emitted = []
    for i in range(60):
        kp, p = _frame(i)
        clip = a.push(kp, p, i / 6)
        if clip is not None:
            emitted.append((i, clip))
    assert [i for i, _ in emitted] == [29, 35, 41, 47, 53, 59]
    for i, clip in emitted:
        assert clip.keypoints.shape == (30, 18, 3) and clip.patches.shape == (30, 15, 3, 32, 32)
        np.testing.assert_array_equal(clip.keypoints[:, 0, 0], np.arange(i - 29, i + 1))
        np.testing.assert_array_equal(clip.patches[:, 0, 0, 0, 0], np.arange(i - 29, i + 1) % 256)
        assert clip.t_end == pytest.approx(i / 6) and clip.valid_fraction == 1.0
    assert [c.index for _, c in emitted] == list(range(6))
    # clips own their data: later pushes do not change an emitted clip
    first = emitted[0][1]
    assert first.keypoints[0, 0, 0] == 0 and first.patches[0, 0, 0, 0, 0] == 0
    assert not np.shares_memory(first.keypoints, a._kp) and not np.shares_memory(first.patches, a._patches)


def test_clip_assembler_missing_patches_and_gaps() -> None:
    a = ClipAssembler(30, 6, max_gap_s=1.0)
    clip = None
    for i in range(30):
        kp, p = _frame(i + 1)
        clip = a.push(kp, None if i % 3 == 0 else p, i / 6)
    assert clip is not None
    assert clip.patch_valid.sum() == 20 and np.all(clip.patches[~clip.patch_valid] == 0)
    assert np.all(clip.patches[clip.patch_valid] > 0)
    # a 10 s outage: the next clip needs 30 fresh frames, never spanning the gap
    out = [a.push(*_frame(1), 20 + i / 6) for i in range(30)]
    assert all(c is None for c in out[:29]) and out[29] is not None and a.resets == 1
    assert out[29].t_start == 20.0
    with pytest.raises(ValueError, match=r"keypoints must have shape \(18, 3\)"):
        a.push(np.zeros((17, 3)), None, 30)
    with pytest.raises(ValueError, match="patches must be uint8"):
        a.push(np.zeros((18, 3)), np.zeros((15, 3, 32, 32), np.float32), 30)
    with pytest.raises(ValueError, match="must not go backwards"):
        a.push(np.zeros((18, 3)), None, 1.0)


def test_clip_assembler_emits_on_the_clip_grid() -> None:
    a = ClipAssembler()
    ends = [i for i in range(100) if a.push(np.zeros((18, 3), np.float32), None, i / 6) is not None]
    np.testing.assert_array_equal(ends, clip_ends(100))
