"""The inference benchmarks and the GPU device check run, fail clearly and write what the docs quote.

Tiny sizes only: these check that the scripts work (engines planned and skipped with a reason,
speed-ups against torch fp32, the JSON machine record, the device check's failure without a GPU
and its CPU dry run), never how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _util  # noqa: E402

from ward.vision import engines  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports, compiled models and untrained benchmark checkpoints go to a temp dir, never ~/.cache."""
    d = tmp_path_factory.getbasetemp() / "ward-cache"
    monkeypatch.setenv(engines.CACHE_ENV, str(d))
    return d


def script_env(out: Path) -> dict[str, str]:
    return {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT),
            "OMP_WAIT_POLICY": "PASSIVE"}


def test_engine_plan_reference_first_and_skips_with_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "cpu_native_bf16", lambda: False)
    run, skipped = _util.engine_plan(["openvino:fp32", "torch:bf16", "torch:fp32"], "cpu")
    assert run[0] == ("torch", "fp32") and run.count(("torch", "fp32")) == 1
    assert set(skipped) | {_util.label(*e) for e in run} == {"openvino:fp32", "torch:bf16", "torch:fp32"}
    assert "native bf16" in skipped["torch:bf16"]
    assert ("openvino", "fp32") in run or "openvino" in skipped["openvino:fp32"]
    _, skipped = _util.engine_plan(["openvino:fp32"], "cuda")
    assert "cuda" in skipped["openvino:fp32"]
    with pytest.raises(SystemExit, match="unknown engine"):
        _util.engine_plan(["tensorrt:fp8"], "cpu")


def test_an_engine_the_ward_refuses_is_skipped_with_its_reason() -> None:
    def load(backend: str, precision: str) -> str:
        if precision == "int8":
            raise engines.EngineError("int8 pose rejected by the accuracy gate: 0.6 < 0.99")
        return f"{backend}-{precision}"

    skipped: dict[str, str] = {}
    built = _util.build_engines([("torch", "fp32"), ("openvino", "int8")], skipped, load)
    assert built == {"torch:fp32": "torch-fp32"} and "accuracy gate" in skipped["openvino:int8"]


def test_speedups_are_against_torch_fp32_of_the_same_group() -> None:
    rows = [{"config": "small", "batch": 4, "engine": "torch:fp32", "stage_ms": 30.0},
            {"config": "small", "batch": 4, "engine": "openvino:bf16", "stage_ms": 10.0},
            {"config": "small", "batch": 8, "engine": "openvino:bf16", "stage_ms": 5.0}]
    _util.speedups(rows, ("config", "batch"), "stage_ms")
    assert [r["stage_ms_x"] for r in rows] == [1.0, 3.0, None]  # no reference at batch 8: no ratio


def test_untrained_checkpoints_are_written_once(_cache: Path) -> None:
    a, what = _util.pose_checkpoint("small", None)
    mtime = a.stat().st_mtime_ns
    b, _ = _util.pose_checkpoint("small", None)
    assert a == b and b.stat().st_mtime_ns == mtime and a.is_relative_to(_cache) and "random" in what
    assert engines.checkpoint_key(a) == engines.checkpoint_key(b)  # stable key: the export cache is reused


def test_bench_pose_table_and_json(tmp_path: Path) -> None:
    import bench_pose

    out = bench_pose.main(["--engines", "torch:fp32", "--configs", "small", "--batches", "1", "--reps", "1",
                           "--height", "64", "--no-decoder", "--weights", str(tmp_path), "--json",
                           str(tmp_path / "pose.json")])
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["engine"] == "torch:fp32" and row["stage_ms_x"] == 1.0 and row["stage_ms"] > 0 < row["net_ms"]
    assert row["hm_maxdiff"] == 0.0 and data["weights"]["small"].startswith("random")
    assert {"cpu_model", "loadavg_start", "command"} <= set(data["machine"])


def test_device_check_fails_fast_without_a_gpu(tmp_path: Path) -> None:
    """No nvidia-smi that lists a GPU: exit 2 within seconds, saying what to do, before any Python."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {**script_env(tmp_path / "out"), "PATH": f"{fake}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "no NVIDIA GPU" in res.stdout and "--dry-run" in res.stdout
    assert time.monotonic() - t0 < 10
    assert "no NVIDIA GPU" in (tmp_path / "out" / "summary.txt").read_text()


def test_device_check_dry_run_on_cpu(tmp_path: Path) -> None:
    """The script's steps, tiny, on the CPU: parity check, pose and VSViG sweeps, results under $OUT."""
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"], env=script_env(out),
                         capture_output=True, text=True, timeout=540)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "RESULT: all steps passed" in res.stdout
    parity = json.loads((out / "parity.json").read_text())
    assert parity["rows"] and all(r["pass"] for r in parity["rows"])
    for name in ("bench_pose.json", "bench_vsvig.json"):
        assert json.loads((out / name).read_text())["rows"], name


@pytest.mark.ray
def test_bench_ward_one_short_run(tmp_path: Path) -> None:
    """One bed for a few seconds through the whole ward: the config the benchmark builds is valid and
    every figure the table reports is there."""
    import bench_ward

    out = bench_ward.main(["--beds", "1", "--duration", "3", "--warmup", "0", "--pose", "small",
                           "--input-height", "64", "--no-network", "--weights", str(tmp_path),
                           "--vsvig-precision", "fp32", "--json", str(tmp_path / "ward.json")])
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert res["vsvig_precision"] == "fp32" and "fp32" in row["vsvig_engine"]
    for key in ("beds_at_6fps", "posed_fps_min", "lat_p95_s", "dropped_per_s", "cpu_per_bed", "sustained"):
        assert key in row, key
    assert row["beds"] == 1 and row["seconds"] >= 3


def test_bench_ward_cpu_accounting_survives_processes_ending_and_pid_reuse() -> None:
    """CPU per bed: per-process deltas; a process that ends inside the window keeps its last reading,
    a new process counts from 0, a reused PID (new start time) is a new process; never negative."""
    from bench_ward import cpu_seconds_used, ray_procs_snapshot

    a, b, c, b2 = (10, 100), (11, 100), (12, 500), (11, 900)  # (pid, start ticks); b2 reuses b's pid
    snaps = [{a: (5.0, 1.0), b: (50.0, 1.0)},
             {a: (6.0, 1.0), b: (58.0, 1.0), c: (0.5, 1.0)},
             {a: (7.5, 1.0), c: (2.0, 1.0), b2: (0.25, 1.0)}]  # b ended after using 8 s in the window
    assert cpu_seconds_used(snaps) == pytest.approx(2.5 + 8.0 + 2.0 + 0.25)
    # the old total-minus-total figure: (7.5 + 2 + 0.25) - (5 + 50) < 0
    assert cpu_seconds_used([{a: (5.0, 1.0)}, {a: (4.0, 1.0)}]) == 0.0  # a bad reading never subtracts
    assert cpu_seconds_used([]) == 0.0 and cpu_seconds_used(snaps[:1]) == 0.0
    own = [k for k in ray_procs_snapshot() if k[0] == os.getpid()]  # the benchmark process counts itself
    assert len(own) == 1
