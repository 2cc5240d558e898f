"""Shared helpers for benchmark scripts: a printed table and a JSON record of the same rows.

Every JSON carries what the figures were measured on (CPU model, load average before and after,
date, git commit, the command line), because the docs quote them and these machines are shared:
a figure measured at load 12 on 2 cores means little without saying so.
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
from typing import Any, Sequence

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
