"""Pose decoding parity with the original post-processing, preprocessing arithmetic, PoseEstimator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ward.vision.pose import PoseEstimator, padded_size, preprocess
from ward.vision.pose_decode import decode_poses, decode_poses_batch, reference_decode_poses


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def postproc(fixtures_dir):
    return dict(np.load(fixtures_dir / "lwop_postproc.npz"))


def _official_people(z: dict) -> list[np.ndarray]:
    """The fixture's pose entries as (18, 3) rows in network-input pixels (x4 grid px * 8 / 4)."""
    people = []
    for entry in z["pose_entries"]:
        ids = entry[:18].astype(int)
        p = np.full((18, 3), -1.0)
        p[ids >= 0, :2] = z["all_keypoints"][ids[ids >= 0], :2] * 2
        p[ids >= 0, 2] = z["all_keypoints"][ids[ids >= 0], 2]
        people.append(p)
    return people


def _assert_same_people(got: list[np.ndarray], want: list[np.ndarray], tol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == (18, 3)
        np.testing.assert_array_equal(g[:, 0] < 0, w[:, 0] < 0)
        np.testing.assert_allclose(g, w, atol=tol)


def test_decoding_matches_official_postprocessing(postproc):
    want = _official_people(postproc)
    got = decode_poses(postproc["heatmaps_stride8"], postproc["pafs_stride8"])
    _assert_same_people(got, want, tol=0.5)
    # the two joints lost to exact plateaus in the original are lost here too
    assert sorted(int((p[:, 0] < 0).sum()) for p in got) == [0, 1, 1]
    # and the people are where the synthetic ground truth put them (grid quantisation: 2 px)
    gt = postproc["gt_people_input_px"]
    for p in got:
        nearest = gt[np.argmin([np.abs(g[1] - p[1, :2]).sum() for g in gt])]
        ok = p[:, 0] >= 0
        assert np.abs(nearest[ok] - p[ok, :2]).max() <= 2.0


def test_torch_input_equals_numpy(postproc):
    got = decode_poses(torch.from_numpy(postproc["heatmaps_stride8"]), torch.from_numpy(postproc["pafs_stride8"]))
    _assert_same_people(got, decode_poses(postproc["heatmaps_stride8"], postproc["pafs_stride8"]), tol=0)


def test_reference_loop_version_matches_fixture(postproc):
    want = _official_people(postproc)
    _assert_same_people(reference_decode_poses(postproc["heatmaps_up4"], postproc["pafs_up4"]), want, tol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_equals_reference_on_crowded_random_maps(seed):
    """Hundreds of candidate people: exercises NMS chains, conflicts and ear fills far beyond the fixture."""
    rng = np.random.default_rng(seed)
    n, h, w = 2, 12, 20
    hm = cv2.GaussianBlur(np.abs(rng.normal(0, 0.5, (h, w, n * 19))).astype(np.float32), (3, 3), 0)
    hm = np.ascontiguousarray(hm.reshape(h, w, n, 19).transpose(2, 3, 0, 1))
    pafs = rng.normal(0, 0.4, (n, 38, h, w)).astype(np.float32)
    got = decode_poses_batch(hm, pafs)
    assert sum(len(g) for g in got) > 30
    for i in range(n):
        up = lambda m: cv2.resize(np.ascontiguousarray(m.transpose(1, 2, 0)), (w * 4, h * 4),  # noqa: E731
                                  interpolation=cv2.INTER_CUBIC)
        _assert_same_people(got[i], reference_decode_poses(up(hm[i]), up(pafs[i])), tol=1e-6)


def test_empty_maps_give_no_people(postproc):
    assert decode_poses(np.zeros((19, 32, 57), np.float32), np.zeros((38, 32, 57), np.float32)) == []
    # peaks but no PAF support: keypoints never form a person
    assert decode_poses(postproc["heatmaps_stride8"], np.zeros((38, 32, 57), np.float32)) == []
    assert decode_poses_batch(np.zeros((0, 19, 8, 8), np.float32), np.zeros((0, 38, 8, 8), np.float32)) == []


def test_batch_equals_per_frame(postproc):
    hm, pf = postproc["heatmaps_stride8"], postproc["pafs_stride8"]
    frames_hm = np.stack([hm, np.zeros_like(hm), hm[:, :, ::-1], hm])
    frames_pf = np.stack([pf, np.zeros_like(pf), pf[:, :, ::-1] * np.where(np.arange(38) % 2 == 0, -1, 1)[:, None, None], pf])
    frames_pf = np.ascontiguousarray(frames_pf, dtype=np.float32)
    batch = decode_poses_batch(np.ascontiguousarray(frames_hm), frames_pf)
    assert [len(b) for b in batch] == [3, 0, 3, 3]  # the mirrored frame is decoded too
    for i in range(4):
        _assert_same_people(batch[i], decode_poses(np.ascontiguousarray(frames_hm[i]), frames_pf[i]), tol=0)
    # a larger batch (12 frames) gives the same people frame by frame
    big = decode_poses_batch(np.ascontiguousarray(np.tile(frames_hm, (3, 1, 1, 1))), np.tile(frames_pf, (3, 1, 1, 1)))
    assert [len(b) for b in big] == [3, 0, 3, 3] * 3
    for i in range(12):
        _assert_same_people(big[i], batch[i % 4], tol=0)


def test_decode_bad_inputs():
    with pytest.raises(ValueError, match="one frame"):
        decode_poses(np.zeros((1, 19, 8, 8), np.float32), np.zeros((1, 38, 8, 8), np.float32))
    with pytest.raises(ValueError, match="pafs must be"):
        decode_poses_batch(np.zeros((1, 19, 8, 8), np.float32), np.zeros((1, 19, 8, 8), np.float32))
    with pytest.raises(ValueError, match="same N, H and W"):
        decode_poses_batch(np.zeros((1, 19, 8, 8), np.float32), np.zeros((1, 38, 8, 9), np.float32))
    with pytest.raises(ValueError, match="floating point"):
        decode_poses_batch(np.zeros((1, 19, 8, 8), np.int32), np.zeros((1, 38, 8, 8), np.float32))


# ------------------------------------------------------------------------------------ preprocessing

@pytest.mark.parametrize("hw, net_hw, pad", [
    ((1080, 1920), (256, 456), (0, 0, 0, 1)),   # 455 wide -> 456, extra pixel on the right
    ((480, 640), (256, 344), (0, 1, 0, 2)),     # 341 -> 344
    ((400, 300), (256, 256), (0, 32, 0, 32)),   # portrait: padded to at least square
    ((576, 768), (256, 344), (0, 1, 0, 2)),
])
def test_preprocess_shapes_and_padding(hw, net_hw, pad):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, *hw, 3), dtype=np.uint8)
    x, scale, got_pad = preprocess(frames)
    assert tuple(x.shape) == (2, 3, *net_hw) and x.dtype == torch.float32
    assert got_pad == pad and scale == pytest.approx(256 / hw[0])
    assert padded_size(*hw) == (scale, (net_hw[0] - pad[0] - pad[2], net_hw[1] - pad[1] - pad[3]), pad)
    # the original pipeline: cv2.resize(INTER_LINEAR) on uint8, (x - 128) / 256, copyMakeBorder with 0
    ref = (cv2.resize(frames[1], (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR).astype(np.float32)
           - 128) / 256
    ref = cv2.copyMakeBorder(ref, pad[0], pad[2], pad[1], pad[3], cv2.BORDER_CONSTANT, value=(0, 0, 0))
    assert np.abs(x[1].permute(1, 2, 0).numpy() - ref).max() <= 1 / 256 + 1e-6  # cv2 fixed-point rounding
    assert np.abs(x[1].permute(1, 2, 0).numpy() - ref).mean() < 0.2 / 256  # mostly identical


def test_preprocess_keeps_bgr_and_pad_value():
    frame = np.zeros((1, 100, 50, 3), np.uint8)
    frame[..., 0] = 255  # blue
    x, _, pad = preprocess(frame, pad_value=-9.0)
    assert pad == (0, 64, 0, 64)
    assert torch.all(x[0, 0, :, 64:-64] == (255 - 128) / 256) and torch.all(x[0, 2, :, 64:-64] == -0.5)
    assert torch.all(x[0, :, :, :64] == -9.0) and torch.all(x[0, :, :, -64:] == -9.0)


@pytest.mark.parametrize("frames, message", [
    (np.zeros((0, 10, 10, 3), np.uint8), "empty frame batch"),
    (np.zeros((1, 0, 10, 3), np.uint8), "empty frame batch"),
    (np.zeros((1, 10, 10, 3), np.float32), "must be uint8"),
    (np.zeros((1, 10, 10, 4), np.uint8), r"\(N, H, W, 3\)"),
    (np.zeros((1, 10, 10), np.uint8), r"\(N, H, W, 3\)"),
    ([np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)], "different sizes"),
    ([], "no frames"),
    ("frame.png", "numpy array"),
])
def test_preprocess_bad_input(frames, message):
    with pytest.raises(ValueError, match=message):
        preprocess(frames)


# ------------------------------------------------------------------------------------ estimator

class _FixedMaps(torch.nn.Module):
    """Stands in for the network: returns the fixture's maps for every frame (input 256 x 456)."""

    def __init__(self, heatmaps: np.ndarray, pafs: np.ndarray) -> None:
        super().__init__()
        self.heatmaps, self.pafs = torch.from_numpy(heatmaps), torch.from_numpy(pafs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert tuple(x.shape[1:]) == (3, 256, 456)
        n = x.shape[0]
        return self.heatmaps.expand(n, -1, -1, -1), self.pafs.expand(n, -1, -1, -1)


def test_estimator_maps_keypoints_to_frame_pixels(postproc):
    est = PoseEstimator(_FixedMaps(postproc["heatmaps_stride8"], postproc["pafs_stride8"]), refine=False)
    frames = np.zeros((2, 1080, 1920, 3), np.uint8)
    out = est(frames)
    assert len(out) == 2 and all(len(f) == 3 for f in out)
    scale = 256 / 1080
    for got, want in zip(out[1], _official_people(postproc)):
        present = want[:, 0] >= 0
        np.testing.assert_allclose(got[present, :2], want[present, :2] / scale, atol=1e-3)  # pad left/top = 0
        np.testing.assert_allclose(got[present, 2], want[present, 2], atol=1e-6)
        assert np.all(got[~present] == -1)


def test_estimator_runs_small_network_end_to_end():
    from ward.vision.openpose import build_openpose, fuse_for_inference

    est = PoseEstimator(fuse_for_inference(build_openpose("small").eval()), height=128)
    out = est(np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8))
    assert len(out) == 2 and all(isinstance(f, list) for f in out)
    with pytest.raises(ValueError, match="multiple of 8"):
        PoseEstimator(build_openpose("small"), height=250)


# ------------------------------------------------------------------------------ sub-cell refinement

def test_refinement_moves_joints_within_half_a_cell_and_towards_the_truth(postproc):
    """Same people, joints and scores as the official decoding; positions move by at most half a grid
    cell (1 network-input px at x4) and, on the fixture's synthetic people, closer to where they were put."""
    from ward.vision.pose_decode import STRIDE

    grid = decode_poses(postproc["heatmaps_stride8"], postproc["pafs_stride8"])
    fine = decode_poses(postproc["heatmaps_stride8"], postproc["pafs_stride8"], refine=True)
    assert len(fine) == len(grid)
    gt = postproc["gt_people_input_px"]
    err_grid, err_fine = [], []
    for g, f in zip(grid, fine):
        np.testing.assert_array_equal(g[:, 2], f[:, 2])
        ok = g[:, 0] >= 0
        assert np.abs(f[ok, :2] - g[ok, :2]).max() <= 0.5 * STRIDE / 4 + 1e-5
        assert np.abs(f[ok, :2] - g[ok, :2]).max() > 0  # it does move joints
        nearest = gt[np.argmin([np.abs(t[1] - g[1, :2]).sum() for t in gt])]
        err_grid += np.linalg.norm(nearest[ok] - g[ok, :2], axis=1).tolist()
        err_fine += np.linalg.norm(nearest[ok] - f[ok, :2], axis=1).tolist()
    assert np.mean(err_fine) < np.mean(err_grid), (np.mean(err_fine), np.mean(err_grid))


def test_refine_peaks_finds_an_off_grid_maximum():
    """A smooth peak centred between grid cells: the parabola vertex lands near the true centre, on
    both axes, for peaks at the border (replicated neighbours) and on flat tops (no move)."""
    from ward.vision.pose_decode import refine_peaks

    h, w = 20, 30
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    maps = np.zeros((2, h, w, 18), np.float32)
    centres = [(10.3, 7.8), (21.6, 12.45)]
    for j, (cx, cy) in enumerate(centres):
        maps[0, :, :, j] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.5 ** 2))
    maps[1, :, 0, 3] = np.exp(-((yy[:, 0] - 5.2) ** 2) / 8)  # a ridge on the left border, peak at y 5
    maps[1, 4:7, 10:13, 4] = 0.5  # flat top
    f = np.array([0, 0, 1, 1])
    t = np.array([0, 1, 3, 4])
    x = np.array([10, 22, 0, 11])
    y = np.array([8, 12, 5, 5])
    rx, ry = refine_peaks(maps, f, t, x, y)
    assert rx.dtype == np.float32
    for k, (cx, cy) in enumerate(centres):
        assert abs(rx[k] - cx) < 0.05 and abs(ry[k] - cy) < 0.05, (rx[k], ry[k], cx, cy)
    assert rx[2] == 0 and abs(ry[2] - 5.2) < 0.05  # at the left border: never off the map
    assert rx[3] == 11 and ry[3] == 5  # flat top: no fit, no move


def test_estimator_refines_by_default_and_can_match_the_demo():
    from ward.vision.openpose import build_openpose

    torch.manual_seed(0)
    model = build_openpose("small").eval()
    assert PoseEstimator(model, height=64).refine
    assert not PoseEstimator(model, height=64, refine=False).refine
