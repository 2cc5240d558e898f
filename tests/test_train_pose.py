"""Pose training targets agree with the decoder; a tiny training run checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ward.train.pose import PoseTrainConfig, make_targets, pose_accuracy, train_pose
from ward.vision.openpose import build_openpose, load_openpose
from ward.vision.pose import PoseEstimator
from ward.vision.pose_decode import LIMB_JOINTS, LIMB_PAFS, decode_poses_batch


def _person(cx: float = 120.0, cy: float = 80.0) -> np.ndarray:
    """A spread-out upright 18-joint skeleton in network-input pixels (OpenPose order)."""
    xy = np.array([[0, -40], [0, -25], [-15, -25], [-22, -8], [-26, 8], [15, -25], [22, -8], [26, 8],
                   [-9, 10], [-10, 30], [-11, 50], [9, 10], [10, 30], [11, 50], [-4, -44], [4, -44],
                   [-9, -41], [9, -41]], np.float32)
    return np.concatenate([xy + [cx, cy], np.ones((18, 1), np.float32)], 1)


def test_targets_peak_at_joints_with_background_and_unit_pafs():
    p = _person()
    p[10, 2] = 0  # hidden right ankle: no peak, no PAF on the knee -> ankle limb
    heat, paf = make_targets([p], (24, 32), sigma=7.0)
    assert heat.shape == (19, 24, 32) and paf.shape == (38, 24, 32)
    gy, gx = np.unravel_index(heat[0].argmax(), heat[0].shape)
    assert abs(gx * 8 + 3.5 - p[0, 0]) <= 4 and abs(gy * 8 + 3.5 - p[0, 1]) <= 4
    assert heat[10].max() == 0
    np.testing.assert_allclose(heat[18], 1 - heat[:18].max(0))
    mag = np.hypot(paf[0::2], paf[1::2])
    assert np.all((np.abs(mag - 1) < 1e-5) | (mag == 0))
    limb = int(np.flatnonzero((LIMB_JOINTS == [9, 10]).all(1))[0])
    assert not paf[LIMB_PAFS[limb]].any()
    # neck -> nose points up: its PAF's y component is negative where set
    limb = int(np.flatnonzero((LIMB_JOINTS == [1, 0]).all(1))[0])
    fy = paf[LIMB_PAFS[limb, 1]]
    assert (fy < -0.99).any() and not (fy > 0).any()


def test_decoder_recovers_the_people_from_training_targets():
    people = [_person(90, 90), _person(260, 95)]
    heat, paf = make_targets(people, (24, 48), sigma=7.0)
    found = decode_poses_batch(heat[None], paf[None])[0]
    assert len(found) == 2
    for gt in people:
        best = min(found, key=lambda q: np.abs(q[:, :2] - gt[:, :2]).mean())
        assert (best[:, 2] > 0).sum() == 18
        assert np.abs(best[:, :2] - gt[:, :2]).max() < 4.0


def test_tiny_pose_training_writes_a_loadable_checkpoint(tmp_path):
    cfg = PoseTrainConfig(sim_frames=4, steps=2, batch_size=2, height=64, frame_size=(128, 72), eval_frames=2,
                          out=str(tmp_path / "pose"), device="cpu", threads=2, command="pytest")
    res = train_pose(cfg, progress=False, log=lambda s: None)
    model = load_openpose(res["best"])
    meta = model.checkpoint_metadata
    assert meta["trained_on"].startswith("simulated data") and meta["input_height"] == 64
    assert set(meta["metrics"]) >= {"pck@0.1", "mean_error_px", "detection_rate",
                                    "seizure_pck@0.1", "seizure_mean_error_px", "seizure_detection_rate",
                                    "uncovered_pck@0.1", "uncovered_mean_error_px", "uncovered_detection_rate"}
    assert meta["precision"] == "fp32" and meta["lineage"] == []
    assert res["history"][-1]["step"] == 2
    x = torch.zeros(1, 3, 64, 120)
    heat, paf = model(x)
    assert heat.shape == (1, 19, 8, 15) and paf.shape == (1, 38, 8, 15)


def test_pose_accuracy_counts_hits_misses_and_detection_rate():
    gt = _person()
    off = gt.copy()
    off[:9, 0] += 1.0       # within 0.1 of the body size
    off[9:, 0] += 60.0      # far off
    est = lambda frames: [[off] for _ in frames]  # noqa: E731
    m = pose_accuracy(est, np.zeros((3, 8, 8, 3), np.uint8), [[gt]] * 3)
    assert m["pck@0.1"] == pytest.approx(9 / 18)
    assert m["detection_rate"] == 1.0
    none = pose_accuracy(lambda f: [[] for _ in f], np.zeros((2, 8, 8, 3), np.uint8), [[gt]] * 2)
    assert none["pck@0.1"] == 0.0 and none["detection_rate"] == 0.0


def test_pose_fine_tune_in_bf16_resumes_in_the_same_precision_and_keeps_the_lineage(tmp_path):
    first = PoseTrainConfig(sim_frames=4, steps=2, batch_size=2, height=64, frame_size=(128, 72), eval_frames=2,
                            out=str(tmp_path / "a"), device="cpu", threads=2, command="first run")
    base = train_pose(first, progress=False, log=lambda s: None)["best"]
    cfg = PoseTrainConfig(sim_frames=4, steps=2, batch_size=2, height=64, frame_size=(128, 72), eval_frames=2,
                          init=str(base), seizure_share=0.5, precision="bf16", out=str(tmp_path / "b"),
                          device="cpu", threads=2, command="fine-tune", max_minutes=0.0)
    train_pose(cfg, progress=False, log=lambda s: None)  # the time budget stops it before any step
    logs: list[str] = []
    res = train_pose(PoseTrainConfig(**{**cfg.__dict__, "precision": "fp32", "max_minutes": None}), resume=True,
                     progress=False, log=logs.append)
    meta = load_openpose(res["best"]).checkpoint_metadata
    assert meta["precision"] == "bf16", "a resumed run keeps the precision it started with"
    assert any("precision: bf16" in m for m in logs)
    assert meta["lineage"] == ["first run"] and meta["train_config"]["seizure_share"] == 0.5


def test_sim_frames_draws_the_asked_share_inside_seizures():
    from ward.sim.frames import pick_frames, sim_frames

    for share, inside in ((1.0, 20), (0.5, 10), (0.25, 5)):
        idx = pick_frames(1800, 20, np.random.default_rng(int(100 * share)), (600, 900), share)
        assert len(np.unique(idx)) == 20 and np.all(np.diff(idx) > 0)
        assert int(((idx >= 600) & (idx < 900)).sum()) >= inside
    few = pick_frames(1800, 20, np.random.default_rng(1), (600, 605), 1.0)  # a seizure shorter than the ask
    assert len(np.unique(few)) == 20 and int(((few >= 600) & (few < 605)).sum()) == 5
    assert np.array_equal(pick_frames(1800, 20, np.random.default_rng(3)),
                          np.sort(np.random.default_rng(3).choice(1800, 20, replace=False)))

    before, _ = sim_frames(6, 3000, (128, 72), per_scenario=6)
    again, _ = sim_frames(6, 3000, (128, 72), per_scenario=6, seizure_share=0.0)
    assert np.array_equal(before, again), "share 0 draws the frames the shipped pose model was trained on"
    with pytest.raises(ValueError, match="seizure_share"):
        sim_frames(2, 3000, (128, 72), seizure_share=1.5)
    _, covered = sim_frames(6, 3000, (128, 72), per_scenario=3)
    _, bare = sim_frames(6, 3000, (128, 72), per_scenario=3, uncovered_share=1.0)
    legs = [8, 9, 11, 12]  # hips and knees (OpenPose-18)
    assert not any(p[0][legs, 2].any() for p in covered), "the default draw covers the legs"
    assert sum(bool(p[0][legs, 2].any()) for p in bare) >= 4, "uncovered scenarios show hips or knees"
