"""Shared helpers for benchmark scripts: a printed table and a JSON record of the same rows."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

RESULTS_DIR = Path(__file__).resolve().parents[1] / "bench_results"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (load average matters on shared 2-core machines)."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
                               **(extra or {})}, indent=2, default=str))
    print(f"\nwrote {out}")
    return out
