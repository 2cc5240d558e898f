"""int8 quantization (ward.vision.quantize) and its accuracy gate, with the shipped weights.

Measured on this project's simulator (docs/inference.md#int8): plain post-training int8 of both
shipped models fails the gate by a wide margin (pose: ~72 % of the patient's joints within 1 px,
VSViG: max |p - p_fp32| ~0.3-0.4), so the tests check that the gate rejects them with the numbers,
that the verdict is cached, and that a model which does match fp32 (every op kept in fp32, the
ignored-scope mechanism at its limit) passes and is cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import ward.evaluation.calibration as calibration  # noqa: E402  (registers the simulator's inputs)
from ward.vision import quantize as Q  # noqa: E402
from ward.vision.engines import EngineError  # noqa: E402

HEIGHT = 256
"""The serving height: the shipped small pose model finds no one at 128 (PCK 0, so the gate would be vacuous)."""
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WARD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def pose_onnx(tmp_path_factory) -> Path:
    from ward.vision.export import export_pose_onnx
    from ward.vision.openpose import load_openpose

    return export_pose_onnx(load_openpose(ROOT / "models/ward-pose-small.pt"),
                            tmp_path_factory.mktemp("onnx") / "pose.onnx", height=HEIGHT)


@pytest.fixture(scope="module")
def vsvig_onnx(tmp_path_factory) -> Path:
    from ward.vision.export import export_vsvig_onnx
    from ward.vision.vsvig import load_vsvig

    return export_vsvig_onnx(load_vsvig(ROOT / "models/ward-vsvig-light.pt"), tmp_path_factory.mktemp("onnx") / "vsvig.onnx")


@pytest.fixture(scope="module")
def frames() -> dict[str, Q.PoseSamples]:
    return {"calibration": calibration.pose_samples(24, "calibration"),
            "held_out": calibration.pose_samples(24, "held_out")}


@pytest.fixture(scope="module")
def clips() -> dict[str, Q.ClipSamples]:
    return {"calibration": calibration.clip_samples(16, "calibration"),
            "held_out": calibration.clip_samples(24, "held_out")}


def _no_quantizing(*args, **kwargs):
    raise AssertionError("quantized again instead of using the cache")


def test_seed_ranges_disjoint():
    from ward.evaluation.run import EVAL_SEED
    from ward.train.pose import HELDOUT_SEED_BASE, TRAIN_SEED_BASE

    used = [(1000, 3000), (TRAIN_SEED_BASE, TRAIN_SEED_BASE + 1000), (HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + 100),
            (650_000, 700_000), (800_000, 900_000), (EVAL_SEED, EVAL_SEED + 100_000)]
    mine = [(calibration.CALIBRATION_SEED, calibration.GATE_SEED), (calibration.GATE_SEED, 800_000)]
    for a, b in mine:
        assert all(b <= lo or a >= hi for lo, hi in used), (a, b)


def test_held_out_differs_and_covers_seizures(frames, clips):
    assert not np.array_equal(frames["calibration"].frames[0], frames["held_out"].frames[0])
    assert clips["held_out"].patches.shape == (24, 30, 15, 3, 32, 32)
    assert clips["held_out"].patches.dtype == np.uint8
    assert clips["held_out"].kpts.dtype == np.float32


def test_without_a_source_says_where_to_get_one(monkeypatch, tmp_path, vsvig_onnx):
    monkeypatch.setattr(Q, "_SOURCES", {})
    with pytest.raises(EngineError, match="ward.evaluation.calibration"):
        Q.quantize_vsvig(vsvig_onnx, tmp_path / "v.xml", n_clips=4)


def test_pose_int8_rejected_by_the_gate_and_the_verdict_cached(pose_onnx, frames, tmp_path, monkeypatch):
    out = tmp_path / "pose-int8.xml"
    with pytest.raises(EngineError, match=r"int8 pose rejected by the accuracy gate: joints within 1 px 0\.\d+.*"
                                          r"PCK@0\.1 fp32 .*use precision bf16/fp32") as err:
        Q.quantize_pose(pose_onnx, out, HEIGHT, samples=frames["calibration"], held_out=frames["held_out"])
    verdict = Q.read_verdict(out)
    assert verdict is not None and not verdict.passed
    assert verdict.numbers["joints within 1 px"] < Q.POSE_JOINT_SHARE
    assert not out.exists()
    monkeypatch.setattr(Q, "_nncf_quantize", _no_quantizing)
    with pytest.raises(EngineError) as again:
        Q.quantize_pose(pose_onnx, out, HEIGHT, samples=frames["calibration"], held_out=frames["held_out"])
    assert str(again.value) == str(err.value)


def test_vsvig_int8_rejected_by_the_gate(vsvig_onnx, clips, tmp_path):
    out = tmp_path / "vsvig-int8.xml"
    with pytest.raises(EngineError, match=r"int8 vsvig rejected by the accuracy gate: max \|p - p_fp32\| 0\.\d+"):
        Q.quantize_vsvig(vsvig_onnx, out, samples=clips["calibration"], held_out=clips["held_out"])
    verdict = Q.read_verdict(out)
    assert verdict is not None and verdict.numbers["max |p - p_fp32|"] > Q.VSVIG_P_DELTA


def test_gate_rejects_a_model_calibrated_on_garbage(vsvig_onnx, clips, tmp_path):
    """Whatever the recipe achieves on real clips, one calibrated on black patches must not pass."""
    n = 4
    garbage = Q.ClipSamples(np.zeros((n, 30, 15, 3, 32, 32), np.uint8), np.zeros((n, 30, 15, 3), np.float32))
    with pytest.raises(EngineError, match="int8 vsvig rejected by the accuracy gate"):
        Q.quantize_vsvig(vsvig_onnx, tmp_path / "g.xml", samples=garbage, held_out=clips["held_out"])
    assert not (tmp_path / "g.xml").exists()


def test_gate_passes_a_faithful_model_and_it_is_cached_per_recipe(pose_onnx, vsvig_onnx, frames, clips, tmp_path, monkeypatch):
    pose_out = Q.quantize_pose(pose_onnx, tmp_path / "pose.xml", HEIGHT, samples=frames["calibration"],
                               held_out=frames["held_out"], ignored=(".*",))
    v = Q.read_verdict(pose_out)
    assert v is not None and v.passed and v.numbers["joints within 1 px"] == 1.0
    assert v.numbers["PCK@0.1 fp32"] == v.numbers["PCK@0.1 int8"] > 0.5
    vsvig_out = Q.quantize_vsvig(vsvig_onnx, tmp_path / "vsvig.xml", samples=clips["calibration"],
                                 held_out=clips["held_out"], ignored=(".*",))
    v = Q.read_verdict(vsvig_out)
    assert v is not None and v.passed and v.numbers["max |p - p_fp32|"] <= Q.VSVIG_P_DELTA
    assert v.numbers["clips with p_fp32 > 0.5"] > 0  # the held-out clips include seizures
    assert pose_out.with_suffix(".bin").is_file() and vsvig_out.with_suffix(".bin").is_file()
    real = Q._nncf_quantize
    monkeypatch.setattr(Q, "_nncf_quantize", _no_quantizing)
    assert Q.quantize_pose(pose_onnx, pose_out, HEIGHT, n_frames=4) == pose_out
    assert Q.quantize_vsvig(vsvig_onnx, vsvig_out, n_clips=4) == vsvig_out
    # a changed recipe builds again
    monkeypatch.setattr(Q, "RECIPE", "another")
    small = Q.ClipSamples(clips["held_out"].patches[:4], clips["held_out"].kpts[:4])
    monkeypatch.setattr(Q, "_nncf_quantize", real)
    Q.quantize_vsvig(vsvig_onnx, vsvig_out, samples=small, held_out=small, ignored=(".*",))
    v = Q.read_verdict(vsvig_out)
    assert v is not None and v.recipe == "another" and v.numbers["clips"] == 4


def test_the_command_line_registers_the_simulator_lazily(monkeypatch):
    from ward import cli

    monkeypatch.setattr(Q, "_SOURCES", {})
    cli._int8_inputs()
    got = Q._samples("pose", 2, "held_out")
    assert isinstance(got, Q.PoseSamples) and got.frames.shape == (2, 360, 640, 3)
