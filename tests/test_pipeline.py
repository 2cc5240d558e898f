"""The one bed pipeline (ward.pipeline): patient selection, and proof that the camera actor, `ward eval`
and `ward dataset build` feed VSViG the very same clips from the same frames and keypoints."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from test_train_pose import _person

from ward.camera.reader import Frame
from ward.config import load_ward_config
from ward.core.clip import clip_ends
from ward.dataset.build import build_dataset, collect_sim
from ward.evaluation.run import EvalConfig, PoseNoise, bed_roi_from_track, score_scenario
from ward.pipeline import BedPipeline, ClipScorer
from ward.serve.camera_actor import CameraBed
from ward.sim.output import render_to_files
from ward.sim.render import SimCamera
from ward.sim.scenario import Scenario, SeizureSpec
from ward.vision.openpose import build_openpose
from ward.vision.pose import PoseEstimator

SC = Scenario(seed=5, duration_s=8, fps=6, width=320, height=180,
              seizures=[SeizureSpec(type="myoclonic", eeg_onset_s=1, clinical_onset_s=2, end_s=7)])
N = 48  # 8 s at 6 fps -> clips ending at frames 29, 35, 41, 47


# -- patient selection -------------------------------------------------------------------------------

def test_pipeline_selects_the_patient_and_resets_per_video():
    patient = _person(60, 60)
    nurse = _person(150, 60)
    nurse[:, 2] = 0.9
    calls = []

    def fake(frames):
        calls.append(len(frames))
        return [[nurse, patient] for _ in frames]

    p = BedPipeline((0.0, 0.0, 0.5, 1.0))
    out = p.push(np.zeros((3, 200, 200, 3), np.uint8), np.arange(3) / 6, pose=fake).keypoints
    assert out.shape == (3, 18, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :2], patient[:, :2], atol=1e-3)
    p.push(np.zeros((2, 200, 200, 3), np.uint8), np.arange(3, 5) / 6, pose=fake)  # continues in time
    p.reset()
    p.push(np.zeros((1, 200, 200, 3), np.uint8), [0.0], pose=fake)  # a new video starts at t = 0 again
    assert calls == [3, 2, 1]
    with pytest.raises(ValueError, match="returned 0 results"):
        BedPipeline().push(np.zeros((2, 10, 10, 3), np.uint8), [0.0, 1 / 6], pose=lambda f: [])
    with pytest.raises(ValueError, match="exactly one of"):
        BedPipeline().push(np.zeros((1, 10, 10, 3), np.uint8), [0.0])


def test_pipeline_with_a_tiny_real_pose_network():
    torch.manual_seed(0)
    est = PoseEstimator(build_openpose("small").eval(), height=64)
    out = BedPipeline().push(np.full((2, 72, 128, 3), 120, np.uint8), [0.0, 1 / 6], pose=est).keypoints
    assert out.shape == (2, 18, 3) and np.isfinite(out).all()


# -- the three users ---------------------------------------------------------------------------------

class _Recorder(torch.nn.Module):
    """A VSViG stand-in that keeps every input it scores."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: list[torch.Tensor] = []
        self.kpts: list[torch.Tensor] = []

    def forward(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        self.patches.append(patches.clone())
        self.kpts.append(kpts.clone())
        return torch.linspace(0.1, 0.9, patches.shape[0])

    def inputs(self) -> tuple[np.ndarray, np.ndarray]:
        return torch.cat(self.patches).to(torch.uint8).numpy(), torch.cat(self.kpts).numpy()


def _reference(pipeline: BedPipeline, frames: np.ndarray, **posed) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Clips of the pipeline used directly: stacked VSViG inputs and clip end times."""
    clips = pipeline.push(frames, np.arange(len(frames)) / 6.0, **posed).clips
    inputs = [pipeline.vsvig_inputs(c) for c in clips]
    return np.stack([i[0] for i in inputs]), np.stack([i[1] for i in inputs]), [c.t_end for c in clips]


@pytest.fixture(scope="module")
def sim():
    cam = SimCamera(SC)
    assert cam.n_frames == N
    frames = np.stack([cam.frame(i)[0] for i in range(N)])
    truth = np.stack([cam.keypoints(i) for i in range(N)])
    return frames, truth, cam.track()["kpts"]


def test_eval_fast_path_scores_the_pipelines_clips(sim):
    frames, truth, _ = sim
    model = _Recorder()
    cfg = EvalConfig(noise=PoseNoise(jitter_px=0.0, p_drop=0.0, p_swap=0.0), batch=3)
    out = score_scenario(SC, model, cfg, np.random.default_rng(0))
    patches, kpts, t_end = _reference(BedPipeline(), frames, patient=truth)
    assert len(model.patches) == 2  # batches of 3 clips: 3 + 1
    got_p, got_k = model.inputs()
    assert patches.shape == (4, 30, 15, 3, 32, 32) and patches.max() > 0
    assert np.array_equal(got_p, patches) and np.array_equal(got_k, kpts)
    np.testing.assert_array_equal(out["t_end"], t_end)
    np.testing.assert_array_equal(out["t_end"], clip_ends(N) / 6.0)
    np.testing.assert_allclose(out["p"], [0.1, 0.5, 0.9, 0.1])


def test_camera_actor_and_eval_full_path_feed_vsvig_the_same_clips(sim):
    """Simulator keypoints as the pose result: the camera actor's bed (one frame at a time, through the
    patient selector) and `ward eval`'s full path (chunks of frames) give byte-identical VSViG inputs."""
    frames, truth, track = sim
    people = [[np.where(k[:, 2:] > 0, k, -1.0).astype(np.float32)] for k in truth]
    roi = bed_roi_from_track(track, SC.width, SC.height)

    def pose(chunk):
        start = pose.n
        pose.n += len(chunk)
        return people[start:pose.n]

    pose.n = 0
    model = _Recorder()
    score_scenario(SC, model, EvalConfig(batch=64), np.random.default_rng(0), pose=pose)
    eval_p, eval_k = model.inputs()

    cfg = load_ward_config({
        "beds": [{"bed_id": "b1", "source": "sim://?seed=5", "keypoints": "simulator", "height": SC.height,
                  "bed_roi": list(roi)}],
        "models": {"pose": {"path": "p.pt"}, "vsvig": {"path": "v.pt"}},
    }, validate_paths=False)

    class _Reader:
        found: list[bool] = []

        def set_patient_found(self, found: bool) -> None:
            self.found.append(found)

    bed = CameraBed(cfg.beds[0], cfg, reader_factory=lambda cfg, bed_id: _Reader())
    served = []
    for i in range(N):
        frame = Frame(frames[i], i / 6.0, 1000.0 + i / 6.0, i + 1, truth[i])
        img = bed.prepare(frame)
        clip = bed.on_pose(frame, img, bed.simulator_people(frame, img))
        if clip is not None:
            patches, kpts, score = bed.clip_request(clip)
            served.append((patches, kpts, score(0.5)))
    assert [s[2].t for s in served] == pytest.approx(1000.0 + clip_ends(N) / 6.0)
    assert all(s[2].bed_id == "b1" and s[2].pose_quality == 1.0 for s in served)
    ref_p, ref_k, _ = _reference(BedPipeline(roi), frames, people=people)
    assert np.array_equal(np.stack([s[0] for s in served]), ref_p) and np.array_equal(eval_p, ref_p)
    assert np.array_equal(np.stack([s[1] for s in served]), ref_k) and np.array_equal(eval_k, ref_k)
    assert ref_p.max() > 0 and all(_Reader.found)


def test_dataset_builder_writes_the_pipelines_clips(sim, tmp_path):
    _, truth, _ = sim
    render_to_files(SC, tmp_path / "v")
    man = build_dataset(collect_sim([tmp_path / "v"]), tmp_path / "ds")
    m = json.loads(man.read_text())
    (f,) = [f for files in m["splits"].values() for f in files]
    cap = cv2.VideoCapture(str(tmp_path / "v" / "video.mp4"))
    decoded = []
    while (got := cap.read())[0]:
        decoded.append(got[1])
    cap.release()
    patches, kpts, t_end = _reference(BedPipeline(), np.stack(decoded), patient=truth)
    with np.load(tmp_path / "ds" / f) as z:
        assert np.array_equal(z["patches"], patches) and np.array_equal(z["kpts"], kpts)
        np.testing.assert_array_equal(z["t_end"], np.float32(t_end))


def test_clip_scorer_batches_in_order():
    seen = []

    def score(p, k):
        seen.append(p.shape[0])
        return p.reshape(p.shape[0], -1)[:, 0].float().numpy()

    s = ClipScorer(score, batch=2)
    for i in range(5):
        s.add((np.full((30, 15, 3, 32, 32), i, np.uint8), np.zeros((30, 15, 3), np.float32)))
    np.testing.assert_array_equal(s.finish(), [0, 1, 2, 3, 4])
    assert seen == [2, 2, 1] and s.finish().shape == (0,)
