"""Bed keypoints 'simulator': sim:// beds can bypass the pose model with the simulator's ground truth."""

import time

import numpy as np
import pytest

from ward.config import ConfigError, load_ward_config

SIM = "sim://?seed=21&duration=60&fps=12&width=640&height=360&loop=1&seizures=0"


def _cfg(source=SIM, keypoints="simulator"):
    return load_ward_config({
        "beds": [{"bed_id": "b1", "source": source, "keypoints": keypoints, "height": 180}],
        "models": {"pose": {"path": "p.pt"}, "vsvig": {"path": "v.pt"}},
    }, validate_paths=False)


def test_simulator_keypoints_need_a_sim_source():
    with pytest.raises(ConfigError, match=r"beds\[0\].*sim://"):
        _cfg("rtsp://127.0.0.1:8554/bed1")
    with pytest.raises(ConfigError, match=r"beds\[0\]\.keypoints"):
        _cfg(keypoints="oracle")
    assert _cfg().beds[0].keypoints == "simulator"
    assert _cfg(keypoints="pose").beds[0].keypoints == "pose"


def test_pipeline_uses_ground_truth_scaled_to_the_working_frame():
    from ward.serve.camera_actor import CameraBed

    cfg = _cfg()
    p = CameraBed(cfg.beds[0], cfg)
    try:
        deadline = time.monotonic() + 20
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = p.sampler.next_frame(p.reader, 0.5)
        assert frame is not None, f"no frame from the simulator: {p.reader.status()}"
        assert frame.truth_keypoints is not None and frame.truth_keypoints.shape == (18, 3)
        img = p.prepare(frame)
        assert img.shape[0] == 180 and frame.image.shape[0] == 360
        people = p.simulator_people(frame, img)
        assert len(people) == 1
        truth, got = frame.truth_keypoints, people[0]
        vis = truth[:, 2] > 0
        assert vis.sum() >= 5
        np.testing.assert_allclose(got[vis, :2], truth[vis, :2] * 0.5, atol=1e-4)
        assert (got[~vis] == -1).all()
        p.on_pose(frame, img, people)
        assert p.last_keypoints is not None and (p.last_keypoints[:, 2] > 0).sum() >= 5
        assert p.status().keypoints_source == "simulator"
    finally:
        p.reader.stop()
