"""Helpers for the ward-on-Ray tests: tiny weights, small ward configs, polling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


def make_weights(dirpath: Path, vsvig_bias: float = 0.0) -> tuple[Path, Path]:
    """Randomly initialised small pose and light VSViG checkpoints (deterministic seeds).

    ``vsvig_bias`` (when not 0) makes VSViG a constant: the output layer's weights are zeroed and its
    bias set to this logit, so every clip gets p = sigmoid(vsvig_bias) whatever it contains (+3.9:
    p = 0.98, a model "stuck high"; -12: p = 6e-6). That exercises the alarm path without pretending
    to detect seizures, and does not depend on what the untrained pose network happens to find.
    """
    import torch

    from ward.vision.openpose import build_openpose, save_openpose_checkpoint
    from ward.vision.vsvig import build_vsvig, calibrate_batchnorm, save_vsvig_checkpoint

    dirpath.mkdir(parents=True, exist_ok=True)
    pose_p, vsvig_p = dirpath / "pose-small.pt", dirpath / f"vsvig-light-const{vsvig_bias:g}.pt"
    if not pose_p.exists():
        torch.manual_seed(0)
        save_openpose_checkpoint(build_openpose("small"), pose_p, notes="untrained test weights")
    if not vsvig_p.exists():
        torch.manual_seed(0)
        model = build_vsvig("light", "paper")
        calibrate_batchnorm(model, n_batches=1, batch_size=2)
        if vsvig_bias:
            with torch.no_grad():
                model.fc[3].weight.zero_()
                model.fc[3].bias.fill_(vsvig_bias)
        save_vsvig_checkpoint(model, vsvig_p, notes="untrained test weights")
    return pose_p, vsvig_p


_WEIGHTS: list[Path] = []


def _weights_dir() -> Path:
    """One directory of test weights per test process (building them costs seconds on 2 busy cores)."""
    import atexit
    import shutil
    import tempfile

    if not _WEIGHTS:
        _WEIGHTS.append(Path(tempfile.mkdtemp(prefix="ward-test-weights-")))
        atexit.register(shutil.rmtree, _WEIGHTS[0], ignore_errors=True)
    return _WEIGHTS[0]


def ward_args(tmp: Path, beds: list[dict[str, Any]], vsvig_bias: float = 0.0, **over: Any) -> dict[str, Any]:
    """A small ward config: tiny weights, SQLite in ``tmp``, cheap resources, no dashboard."""
    pose_p, vsvig_p = make_weights(_weights_dir(), vsvig_bias)
    models = {"pose": {"path": str(pose_p), "config": "small", "input_height": 128},
              "vsvig": {"path": str(vsvig_p), "variant": "light"}}
    return _small_ward(tmp, beds, models, over)


def _small_ward(tmp: Path, beds: list[dict[str, Any]], models: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """The ward config the Ray tests share (SQLite in ``tmp``, cheap resources, no dashboard) around ``models``."""
    args: dict[str, Any] = {
        "name": "testward",
        "beds": beds,
        "models": models,
        "database": {"url": f"sqlite:///{tmp / 'ward.db'}", "spill_dir": str(tmp / "spill"), "flush_interval_s": 0.5},
        "batching": {"pose": {"max_batch_size": 4, "batch_wait_timeout_s": 0.02},
                     "vsvig": {"max_batch_size": 4, "batch_wait_timeout_s": 0.02}},
        "resources": {"pose": {"num_cpus": 0.5}, "vsvig": {"num_cpus": 0.25},
                      "camera_actors": {"num_cpus": 0.25, "beds_per_actor": 2}},
        "dashboard": {"enabled": False},
        "watchdog": {"no_frame_timeout_s": 5.0, "backoff_initial_s": 0.5, "backoff_max_s": 2.0},
    }
    for k, v in over.items():
        args[k] = v
    return args


def sim_bed(bed_id: str, seed: int, seizure_at: float | None = None, fps: float = 6.0,
            size: tuple[int, int] = (320, 180), source_fps: float = 12.0, **over: Any) -> dict[str, Any]:
    """A simulated bed (a calm patient: auto=0, no random behaviours), with a tonic-clonic seizure whose
    EEG onset is ``seizure_at`` s into the stream, or none; frames of ``size`` (w, h), used at full height,
    rendered at ``source_fps`` and sampled at the model rate ``fps``."""
    w, h = size
    uri = f"sim://?seed={seed}&duration=600&fps={source_fps:g}&width={w}&height={h}&loop=1&auto=0"
    uri += f"&seizure=tonic_clonic@{seizure_at:g}" if seizure_at is not None else "&seizures=0"
    return {"bed_id": bed_id, "source": uri, "fps": fps, "height": h, **over}


# ------------------------------------------------------------------------------ the shipped ward

ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/support/this file)
SHIPPED_CONFIG = ROOT / "serve_configs" / "ward.yaml"
SHIPPED_SIZE = (640, 360)
"""Frame size of the shipped default ward's simulated beds (and of the shipped models' training data)."""


def shipped_settings() -> dict[str, Any]:
    """``models`` (absolute paths), ``rules`` and ``clip`` of the shipped default ward
    (serve_configs/ward.yaml), after checking that the weights are the ones listed in
    models/SHA256SUMS: a test built on them tests what ships, not a stand-in."""
    import copy
    import hashlib

    import yaml

    args = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))["applications"][0]["args"]
    sums = {name: digest for digest, name in (line.split() for line in
                                                (ROOT / "models" / "SHA256SUMS").read_text().splitlines() if line.strip())}
    models = copy.deepcopy(args["models"])
    for m in models.values():
        path = (ROOT / m["path"]).resolve()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if sums.get(path.name) != digest:
            raise AssertionError(f"{path} (sha256 {digest}) is not the shipped file listed in models/SHA256SUMS")
        m["path"] = str(path)
    return {"models": models, "rules": dict(args["rules"]), "clip": dict(args["clip"])}


def shipped_ward_args(tmp: Path, beds: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    """Like :func:`ward_args`, but with the shipped weights, decision rule and clip stride."""
    shipped = shipped_settings()
    models = shipped.pop("models")
    return _small_ward(tmp, beds, models, {**shipped, **over})


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as exc:  # noqa: BLE001
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
