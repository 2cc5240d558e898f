"""Simulated inputs for int8 calibration and for its accuracy gate (``ward.vision.quantize``).

``ward.vision`` may not import the simulator or the clip pipeline (layers, see pyproject
``[tool.importlinter]``), so the inputs are made here, one layer up, and handed to
``ward.vision.quantize`` as its sample source: importing this module registers them
(:func:`register`).

Seed ranges (scenario seeds; none overlaps another use):

* training: 1000-2999 (VSViG clips), 3000-3999 (pose frames; 3900+ its held-out check);
* validation / tuning (``ward eval --seed 800000``): 800000+; evaluation (``EVAL_SEED``): 900000+;
* the engines' accuracy tests (``tests/test_engines.py``): 650000+;
* int8 calibration: :data:`CALIBRATION_SEED` (700000+); the int8 gate's held-out inputs:
  :data:`GATE_SEED` (750000+).

Pose inputs are frames as a camera delivers them (640x360 BGR, sampled across random scenarios
with one seizure each, ``ward.sim.frames.sim_frames``) with the patient's ground truth; the
quantizer preprocesses them at the serving height itself. VSViG inputs are clips of random
90-second scenarios with one seizure each, through ``ward.pipeline.BedPipeline`` exactly as
``ward eval`` builds them (simulator keypoints with the pose noise of its fast path), one clip
every :data:`CLIP_STRIDE_S` seconds, spread over the scenario when fewer are asked for.
"""

from __future__ import annotations

import numpy as np

from ward.core.clip import MODEL_FPS
from ward.evaluation.run import PoseNoise, noisy_keypoints
from ward.pipeline import BedPipeline
from ward.vision.quantize import ClipSamples, PoseSamples, Split, register_sample_source

CALIBRATION_SEED = 700_000
GATE_SEED = 750_000
FRAME_SIZE = (640, 360)
SCENARIO_S = 90.0
CLIP_STRIDE_S = 2.0
_CHUNK = 120


def _base(split: Split) -> int:
    if split not in ("calibration", "held_out"):
        raise ValueError(f"split must be calibration or held_out, got {split!r}")
    return CALIBRATION_SEED if split == "calibration" else GATE_SEED


def pose_samples(n: int, split: Split = "calibration") -> PoseSamples:
    """``n`` simulated frames and their patients' ground truth."""
    from ward.sim.frames import sim_frames  # noqa: PLC0415

    frames, people = sim_frames(n, _base(split), FRAME_SIZE, per_scenario=25)
    return PoseSamples(frames, np.stack([p[0] for p in people]).astype(np.float32))


def clip_samples(n: int, split: Split = "calibration") -> ClipSamples:
    """``n`` simulated clips as VSViG takes them (``BedPipeline.vsvig_inputs``)."""
    from ward.sim.render import SimCamera  # noqa: PLC0415
    from ward.sim.scenario import random_scenario  # noqa: PLC0415

    base = _base(split)
    patches: list[np.ndarray] = []
    kpts: list[np.ndarray] = []
    k = 0
    w, h = FRAME_SIZE
    while len(patches) < n:
        cam = SimCamera(random_scenario(base + k, SCENARIO_S, n_seizures=1, fps=MODEL_FPS, width=w, height=h))
        k18 = noisy_keypoints(cam.track()["kpts"], np.random.default_rng([base, k]), PoseNoise())
        pipeline = BedPipeline(stride_frames=int(round(CLIP_STRIDE_S * MODEL_FPS)))
        inputs = []
        for a in range(0, cam.n_frames, _CHUNK):
            b = min(cam.n_frames, a + _CHUNK)
            frames = np.stack([cam.frame(i)[0] for i in range(a, b)])
            inputs += [pipeline.vsvig_inputs(c) for c in pipeline.push(frames, np.arange(a, b) / MODEL_FPS,
                                                                         patient=k18[a:b]).clips]
        want = min(len(inputs), n - len(patches))  # spread over the scenario: before, during, after the seizure
        for i in np.unique(np.linspace(0, len(inputs) - 1, want).round().astype(int)):
            patches.append(inputs[i][0])
            kpts.append(inputs[i][1])
        k += 1
    return ClipSamples(np.stack(patches[:n]), np.stack(kpts[:n]))


def register() -> None:
    """Make these the inputs ``ward.vision.quantize`` calibrates and gates with."""
    register_sample_source("pose", pose_samples)
    register_sample_source("vsvig", clip_samples)


register()
