"""Inference engines (issue 15): resolution rules, ONNX export and its cache, and the accuracy gates.

Gates (on held-out simulated frames and clips, seeds 650000+: no training, validation, evaluation or
int8 calibration range uses them), each engine against torch fp32, the path served before engines:

* pose: the selected patient's joints within ``POSE_PX`` network-input pixels for at least
  ``POSE_SHARE`` of the joints torch fp32 found; PCK@0.1 within ``PCK_DELTA``;
* VSViG: |p - p_fp32| <= ``P_DELTA`` on every clip.

OpenVINO fp32 runs everywhere; bf16 (OpenVINO and torch autocast) only where the CPU has native
bf16 (``cpu_native_bf16``), skipped elsewhere; bf16 is marked as a (non-strict) expected failure
and ``auto`` never picks it: with the decoder's sub-cell refinement OpenVINO bf16 pose passes on
these 24 frames (99.1 %, 2 of 218 joints off) but not on 96 validation frames (97.3 %), and VSViG
bf16 misses its gate (max |dp| 0.057); on an AMX Xeon both bf16 engines put 97.2 % of these joints
within 1 px and VSViG's max |dp| is 0.026-0.035 (numbers in docs/inference.md). Run with ``-s`` to print the measured numbers
(recorded in docs/inference.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ward.vision import engines
from ward.vision.engines import EngineChoice, EngineError, cpu_native_bf16, resolve

ROOT = Path(__file__).resolve().parents[1]
POSE_CKPT = ROOT / "models" / "ward-pose-small.pt"
VSVIG_CKPT = ROOT / "models" / "ward-vsvig-light.pt"

POSE_PX = 1.0
POSE_SHARE = 0.99
PCK_DELTA = 0.01
P_DELTA = 0.02

HELD_OUT_SEED = 650_000
HEIGHT = 256
N_FRAMES = 24
FRAME_SIZE = (640, 360)

_NO_BF16 = pytest.mark.skipif(not cpu_native_bf16(), reason="this CPU has no native bf16")
_BF16_FAILS = pytest.mark.xfail(
    strict=False, reason="measured on AVX-512 BF16 (AMD EPYC) and AMX (Intel Xeon), refined decoding: bf16 pose is "
    "at the gate's edge (97-99 % of joints within 1 px, the misses mostly joints bf16 does not find); VSViG max "
    "|dp| 0.03-0.06; "
    "see docs/inference.md")
ENGINES = [
    pytest.param("openvino", "fp32", id="openvino-fp32"),
    pytest.param("openvino", "bf16", id="openvino-bf16", marks=[_NO_BF16, _BF16_FAILS]),
    pytest.param("torch", "bf16", id="torch-bf16", marks=[_NO_BF16, _BF16_FAILS]),
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every module gets its own export cache (the session one is set in conftest)."""
    monkeypatch.setenv(engines.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "engine-cache"))


# ------------------------------------------------------------------------------------------ resolve

@pytest.mark.parametrize(("args", "kw", "want"), [
    (("auto", "auto", "cpu"), dict(native_bf16=True, have_openvino=True), ("openvino", "fp32")),
    (("auto", "auto", "cpu"), dict(native_bf16=False, have_openvino=True), ("openvino", "fp32")),
    (("auto", "auto", "cpu"), dict(native_bf16=False, have_openvino=False), ("torch", "fp32")),
    (("auto", "auto", "cpu"), dict(native_bf16=True, have_openvino=False), ("torch", "fp32")),
    (("torch", "auto", "cpu"), dict(native_bf16=True, have_openvino=True), ("torch", "fp32")),
    (("torch", "fp32", "cpu"), dict(native_bf16=True, have_openvino=True), ("torch", "fp32")),
    (("openvino", "int8", "cpu"), dict(native_bf16=False, have_openvino=True), ("openvino", "int8")),
    (("auto", "int8", "cpu"), dict(native_bf16=False, have_openvino=True), ("openvino", "int8")),
    (("openvino", "bf16", "cpu"), dict(native_bf16=True, have_openvino=True), ("openvino", "bf16")),
    (("auto", "auto", "cuda"), dict(cuda_bf16=True), ("torch", "bf16")),
    (("auto", "auto", "cuda:1"), dict(cuda_bf16=False), ("torch", "fp16")),
    (("torch", "fp32", "cuda"), dict(cuda_bf16=True), ("torch", "fp32")),
    (("auto", "bf16", "cuda:0"), dict(cuda_bf16=True), ("torch", "bf16")),
])
def test_resolve_chooses(args, kw, want):
    choice = resolve(*args, **kw)
    assert (choice.backend, choice.precision) == want
    assert choice.device == args[2] and choice.reason


@pytest.mark.parametrize(("args", "kw", "needle"), [
    (("tensorrt", "auto", "cpu"), {}, "unknown backend"),
    (("auto", "fp8", "cpu"), {}, "unknown precision"),
    (("openvino", "auto", "cuda"), dict(cuda_bf16=True), "runs on CPUs"),
    (("auto", "int8", "cuda"), dict(cuda_bf16=True), "int8 is an OpenVINO CPU model"),
    (("auto", "auto", "mps"), {}, "unsupported device"),
    (("openvino", "auto", "cpu"), dict(have_openvino=False, native_bf16=True), "not installed"),
    (("torch", "int8", "cpu"), dict(have_openvino=True, native_bf16=True), "needs the openvino backend"),
    (("auto", "int8", "cpu"), dict(have_openvino=False, native_bf16=True), "needs the openvino backend"),
    (("auto", "bf16", "cpu"), dict(have_openvino=True, native_bf16=False), "no native bf16"),
])
def test_resolve_refuses_with_advice(args, kw, needle):
    with pytest.raises(EngineError, match=needle):
        resolve(*args, **kw)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(engines.CACHE_ENV, str(tmp_path / "c"))
    assert engines.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(engines.CACHE_ENV)
    assert engines.cache_dir() == Path.home() / ".cache" / "ward"


# ---------------------------------------------------------------------------------- export + cache

class _Noisy(torch.nn.Module):
    """Exports fine, but the ONNX file computes something else than torch (fresh random numbers)."""

    def forward(self, x):
        return x, x + torch.rand_like(x)


def test_parity_failure_raises(tmp_path):
    from ward.vision.export import ParityError, export_pose_onnx

    out = tmp_path / "noisy.onnx"
    with pytest.raises(ParityError, match="differs from torch fp32 by pafs"):
        export_pose_onnx(_Noisy(), out, height=64)
    assert not out.exists() and not list(tmp_path.iterdir()), "a failed export must leave no file behind"


def test_pose_cache_is_keyed_by_checkpoint(tmp_path, monkeypatch):
    """Same checkpoint: the file is reused (no second export); changed checkpoint: a new export."""
    from ward.vision import export
    from ward.vision.openpose import build_openpose, save_openpose_checkpoint

    monkeypatch.setenv(engines.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    real = export.export_pose_onnx
    monkeypatch.setattr(export, "export_pose_onnx", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    torch.manual_seed(0)
    ckpt = save_openpose_checkpoint(build_openpose("small").eval(), tmp_path / "a.pt")
    first = export.pose_model_file(ckpt, height=64)
    assert export.pose_model_file(ckpt, height=64) == first and len(calls) == 1
    assert first.parent == tmp_path / "cache" / engines.checkpoint_key(ckpt)
    assert not [p for p in first.parent.iterdir() if ".tmp-" in p.name]
    save_openpose_checkpoint(build_openpose("small").eval(), ckpt)  # new weights, same path
    second = export.pose_model_file(ckpt, height=64)
    assert len(calls) == 2 and second != first and first.exists()


def test_replicas_starting_at_once_export_a_checkpoint_once(tmp_path, monkeypatch):
    """Concurrent first uses (replicas of one node starting together) export once; the others wait and reuse."""
    import threading

    from ward.vision import export
    from ward.vision.openpose import build_openpose, save_openpose_checkpoint

    monkeypatch.setenv(engines.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    real = export.export_pose_onnx
    monkeypatch.setattr(export, "export_pose_onnx", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    torch.manual_seed(0)
    ckpt = save_openpose_checkpoint(build_openpose("small").eval(), tmp_path / "a.pt")
    got, errors = [], []

    def first_use():
        try:
            got.append(export.pose_model_file(ckpt, height=64))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(got) == 3 and len(set(got)) == 1, (errors, got)
    assert len(calls) == 1, calls


def test_int8_without_quantize_module_says_so(monkeypatch, tmp_path):
    import builtins

    from ward.vision import export

    real_import = builtins.__import__

    def no_quantize(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "ward.vision" and fromlist and "quantize" in fromlist:
            raise ImportError("no quantize", name="ward.vision.quantize")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_quantize)
    with pytest.raises(EngineError, match="int8 not available"):
        export.int8_module()


def test_unknown_precision_for_a_model_file():
    from ward.vision.export import pose_model_file

    with pytest.raises(EngineError, match="fp32, bf16 or int8"):
        pose_model_file(POSE_CKPT, precision="fp16")


def test_vsvig_export_is_dynamic_in_batch_and_leaves_the_model_alone(tmp_path):
    from ward.vision.export import export_vsvig_onnx
    from ward.vision.vsvig import load_vsvig, random_clips

    model = load_vsvig(VSVIG_CKPT)
    p, k = random_clips(2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(p, k)
    export_vsvig_onnx(model, tmp_path / "v.onnx")
    assert not model._fast and model.training is False
    with torch.no_grad():
        assert torch.equal(model(p, k), before)
    from ward.vision.engines import OpenVINORunner

    run = OpenVINORunner(tmp_path / "v.onnx", "fp32")
    for b in (1, 5):
        pb, kb = random_clips(b, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = model(pb, kb).numpy()
        assert np.abs(run(pb.numpy(), kb.numpy())[0] - ref).max() < 1e-3


# ------------------------------------------------------------------------------------------ pose gate

@pytest.fixture(scope="module")
def held_out_frames():
    from ward.train.pose import sim_frames

    return sim_frames(N_FRAMES, HELD_OUT_SEED, FRAME_SIZE, per_scenario=8)


def _run(est, frames):
    """(detections per frame, the per-frame preprocessing scale)."""
    dets = []
    for i in range(0, len(frames), 8):
        dets += est(frames[i:i + 8])
    from ward.vision.pose import padded_size

    scale = padded_size(frames.shape[1], frames.shape[2], est.height)[0]
    return dets, scale


class _Replay:
    """Feeds recorded detections to pose_accuracy in its batches of 8, so each engine runs once."""

    def __init__(self, dets):
        self.dets, self.i = dets, 0

    def __call__(self, frames):
        out = self.dets[self.i:self.i + len(frames)]
        self.i += len(frames)
        return out


@pytest.fixture(scope="module")
def pose_reference(held_out_frames):
    from ward.train.pose import pose_accuracy
    from ward.vision.pose import PoseEstimator

    frames, people = held_out_frames
    est = PoseEstimator.from_checkpoint(POSE_CKPT, height=HEIGHT, backend="torch", precision="fp32")
    dets, scale = _run(est, frames)
    return dets, scale, pose_accuracy(_Replay(dets), frames, people)


def pose_gate(est, held_out_frames, pose_reference):
    """The gate's numbers for one estimator: share of joints within POSE_PX, PCK delta."""
    from ward.train.pose import match_patient, pose_accuracy

    frames, people = held_out_frames
    ref_dets, scale, ref_acc = pose_reference
    dets, _ = _run(est, frames)
    close = total = 0
    for r, (ref_c, c, ppl) in enumerate(zip(ref_dets, dets, people)):
        gt = ppl[0]
        ref_p, p = match_patient(ref_c, gt)[0], match_patient(c, gt)[0]
        if ref_p is None:
            continue
        joints = (gt[:, 2] > 0) & (ref_p[:, 2] >= 0)
        total += int(joints.sum())
        if p is None:
            continue
        ok = joints & (p[:, 2] >= 0)
        d = np.linalg.norm(p[ok, :2] - ref_p[ok, :2], axis=1) * scale  # frame px -> network-input px
        close += int((d <= POSE_PX).sum())
    acc = pose_accuracy(_Replay(dets), frames, people)
    return {"within_px_share": close / total, "joints": total, "pck": acc["pck@0.1"], "pck_fp32": ref_acc["pck@0.1"],
            "pck_delta": abs(acc["pck@0.1"] - ref_acc["pck@0.1"])}


@pytest.mark.parametrize(("backend", "precision"), ENGINES)
def test_pose_engine_matches_torch_fp32(backend, precision, held_out_frames, pose_reference):
    from ward.vision.pose import PoseEstimator

    est = PoseEstimator.from_checkpoint(POSE_CKPT, height=HEIGHT, backend=backend, precision=precision)
    assert (est.engine.backend, est.engine.precision) == (backend, precision)
    g = pose_gate(est, held_out_frames, pose_reference)
    print(f"\npose {backend} {precision} at height {HEIGHT} on {N_FRAMES} frames: {g}")
    assert g["joints"] >= 8 * N_FRAMES, g  # the reference finds the patient: the gate measures something
    assert g["within_px_share"] >= POSE_SHARE, g
    assert g["pck_delta"] <= PCK_DELTA, g


def test_pose_torch_fp32_engine_is_the_plain_module(held_out_frames):
    """backend torch, precision fp32: exactly the path without engines (fused module, same outputs)."""
    from ward.vision.openpose import fuse_for_inference, load_openpose
    from ward.vision.pose import PoseEstimator

    frames = held_out_frames[0][:4]
    est = PoseEstimator.from_checkpoint(POSE_CKPT, height=HEIGHT, backend="torch", precision="fp32")
    plain = PoseEstimator(fuse_for_inference(load_openpose(POSE_CKPT)), height=HEIGHT)
    a, b = est.infer(frames), plain.infer(frames)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_pose_openvino_static_shapes_give_the_same_maps(held_out_frames):
    from ward.vision.export import pose_model_file
    from ward.vision.pose import OpenVINOPose, preprocess

    x = preprocess(held_out_frames[0][:2], HEIGHT)[0].numpy()
    file = pose_model_file(POSE_CKPT)
    dyn, static = OpenVINOPose(file), OpenVINOPose(file, static_shapes=True)
    for a, b in zip(dyn(x), static(x)):
        assert np.abs(a - b).max() < 1e-4
    assert list(static._runners) == [x.shape[2:]]


# ----------------------------------------------------------------------------------------- VSViG gate

@pytest.fixture(scope="module")
def held_out_clips():
    """Clips of short held-out scenarios through the bed pipeline (simulator keypoints + pose noise)."""
    from ward.core.clip import MODEL_FPS
    from ward.evaluation.run import PoseNoise, noisy_keypoints
    from ward.pipeline import BedPipeline
    from ward.sim.render import SimCamera
    from ward.sim.scenario import random_scenario

    patches, kpts = [], []
    for k in range(2):
        seed = HELD_OUT_SEED + 500 + k
        cam = SimCamera(random_scenario(seed, 24.0, n_seizures=1, fps=MODEL_FPS, width=320, height=180))
        k18 = noisy_keypoints(cam.track()["kpts"], np.random.default_rng(seed), PoseNoise())
        pipe = BedPipeline(stride_frames=int(MODEL_FPS))
        frames = np.stack([cam.frame(i)[0] for i in range(cam.n_frames)])
        for clip in pipe.push(frames, np.arange(cam.n_frames) / MODEL_FPS, patient=k18).clips:
            p, q = pipe.vsvig_inputs(clip)
            patches.append(p)
            kpts.append(q)
    return np.stack(patches), np.stack(kpts)


@pytest.fixture(scope="module")
def vsvig_reference(held_out_clips):
    """p from the serving layer's torch path (deployments.vsvig_batch on the fused model)."""
    from ward.vision.vsvig import load_vsvig

    model = load_vsvig(VSVIG_CKPT).fuse_for_inference(channels_last=True)
    p, k = held_out_clips
    with torch.inference_mode():
        return model(torch.from_numpy(p).float(), torch.from_numpy(k).float()).numpy()


def test_vsvig_torch_fp32_scorer_is_the_serving_path(held_out_clips, vsvig_reference):
    from ward.vision.vsvig import load_vsvig_scorer

    scorer = load_vsvig_scorer(VSVIG_CKPT, backend="torch", precision="fp32")
    p, k = held_out_clips
    assert np.array_equal(scorer(p, k), vsvig_reference)
    assert np.array_equal(scorer(torch.from_numpy(p), torch.from_numpy(k)), vsvig_reference)


@pytest.mark.parametrize(("backend", "precision"), ENGINES)
def test_vsvig_engine_matches_torch_fp32(backend, precision, held_out_clips, vsvig_reference):
    from ward.vision.vsvig_engine import load_vsvig_scorer

    scorer = load_vsvig_scorer(VSVIG_CKPT, backend=backend, precision=precision)
    assert (scorer.engine.backend, scorer.engine.precision) == (backend, precision)
    p, k = held_out_clips
    got = np.concatenate([scorer(p[i:i + 8], k[i:i + 8]) for i in range(0, len(p), 8)])
    diff = np.abs(got - vsvig_reference)
    print(f"\nvsvig {backend} {precision} on {len(p)} clips: max |dp| {diff.max():.2g}, mean {diff.mean():.2g}, "
          f"p range {vsvig_reference.min():.3f}..{vsvig_reference.max():.3f}")
    assert len(p) >= 24
    assert diff.max() <= P_DELTA, diff


def test_scorer_needs_exactly_one_runtime():
    from ward.vision.vsvig_engine import VSViGScorer

    with pytest.raises(ValueError, match="exactly one"):
        VSViGScorer(EngineChoice("torch", "fp32", "cpu", "test"))


def test_no_export_lands_in_the_home_cache():
    assert os.environ[engines.CACHE_ENV] and not engines.cache_dir().is_relative_to(Path.home() / ".cache")


# ----------------------------------------------------------------------------------------------- CLI

def _models_app():
    import typer

    from ward.vision.models_cli import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def test_models_export_cli_writes_both_families_with_parity(tmp_path):
    from typer.testing import CliRunner

    app = _models_app()
    res = CliRunner().invoke(app, ["models", "export", "--pose", str(POSE_CKPT), "--vsvig", str(VSVIG_CKPT),
                                   "--out", str(tmp_path), "--height", "128", "--dest", str(tmp_path / "none")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ward-pose-small.onnx").is_file() and (tmp_path / "ward-vsvig-light.onnx").is_file()
    assert "heatmaps" in res.output and "pafs" in res.output and " p " in res.output, res.output


def test_models_export_cli_reports_missing_int8_and_bad_family(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ward.vision import export

    app = _models_app()

    def missing():
        raise EngineError("int8 not available yet (ward.vision.quantize is missing)")

    monkeypatch.setattr(export, "int8_module", missing)
    res = CliRunner().invoke(app, ["models", "export", "--family", "pose", "--pose", str(POSE_CKPT),
                                   "--out", str(tmp_path), "--precision", "int8"])
    assert res.exit_code == 1 and "int8 not available" in res.output and not list(tmp_path.iterdir())
    res = CliRunner().invoke(app, ["models", "export", "--family", "face"])
    assert res.exit_code != 0
