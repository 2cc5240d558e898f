"""How long the default ward takes from `ward run` to every bed scored, with a cold and a warm model cache.

Runs ``ward run <config>`` (default serve_configs/ward.yaml, dashboard off; database, spill and ports
moved to a temporary directory as ``bench_soak.py`` does) ``--runs`` times in a row with one fresh
``WARD_CACHE_DIR``: the first run starts with an empty cache (every replica exports and compiles its
model), the later ones find it filled. For each run it records the seconds from launch until

- ``api``: the ward's API answers ``/api/beds`` with every bed;
- ``posed``: every bed reports a sampled fps (its frames go through the Pose deployment);
- ``scored``: every bed has a seizure probability (a clip went through VSViG);

and, from Serve's replica logs (``/tmp/ray/session_*/logs/serve/``), when the Coordinator, Pose and
VSViG replicas started initialising (after launch) and how long their ``__init__`` took (for Pose and
VSViG: loading the checkpoint, exporting it to ONNX with the parity check when the cache is cold,
compiling it with OpenVINO). Each run gets a fresh database, so no probability carries over. Then the ward is stopped with SIGINT (``ward run`` stops Ray) and
every leftover process of that ward is ended.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_startup.py --runs 2 --json docs/results/bench_startup.json
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import add_json_option, report  # noqa: E402
from bench_soak import MARK, _free_port, prepare_config, ward_processes  # noqa: E402

INIT_LINE = re.compile(r"^\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ward_(\w+) \S+ -- (Started|Finished) initializing replica",
                       re.MULTILINE)


def replica_init_times(session_logs: Path) -> dict[str, tuple[float, float]]:
    """{deployment: (started, finished)} epoch seconds of each ward replica's __init__, from Serve's replica logs."""
    out: dict[str, list[float]] = {}
    for log in sorted(session_logs.glob("serve/replica_ward_*.log")):
        for m in INIT_LINE.finditer(log.read_text(errors="replace")):
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e3
            out.setdefault(m.group(3), [0.0, 0.0])[0 if m.group(4) == "Started" else 1] = t
    return {k: (v[0], v[1]) for k, v in out.items()}


def ward_session(since: float) -> Path | None:
    """The newest Ray session started after ``since`` that ran this ward's Pose replica."""
    found = [p for p in Path("/tmp/ray").glob("session_2*") if p.stat().st_mtime >= since - 1
             and list(p.glob("logs/serve/replica_ward_Pose_*.log"))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def one_run(cfg: Path, env: dict[str, str], url: str, auth: tuple[str, str], n_beds: int, log_path: Path,
            timeout: float) -> dict[str, Any]:
    ward_bin = str(Path(sys.executable).with_name("ward"))
    mark = secrets.token_hex(6)
    run_env = {**env, MARK: mark}
    t0 = time.time()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([ward_bin, "run", str(cfg)], cwd=ROOT, env=run_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    marks: dict[str, float] = {}
    try:
        while len(marks) < 3:
            if proc.poll() is not None:
                raise SystemExit(f"ward run exited with {proc.returncode}; see {log_path}")
            if time.time() - t0 > timeout:
                raise SystemExit(f"not all beds scored after {timeout:.0f} s; see {log_path}")
            try:
                beds = httpx.get(url + "/api/beds", auth=auth, timeout=5).json()
            except (httpx.HTTPError, ValueError):
                beds = None
            now = time.time() - t0
            if isinstance(beds, list) and len(beds) == n_beds:
                marks.setdefault("api_s", now)
                if all(b.get("fps") for b in beds):
                    marks.setdefault("posed_s", now)
                if all(b.get("probability") is not None for b in beds):
                    marks.setdefault("posed_s", now)
                    marks.setdefault("scored_s", now)
            time.sleep(0.5)
        session = ward_session(t0)
        inits = replica_init_times(session / "logs") if session else {}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        time.sleep(2)
        for pid in ward_processes(mark):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    row = {k: round(v, 1) for k, v in marks.items()}
    for kind in ("Coordinator", "Pose", "VSViG"):
        if kind in inits:
            started, finished = inits[kind]
            row[f"{kind.lower()}_init_start_s"] = round(started - t0, 1)
            row[f"{kind.lower()}_init_s"] = round(finished - started, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "serve_configs" / "ward.yaml")
    ap.add_argument("--runs", type=int, default=2, help="the first with an empty model cache, the rest warm")
    ap.add_argument("--timeout", type=float, default=600.0)
    add_json_option(ap, "bench_startup")
    a = ap.parse_args()

    from ward.serve.launcher import setup_ray_auth
    from ward.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="ward-startup-"))
    env = {**os.environ, "WARD_ADMIN_PASSWORD": secrets.token_urlsafe(12), "RAY_ADDRESS": "local",
           "WARD_CACHE_DIR": str(tmp / "cache")}
    setup_ray_auth(env)
    rows, notes = [], []
    for i in range(a.runs):
        run_dir = tmp / f"run{i + 1}"  # a fresh database each run: no probability carried over
        run_dir.mkdir()
        port, dash_port = _free_port(), _free_port()
        cfg, args, notes = prepare_config(a.config, run_dir, port, dash_port, False, False)
        password = secrets.token_urlsafe(12)
        Store(args["database"]["url"]).create_user("bench", password)
        load0 = os.getloadavg()[0]
        row = {"run": i + 1, "cache": "cold" if i == 0 else "warm",
               **one_run(cfg, env, f"http://127.0.0.1:{port}", ("bench", password), len(args["beds"]),
                         run_dir / "ward.log", a.timeout),
               "load_1m_start": round(load0, 2), "load_1m_end": round(os.getloadavg()[0], 2)}
        print(row, flush=True)
        rows.append(row)
    report("bench_startup", rows, {"config": str(a.config), "notes": notes}, a.json)


if __name__ == "__main__":
    main()
