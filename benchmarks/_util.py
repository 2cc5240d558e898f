"""Shared helpers for benchmark scripts: a printed table and a JSON record of the same rows.

Every JSON carries what the figures were measured on (CPU model, load average before and after,
date, git commit, the command line), because the docs quote them and these machines are shared:
a figure measured at load 12 on 2 cores means little without saying so.

The engine helpers let the model benchmarks time every backend/precision this machine can run
(``ward.vision.engines``) side by side in one run, and name the ones it cannot with the reason.
Untrained checkpoints are written once under ``cache_dir()/bench-weights`` so that their SHA-256,
and with it the exported/compiled models cached by checkpoint key, stay the same between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench_results"
_LOAD_AT_START = os.getloadavg()


def add_json_option(ap: argparse.ArgumentParser, name: str) -> None:
    """Add ``--json PATH`` (default ``bench_results/<name>.json``, git-ignored).

    Figures quoted in the docs are written with ``--json docs/results/<name>.json`` and committed.
    """
    ap.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help=f"result JSON (default bench_results/{name}.json; docs/results/ for quoted figures)")


def cpu_model() -> str:
    """The CPU's model name (float kernels and speed differ between AMD and Intel parts)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """HEAD's commit hash, with "-dirty" when tracked files differ from it ("unknown" outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (load average matters on shared 2-core machines)."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg_1m": os.getloadavg()[0],
        "loadavg_start": list(_LOAD_AT_START),
        "loadavg_end": list(os.getloadavg()),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def report(name: str, rows: Sequence[dict[str, Any]], extra: dict[str, Any] | None = None,
           json_path: str | Path | None = None) -> Path:
    """Print rows as an aligned table and write them (plus machine info) to JSON; return the path."""
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in cols))
    out = Path(json_path) if json_path else RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "machine": machine_info(), "rows": list(rows),
                               **(extra or {})}, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return out


# ------------------------------------------------------------------------------------------ engines

ENGINES = ("torch:fp32", "torch:bf16", "openvino:fp32", "openvino:bf16", "openvino:int8")
"""Every backend:precision the model benchmarks know; torch:fp32 (today's path) is the reference."""
REFERENCE = "torch:fp32"


def add_engine_options(ap: argparse.ArgumentParser) -> None:
    """``--engines`` (backend:precision, default all) and ``--device`` (cpu, cuda, cuda:N)."""
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), metavar="BACKEND:PRECISION",
                    help=f"engines to time side by side (default: {' '.join(ENGINES)}; those this machine "
                         f"cannot run are listed as skipped with the reason); {REFERENCE} is always timed")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] (torch engines only)")


def engine_plan(specs: Sequence[str], device: str = "cpu") -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(runnable (backend, precision) pairs, reference first; {spec: why skipped}) for ``device``.

    Each spec goes through :func:`ward.vision.engines.resolve`, so "cannot run here" means what the
    ward would refuse too (bf16 without native bf16, OpenVINO on a GPU...); int8 also needs
    ``ward.vision.quantize``.
    """
    import importlib.util

    from ward.vision.engines import EngineError, resolve

    run: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    for spec in dict.fromkeys([REFERENCE, *specs]):  # reference first, no duplicates
        backend, _, precision = spec.partition(":")
        if backend not in ("torch", "openvino") or precision not in ("fp32", "bf16", "int8"):
            raise SystemExit(f"unknown engine {spec!r}: use backend:precision from {', '.join(ENGINES)}")
        try:
            choice = resolve(backend, precision, device)  # type: ignore[arg-type]
        except EngineError as exc:
            skipped[spec] = str(exc)
            continue
        if choice.precision == "int8" and importlib.util.find_spec("ward.vision.quantize") is None:
            skipped[spec] = "ward.vision.quantize (int8 post-training quantization) is not in this checkout"
            continue
        run.append((backend, precision))
    for spec, why in skipped.items():
        print(f"skipped {spec}: {why}", flush=True)
    return run, skipped


def build_engines(engines: Sequence[tuple[str, str]], skipped: dict[str, str],
                  load: Callable[[str, str], Any]) -> dict[str, Any]:
    """{label: load(backend, precision)} for each engine; one the ward refuses to build here
    (``EngineError``: an int8 model rejected by its accuracy gate or not built yet...) goes to
    ``skipped`` with the reason instead of ending the run."""
    from ward.vision.engines import EngineError

    built: dict[str, Any] = {}
    for backend, precision in engines:
        try:
            built[label(backend, precision)] = load(backend, precision)
        except EngineError as exc:
            skipped[label(backend, precision)] = str(exc)
            print(f"skipped {label(backend, precision)}: {exc}", flush=True)
    return built


def label(backend: str, precision: str) -> str:
    return f"{backend}:{precision}"


def bench_weights_dir() -> Path:
    """Where the benchmarks keep untrained checkpoints (stable files: stable cache keys)."""
    from ward.vision.engines import cache_dir

    d = cache_dir() / "bench-weights"
    d.mkdir(parents=True, exist_ok=True)
    return d


def untrained_checkpoint(name: str, save: Callable[[Path], Any]) -> Path:
    """``bench_weights_dir()/name``, written by ``save(path)`` (seeded by the caller) on first use."""
    path = bench_weights_dir() / name
    if not path.is_file():
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        save(tmp)
        tmp.replace(path)
    return path


def pose_checkpoint(config: str, weights: Path | None) -> tuple[Path, str]:
    """(checkpoint, what it is) for a pose config: trained weights when found, else random init.

    Trained: ``weights/official/pose.pth`` (official config) or ``weights/ward-pose-<config>.pt``.
    Speed does not depend on the weight values; decoding does a little (few people in random maps).
    """
    candidates = [weights / f"ward-pose-{config}.pt"] if weights else []
    if weights and config == "official":
        candidates.insert(0, weights / "official" / "pose.pth")
    for c in candidates:
        if c.is_file():
            return c, f"trained ({c.name})"

    def save(path: Path) -> None:
        import torch

        from ward.vision.openpose import build_openpose, save_openpose_checkpoint

        torch.manual_seed(0)
        save_openpose_checkpoint(build_openpose(config), path, notes="untrained benchmark weights, seed 0")

    return untrained_checkpoint(f"pose-{config}-seed0.pt", save), "random init (seed 0)"


def vsvig_checkpoint(variant: str, graph_mode: str, weights: Path | None) -> tuple[Path, str]:
    """(checkpoint, what it is): ``weights/ward-vsvig-<variant>.pt`` when it has this graph mode, else
    random init with calibrated BN statistics (fresh init has badly scaled activations that slow CPUs)."""
    import torch

    shipped = weights / f"ward-vsvig-{variant}.pt" if weights else None
    if shipped is not None and shipped.is_file():
        meta = torch.load(shipped, map_location="cpu", weights_only=True).get("metadata", {})
        if meta.get("graph_mode", "paper") == graph_mode:
            return shipped, f"trained ({shipped.name})"

    def save(path: Path) -> None:
        from ward.vision.vsvig import build_vsvig, calibrate_batchnorm, save_vsvig_checkpoint

        torch.manual_seed(0)
        model = calibrate_batchnorm(build_vsvig(variant, graph_mode), n_batches=2, batch_size=4)  # type: ignore[arg-type]
        save_vsvig_checkpoint(model, path, notes="untrained benchmark weights, seed 0, calibrated BN")

    return untrained_checkpoint(f"vsvig-{variant}-{graph_mode}-seed0.pt", save), "random init (seed 0, calibrated BN)"


def speedups(rows: list[dict[str, Any]], group: Sequence[str], value: str) -> None:
    """Add ``<value>_x``: the reference engine's ``value`` / this row's, within each group of ``group``
    keys (same model, batch...). ``value`` is a time, so the ratio is the speed-up over torch fp32."""
    ref = {tuple(r[k] for k in group): r[value] for r in rows if r["engine"] == REFERENCE}
    for r in rows:
        base = ref.get(tuple(r[k] for k in group))
        r[f"{value}_x"] = round(base / r[value], 2) if base and r[value] else None
