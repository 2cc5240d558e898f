"""Fault recovery: runs the fault-injection tests and reports each recovery time against its target.

The faults are injected by the test modules, so there is one fault-injection code path:

- ``tests/test_faults.py`` (Ray ward on SQLite): database unwritable for 30 s (spill replayed after the
  unlock), SIGKILL of the camera actors, of the Pose and the VSViG replica, of the coordinator (target
  30 s each: every affected bed stores a new sample), a camera file that appears late;
- ``tests/test_faults_pg_rtsp.py`` (Ray ward on PostgreSQL): the server stopped for 30 s, then started
  (spill replayed, all beds storing again: target 30 s), an RTSP camera killed and restarted (bed
  storing again after the server's return: target 15 s).

Each module records its recovery times, with their targets, in the JSON file named by
``$WARD_FAULT_TIMES``. This script runs the modules ``--repeat N`` times through ``scripts/test.sh``
(a fresh throwaway PostgreSQL each run) with that variable set, then prints min / median / max per
fault next to the target, whether every run met the target, and whether every run stayed within the
tests' failure limit (6x the target, so a loaded machine does not fail CI but a stuck ward does).
The JSON also keeps every run's times, pytest exit code and the load average around it.

    .venv/bin/python benchmarks/bench_faults.py [--repeat 3] [--modules faults faults_pg_rtsp] [--json PATH]

About 3-5 minutes per module and repeat on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ROOT, add_json_option, report  # noqa: E402

MODULES = {"faults": "tests/test_faults.py", "faults_pg_rtsp": "tests/test_faults_pg_rtsp.py"}


def run_once(modules: list[str], times_path: Path, pytest_args: list[str]) -> dict[str, Any]:
    """One pytest run of the fault modules (scripts/test.sh starts PostgreSQL); its recorded times."""
    cmd = ["bash", "scripts/test.sh", *(MODULES[m] for m in modules), "-q", "-p", "no:cacheprovider", *pytest_args]
    env = {**os.environ, "WARD_FAULT_TIMES": str(times_path), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY",
                                                                                                 "PASSIVE")}
    load_before = os.getloadavg()
    t0 = time.monotonic()
    rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    recorded = json.loads(times_path.read_text()) if times_path.is_file() else {}
    return {"pytest_rc": rc, "seconds": round(time.monotonic() - t0, 1), "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()), "command": shlex.join(cmd), "times": recorded}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per fault (in the order the tests ran them): min/median/max over the runs vs target."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for module, faults in run["times"].items():
            for fault, rec in faults.items():
                entry = seen.setdefault((module, fault), {"target_s": rec.get("target_s"),
                                                          "limit_s": rec.get("limit_s"), "values": []})
                entry["values"].append(float(rec["seconds"]))
    rows = []
    for (module, fault), e in seen.items():
        v, target, limit = e["values"], e["target_s"], e["limit_s"]
        row: dict[str, Any] = {"module": module, "fault": fault, "runs": f"{len(v)}/{len(runs)}",
                               "min_s": min(v), "median_s": statistics.median(v), "max_s": max(v),
                               "target_s": target if target is not None else "-"}
        if target is not None:
            row["meets_target"] = "yes" if len(v) == len(runs) and max(v) <= target else \
                f"no ({sum(x > target for x in v) + len(runs) - len(v)}/{len(runs)} runs)"
            row["within_test_limit"] = "yes" if len(v) == len(runs) and max(v) <= limit else \
                f"no (limit {limit:g} s)"
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="pytest runs of the modules (default 1)")
    ap.add_argument("--modules", nargs="+", choices=sorted(MODULES), default=list(MODULES),
                    help="fault modules to run (default both)")
    ap.add_argument("--pytest-args", default="", help='extra pytest arguments, one string (e.g. "-x")')
    add_json_option(ap, "bench_faults")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="ward-bench-faults-") as tmp:
        for k in range(args.repeat):
            print(f"\n=== run {k + 1}/{args.repeat}: {' '.join(MODULES[m] for m in args.modules)}", flush=True)
            runs.append(run_once(args.modules, Path(tmp) / f"run{k}.json", shlex.split(args.pytest_args)))
            print(f"=== run {k + 1}: pytest exit code {runs[-1]['pytest_rc']}, {runs[-1]['seconds']:.0f} s", flush=True)
    rows = summarise(runs)
    if not rows:
        sys.exit("no recovery time was recorded: see the pytest output above (did the ward start?)")
    failed = [k + 1 for k, r in enumerate(runs) if r["pytest_rc"] != 0]
    print()
    report("bench_faults", rows, {"repeat": args.repeat, "modules": [MODULES[m] for m in args.modules],
                                  "pytest_failed_runs": failed, "runs": runs}, json_path=args.json)
    print(f"pytest: {args.repeat - len(failed)}/{args.repeat} runs passed"
          + (f" (failed: runs {failed})" if failed else ""))


if __name__ == "__main__":
    main()
