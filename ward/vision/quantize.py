"""int8 models: post-training quantization (NNCF, OpenVINO backend) behind an accuracy gate.

int8 is only worth serving if it sees what fp32 sees. So an int8 model is built from the fp32 ONNX
export by calibrating on simulated inputs preprocessed exactly as serving does (pose: frames through
:func:`ward.vision.pose.preprocess` at the serving height; VSViG: clips as
``ward.pipeline.BedPipeline.vsvig_inputs`` gives them), and is then compared with the fp32 ONNX on
*other* simulated inputs (held out: other scenario seeds). It is written to disk only when it passes
the gate of issue 15, otherwise :class:`~ward.vision.engines.EngineError` names the measured numbers:

* pose: the patient's joints within :data:`POSE_JOINT_PX` network-input pixels of fp32 for at least
  :data:`POSE_JOINT_SHARE` of the visible joints fp32 found (the patient matched to the ground truth
  with ``ward.vision.patient.match_patient``, as ``tests/test_engines.py`` gates the other engines),
  and PCK@0.1 (against the simulator's ground truth) within :data:`POSE_PCK_DELTA`;
* VSViG: ``|p_int8 - p_fp32| <= VSVIG_P_DELTA`` on every clip.

Where the inputs come from. ``ward.vision`` and ``ward.sim`` are independent packages of one layer
(``pyproject.toml``, ``[tool.importlinter]``), and the clip path lives in ``ward.pipeline`` above
both, so this module cannot render anything itself. The data is passed in (``samples=`` /
``held_out=``: :class:`PoseSamples`, :class:`ClipSamples`) or comes from a *sample source* registered
with :func:`register_sample_source`; ``ward.evaluation.calibration`` registers the simulator's (its
seed ranges are documented there) when it is imported. Without either, quantizing raises an
:class:`EngineError` that says so.

Results are cached: ``out_xml`` (OpenVINO IR, weights in the ``.bin`` next to it) is returned as is
when it exists, and the gate's verdict is kept in ``<out_xml>.gate.json``, so a model that failed is
not re-quantized on every start either (it raises again with the stored numbers). Changing
:data:`RECIPE` invalidates both.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ward.vision.engines import EngineError, OpenVINORunner
from ward.vision.patient import match_patient

Kind = Literal["pose", "vsvig"]
Split = Literal["calibration", "held_out"]

POSE_JOINT_PX = 1.0
"""Largest distance (network-input pixels) of an int8 joint from the fp32 one that still agrees."""
POSE_JOINT_SHARE = 0.99
"""Share of the patient's visible joints that must agree."""
POSE_PCK_DELTA = 0.01
"""Largest |PCK@0.1(int8) - PCK@0.1(fp32)|."""
VSVIG_P_DELTA = 0.02
"""Largest |p_int8 - p_fp32| on any clip."""

RECIPE = "nncf-ptq-v2"
"""Names the quantization recipe and gate below; stored with each verdict so a changed recipe rebuilds
(v2: the pose gate decodes with sub-cell peak refinement, as served)."""

POSE_IGNORED: tuple[str, ...] = ()
"""Node-name patterns (regular expressions) kept in fp32 in the pose network (see docs/inference.md#int8)."""
VSVIG_IGNORED: tuple[str, ...] = ()
"""Node-name patterns kept in fp32 in VSViG."""


@dataclass(frozen=True)
class PoseSamples:
    """Frames for pose calibration or its gate, with the patient's ground truth."""

    frames: np.ndarray    # (N, H, W, 3) uint8 BGR, as a camera delivers them
    patients: np.ndarray  # (N, 18, 3) float32: the patient's (x, y, visible) in frame pixels

    def __post_init__(self) -> None:
        f, p = np.asarray(self.frames), np.asarray(self.patients)
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, 3) uint8 BGR, got {f.shape} {f.dtype}")
        if p.shape != (f.shape[0], 18, 3):
            raise ValueError(f"patients must be ({f.shape[0]}, 18, 3), got {p.shape}")


@dataclass(frozen=True)
class ClipSamples:
    """VSViG inputs (what ``BedPipeline.vsvig_inputs`` returns, stacked) for calibration or its gate."""

    patches: np.ndarray  # (N, 30, 15, 3, 32, 32) uint8
    kpts: np.ndarray     # (N, 30, 15, 3) float32

    def __post_init__(self) -> None:
        if np.shape(self.patches)[:1] != np.shape(self.kpts)[:1] or np.ndim(self.patches) != 6:
            raise ValueError(f"patches (N, 30, 15, 3, 32, 32) and kpts (N, 30, 15, 3) expected, got "
                             f"{np.shape(self.patches)} and {np.shape(self.kpts)}")


SampleSource = Callable[[int, Split], Any]
"""(n, split) -> :class:`PoseSamples` (kind ``pose``) or :class:`ClipSamples` (kind ``vsvig``)."""

_SOURCES: dict[str, SampleSource] = {}


def register_sample_source(kind: Kind, source: SampleSource) -> None:
    """Where quantization draws its calibration and held-out inputs when none are passed in."""
    if kind not in ("pose", "vsvig"):
        raise ValueError(f"kind must be pose or vsvig, got {kind!r}")
    _SOURCES[kind] = source


def _samples(kind: Kind, n: int, split: Split) -> Any:
    source = _SOURCES.get(kind)
    if source is None:
        raise EngineError(f"int8 {kind} quantization needs simulated {split} inputs and no source is registered "
                          "in this process: build the int8 model first with `ward models export --precision int8` "
                          "(or import ward.evaluation.calibration, which registers the simulator's), or use "
                          "precision bf16/fp32")
    return source(n, split)


# ------------------------------------------------------------------------------------- verdicts

@dataclass
class GateResult:
    """What the accuracy gate measured (``numbers``) and whether it passed."""

    kind: str
    passed: bool
    numbers: dict[str, float]
    recipe: str = RECIPE
    tried: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.numbers.items())

    def error(self) -> EngineError:
        return EngineError(f"int8 {self.kind} rejected by the accuracy gate: {self.describe()}; "
                           "use precision bf16/fp32")


def _verdict_path(out_xml: Path) -> Path:
    return out_xml.with_name(out_xml.name + ".gate.json")


def _cached(out_xml: Path) -> Path | None:
    """The cached int8 model, or None to build it; raises the stored rejection of the current recipe."""
    vp = _verdict_path(out_xml)
    verdict = None
    if vp.is_file():
        try:
            verdict = GateResult(**json.loads(vp.read_text()))
        except (ValueError, TypeError):
            verdict = None
    if verdict is None or verdict.recipe != RECIPE:
        return None
    if not verdict.passed:
        raise verdict.error()
    if out_xml.is_file() and out_xml.with_suffix(".bin").is_file():
        return out_xml
    return None


def read_verdict(out_xml: str | Path) -> GateResult | None:
    """The stored gate result of an int8 model file (None if it was never built)."""
    vp = _verdict_path(Path(out_xml))
    return GateResult(**json.loads(vp.read_text())) if vp.is_file() else None


def _build(kind: Kind, out_xml: Path, sizes: tuple[int, int], given: tuple[Any, Any],
           calibrate: Callable[[Any], Any], gate: Callable[[Any, Path], GateResult], what: str) -> Path:
    """The cached model, or calibrate, write next to ``out_xml``, gate the written file, keep it or raise."""
    import openvino as ov  # noqa: PLC0415

    cached = _cached(out_xml)
    if cached is not None:
        return cached
    cal = given[0] if given[0] is not None else _samples(kind, sizes[0], "calibration")
    chk = given[1] if given[1] is not None else _samples(kind, sizes[1], "held_out")
    model = calibrate(cal)
    tried = [f"{RECIPE}: {len(cal.frames if kind == 'pose' else cal.patches)} {what}"]
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_xml.with_name(f".{out_xml.stem}.{os.getpid()}.tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)  # fp32 layers stay fp32
    try:
        result = gate(chk, tmp)
        result.tried, result.recipe = tried, RECIPE
        _verdict_path(out_xml).write_text(json.dumps(asdict(result), indent=1))
        if not result.passed:
            raise result.error()
        tmp.with_suffix(".bin").replace(out_xml.with_suffix(".bin"))
        tmp.replace(out_xml)
    finally:
        for p in (tmp, tmp.with_suffix(".bin")):
            p.unlink(missing_ok=True)
    return out_xml


# ---------------------------------------------------------------------------------------- NNCF

def _input_types(model: Any) -> list[np.dtype]:
    return [np.dtype(p.get_element_type().to_dtype()) for p in model.inputs]


def _nncf_quantize(fp32_onnx: Path, items: Sequence[Any], transform: Callable[[Any], tuple[np.ndarray, ...]],
                   ignored: Sequence[str], **kwargs: Any) -> Any:
    import nncf  # noqa: PLC0415
    import openvino as ov  # noqa: PLC0415

    model = ov.Core().read_model(str(fp32_onnx))
    scope = nncf.IgnoredScope(patterns=list(ignored), validate=False) if ignored else None
    return nncf.quantize(model, nncf.Dataset(items, transform), subset_size=len(items),
                         ignored_scope=scope, **kwargs)


def _batches(n: int, size: int) -> list[slice]:
    return [slice(a, min(n, a + size)) for a in range(0, n, size)]


# ------------------------------------------------------------------------------------------ pose

def _pose_inputs(frames: np.ndarray, height: int) -> tuple[np.ndarray, float, tuple[int, int, int, int]]:
    """Network inputs exactly as serving makes them (one size of frames per call)."""
    from ward.vision.pose import preprocess  # noqa: PLC0415

    x, scale, pad = preprocess(frames, height)
    return x.numpy(), scale, pad


def pose_gate(fp32_onnx: str | Path, int8_model: str | Path | Any, held_out: PoseSamples, height: int = 256,
              *, upsample: int = 4, batch: int = 8) -> GateResult:
    """Compare an int8 pose model with the fp32 ONNX on held-out frames (see the module docstring)."""
    from ward.vision.pose_decode import STRIDE, decode_poses_batch  # noqa: PLC0415

    DECODE_STEP_PX = STRIDE / upsample  # noqa: N806 (the decoder's grid; joints are refined within a cell)
    runners = {"fp32": OpenVINORunner(fp32_onnx, "fp32"), "int8": OpenVINORunner(int8_model, "int8")}
    people: dict[str, list[list[np.ndarray]]] = {name: [] for name in runners}
    n = len(held_out.frames)
    scale, pad = 1.0, (0, 0, 0, 0)
    for s in _batches(n, batch):
        x, scale, pad = _pose_inputs(held_out.frames[s], height)
        for name, run in runners.items():
            heat, pafs = run(x)[:2]
            people[name] += decode_poses_batch(heat, pafs, upsample, refine=True)  # as PoseEstimator serves
    agree = near = joints = visible = 0
    hits = {"fp32": 0, "int8": 0}
    for i, gt_frame in enumerate(np.asarray(held_out.patients, np.float32)):
        gt = gt_frame.copy()
        gt[:, 0] = gt[:, 0] * scale + pad[1]
        gt[:, 1] = gt[:, 1] * scale + pad[0]
        vis = gt[:, 2] > 0
        if not vis.any():
            continue
        visible += int(vis.sum())
        xy = gt[vis, :2]
        size = float(np.linalg.norm(xy.max(0) - xy.min(0))) or 1.0
        match = {name: match_patient(people[name][i], gt) for name in runners}
        for name, (p, d) in match.items():  # PCK as ward.train.pose.pose_accuracy counts it
            if p is not None and d <= 0.5 * size:
                ok = vis & (p[:, 2] >= 0)
                hits[name] += int((np.linalg.norm(p[ok, :2] - gt[ok, :2], axis=1) <= 0.1 * size).sum())
        ref, cand = match["fp32"][0], match["int8"][0]
        if ref is None:
            continue
        found = vis & (ref[:, 2] >= 0)  # the joints fp32 found: int8 must find them, at the same place
        joints += int(found.sum())
        if cand is None:
            continue
        ok = found & (cand[:, 2] >= 0)
        dist = np.linalg.norm(cand[ok, :2] - ref[ok, :2], axis=1)
        agree += int((dist <= POSE_JOINT_PX).sum())
        near += int((dist <= DECODE_STEP_PX).sum())
    share = agree / joints if joints else float("nan")
    pck = {k: v / visible if visible else float("nan") for k, v in hits.items()}
    numbers = {"joints within 1 px": share, "joints fp32 found": joints, "frames": n,
               f"joints within {DECODE_STEP_PX:g} px (reference)": near / joints if joints else float("nan"),
               "PCK@0.1 fp32": pck["fp32"], "PCK@0.1 int8": pck["int8"]}
    passed = bool(joints) and share >= POSE_JOINT_SHARE and abs(pck["int8"] - pck["fp32"]) <= POSE_PCK_DELTA
    return GateResult("pose", passed, numbers)


def calibrate_pose(fp32_onnx: str | Path, samples: PoseSamples, height: int = 256,
                   ignored: Sequence[str] = POSE_IGNORED) -> Any:
    """The int8 pose model in memory (``openvino.Model``), not gated: for measurements."""
    return _nncf_quantize(Path(fp32_onnx), samples.frames, lambda f: (_pose_inputs(f[None], height)[0],), ignored)


def quantize_pose(fp32_onnx: Path, out_xml: Path, height: int = 256, *, n_frames: int = 300, n_check: int = 200,
                  samples: PoseSamples | None = None, held_out: PoseSamples | None = None,
                  ignored: Sequence[str] = POSE_IGNORED) -> Path:
    """int8 OpenVINO IR of a pose network, calibrated on ``n_frames`` simulated frames preprocessed at
    ``height``, gated on ``n_check`` held-out ones; ``out_xml`` if cached. Raises EngineError if rejected."""
    return _build("pose", Path(out_xml), (n_frames, n_check), (samples, held_out),
                  lambda cal: calibrate_pose(fp32_onnx, cal, height, ignored),
                  lambda chk, f: pose_gate(fp32_onnx, f, chk, height),
                  f"calibration frames at height {height}, fp32 kept for {list(ignored) or 'nothing'}")


# ----------------------------------------------------------------------------------------- VSViG

def vsvig_feed(model_file: str | Path | Any) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A function casting (patches, kpts) to the dtypes the exported model takes (uint8 or float patches)."""
    import openvino as ov  # noqa: PLC0415

    model = ov.Core().read_model(str(model_file)) if isinstance(model_file, (str, Path)) else model_file
    tp, tk = _input_types(model)[:2]
    return lambda p, k: (np.asarray(p).astype(tp, copy=False), np.asarray(k).astype(tk, copy=False))


def vsvig_gate(fp32_onnx: str | Path, int8_model: str | Path | Any, held_out: ClipSamples, *,
               batch: int = 16) -> GateResult:
    """Compare an int8 VSViG with the fp32 ONNX on held-out clips: ``|p - p_fp32|`` on every clip."""
    feed = vsvig_feed(fp32_onnx)
    p = {}
    for name, run in (("fp32", OpenVINORunner(fp32_onnx, "fp32")), ("int8", OpenVINORunner(int8_model, "int8"))):
        p[name] = np.concatenate([run(*feed(held_out.patches[s], held_out.kpts[s]))[0].reshape(-1)
                                  for s in _batches(len(held_out.patches), batch)])
    diff = np.abs(p["int8"] - p["fp32"])
    numbers = {"max |p - p_fp32|": float(diff.max()), "mean |p - p_fp32|": float(diff.mean()),
               "clips": int(len(diff)), "clips with p_fp32 > 0.5": int((p["fp32"] > 0.5).sum())}
    return GateResult("vsvig", bool(len(diff)) and float(diff.max()) <= VSVIG_P_DELTA, numbers)


def calibrate_vsvig(fp32_onnx: str | Path, samples: ClipSamples, ignored: Sequence[str] = VSVIG_IGNORED) -> Any:
    """The int8 VSViG in memory (``openvino.Model``), not gated: for measurements."""
    feed = vsvig_feed(fp32_onnx)
    return _nncf_quantize(Path(fp32_onnx), list(range(len(samples.patches))),
                          lambda i: feed(samples.patches[i:i + 1], samples.kpts[i:i + 1]), ignored)


def quantize_vsvig(fp32_onnx: Path, out_xml: Path, *, n_clips: int = 300, n_check: int = 200,
                   samples: ClipSamples | None = None, held_out: ClipSamples | None = None,
                   ignored: Sequence[str] = VSVIG_IGNORED) -> Path:
    """int8 OpenVINO IR of a VSViG, calibrated on ``n_clips`` simulated clips, gated on ``n_check``
    held-out ones; ``out_xml`` if cached. Raises EngineError if rejected."""
    return _build("vsvig", Path(out_xml), (n_clips, n_check), (samples, held_out),
                  lambda cal: calibrate_vsvig(fp32_onnx, cal, ignored),
                  lambda chk, f: vsvig_gate(fp32_onnx, f, chk),
                  f"calibration clips, fp32 kept for {list(ignored) or 'nothing'}")
