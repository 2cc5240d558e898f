"""Soak test of the default ward (not in CI): memory per process, fps stability and restarts over time.

Runs ``ward run <config>`` (default serve_configs/ward.yaml; ``serve run`` with token auth and clean stops)
as a child process, with the database and spill moved to a temporary directory, and every ``--interval`` seconds samples

- the resident memory (VmRSS from /proc) of every process of that ward: Ray's daemons, each Serve
  replica, each camera actor, the Streamlit dashboard. Processes are recognised by a marker variable
  in their environment, so other Ray clusters on the machine are never counted;
- the sampled fps of each bed from the ward's own API (``/api/beds``);
- restarts: a role (e.g. ``ray::ServeReplica:ward:Pose``) whose process id changed.

At the end it reports, per role, the memory after warm-up and at the end (medians of three samples
each, so one noisy sample does not decide), the growth in %, restarts, and per bed the fps mean,
minimum and coefficient of variation. Targets (issue 9): < 5 % memory growth after warm-up, zero
unplanned restarts.

    .venv/bin/python benchmarks/bench_soak.py --minutes 60
    .venv/bin/python benchmarks/bench_soak.py --minutes 10 --warmup-minutes 3 --untrained-if-missing

``--untrained-if-missing`` stands in untrained weights (same architectures) when the trained files
named in the config are absent; the memory and fps figures are then still representative, the
probabilities are not. The run says so in its output.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import report  # noqa: E402

MARK = "WARD_SOAK_ID"


# ------------------------------------------------------------------------------------- processes

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def ward_processes(mark: str) -> dict[int, tuple[str, int]]:
    """pid -> (role, rss_bytes) for every process whose environment carries ``MARK=mark``."""
    needle = f"{MARK}={mark}".encode()
    out: dict[int, tuple[str, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if needle not in _read(f"/proc/{pid}/environ").split(b"\0"):
            continue
        cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        rss = 0
        for line in _read(f"/proc/{pid}/status").decode(errors="replace").splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        if cmd and rss:
            out[pid] = (_role(cmd), rss)
    return out


def _role(cmd: str) -> str:
    """A stable name for what a process does (Ray renames its workers 'ray::<actor class>')."""
    first = cmd.split()[0]
    if first.startswith("ray::"):  # Ray appends the running method ("ray::ServeReplica:ward:Pose.handle_request")
        return first.split(".")[0]
    for key in ("gcs_server", "raylet", "dashboard_agent", "runtime_env_agent", "log_monitor", "monitor.py",
                "streamlit", "serve run", "ward run", "default_worker", "dashboard.py", "multiprocessing"):
        if key in cmd:
            return key.replace(".py", "")
    return Path(first).name


# --------------------------------------------------------------------------------------- weights

def _untrained_weights(dirpath: Path, pose_cfg: str, variant: str) -> tuple[Path, Path]:
    import torch

    from ward.vision.openpose import build_openpose, save_openpose_checkpoint
    from ward.vision.vsvig import build_vsvig, calibrate_batchnorm, save_vsvig_checkpoint

    torch.manual_seed(0)
    pose_p, vsvig_p = dirpath / "pose-untrained.pt", dirpath / "vsvig-untrained.pt"
    save_openpose_checkpoint(build_openpose(pose_cfg), pose_p, notes="untrained stand-in (bench_soak)")
    model = build_vsvig(variant, "paper")
    calibrate_batchnorm(model, n_batches=1, batch_size=2)
    save_vsvig_checkpoint(model, vsvig_p, notes="untrained stand-in (bench_soak)")
    return pose_p, vsvig_p


def prepare_config(src: Path, tmp: Path, port: int, dash_port: int, dashboard: bool,
                   untrained_if_missing: bool) -> tuple[Path, dict[str, Any], list[str]]:
    """The Serve config to run: the original with DB, spill and ports moved into ``tmp``."""
    doc = yaml.safe_load(src.read_text(encoding="utf-8"))
    app = doc["applications"][0]
    args = app["args"]
    notes: list[str] = []
    models = args["models"]
    missing = [k for k in ("pose", "vsvig") if not (ROOT / models[k]["path"]).is_file()
               and not Path(models[k]["path"]).is_file()]
    if missing:
        if not untrained_if_missing:
            raise SystemExit(f"model weights missing for {missing} ({[models[k]['path'] for k in missing]}); "
                             "fetch/train them or pass --untrained-if-missing")
        pose_p, vsvig_p = _untrained_weights(tmp, models["pose"].get("config", "small"),
                                             models["vsvig"].get("variant", "light"))
        models["pose"]["path"], models["vsvig"]["path"] = str(pose_p), str(vsvig_p)
        notes.append("UNTRAINED stand-in weights (trained files absent): memory/fps representative, "
                     "probabilities are not")
    else:
        for k in ("pose", "vsvig"):
            p = Path(models[k]["path"])
            models[k]["path"] = str(p if p.is_absolute() else ROOT / p)
    args["database"] = {**args.get("database", {}), "url": f"sqlite:///{tmp / 'soak.db'}",
                        "spill_dir": str(tmp / "spill")}
    args["api"] = {**args.get("api", {}), "port": port}
    args["dashboard"] = {**args.get("dashboard", {}), "enabled": dashboard, "port": dash_port}
    doc.setdefault("http_options", {})["port"] = port
    out = tmp / "soak.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out, args, notes


# ------------------------------------------------------------------------------------------ main

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _median3(xs: list[float]) -> float:
    return statistics.median(xs[:3]) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "serve_configs" / "ward.yaml")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--warmup-minutes", type=float, default=None, help="default: 10 %% of the run, at least 2")
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--no-dashboard", action="store_true", help="do not start the Streamlit dashboard")
    ap.add_argument("--untrained-if-missing", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    warmup_s = 60 * (a.warmup_minutes if a.warmup_minutes is not None else max(2.0, 0.1 * a.minutes))
    total_s = 60 * a.minutes

    from ward.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="ward-soak-"))
    port, dash_port = _free_port(), _free_port()
    cfg_path, args, notes = prepare_config(a.config, tmp, port, dash_port, not a.no_dashboard, a.untrained_if_missing)
    password = secrets.token_urlsafe(12)
    Store(args["database"]["url"]).create_user("soak", password)
    mark = secrets.token_hex(6)
    from ward.serve.launcher import setup_ray_auth

    env = {**os.environ, MARK: mark, "WARD_ADMIN_PASSWORD": secrets.token_urlsafe(12), "RAY_ADDRESS": "local"}
    setup_ray_auth(env)  # token authentication, as `ward run` starts the ward
    ward_bin = str(Path(sys.executable).with_name("ward"))
    log = (tmp / "serve.log").open("wb")
    print(f"soak: {cfg_path} for {a.minutes:g} min (warm-up {warmup_s / 60:g} min), logs in {tmp / 'serve.log'}")
    for n in notes:
        print("soak:", n)
    proc = subprocess.Popen([ward_bin, "run", str(cfg_path)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    pids_by_role: dict[str, set[int]] = {}
    t_start = time.time()
    try:
        deadline = time.time() + 600
        while True:  # wait until every bed reports a state and the API answers
            if proc.poll() is not None:
                raise SystemExit(f"ward run exited with {proc.returncode}; see {tmp / 'serve.log'}")
            try:
                beds = httpx.get(url + "/api/beds", auth=("soak", password), timeout=10).json()
                if isinstance(beds, list) and beds and all(b.get("fps") for b in beds):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.time() > deadline:
                raise SystemExit("the ward did not come up within 10 minutes")
            time.sleep(5)
        t_up = time.time()
        print(f"soak: ward up after {t_up - t_start:.0f} s")
        while time.time() - t_up < total_s:
            procs = ward_processes(mark)
            for pid, (role, _rss) in procs.items():
                pids_by_role.setdefault(role, set()).add(pid)
            try:
                beds = httpx.get(url + "/api/beds", auth=("soak", password), timeout=10).json()
                fps = {b["bed_id"]: float(b.get("fps") or 0.0) for b in beds}
                states = {b["bed_id"]: b["state"] for b in beds}
            except (httpx.HTTPError, ValueError) as exc:
                fps, states = {}, {"error": str(exc)}
            rss: dict[str, list[int]] = {}
            for _pid, (role, r) in procs.items():
                rss.setdefault(role, []).append(r)
            samples.append({"t": time.time() - t_up, "rss": {k: sum(v) for k, v in rss.items()},
                            "n": {k: len(v) for k, v in rss.items()}, "fps": fps, "states": states,
                            "load": os.getloadavg()[0]})
            tot = sum(sum(v) for v in rss.values()) / 2**20
            print(f"  t={samples[-1]['t']:6.0f} s  rss total {tot:7.0f} MB  procs {len(procs):3d}  "
                  f"fps {' '.join(f'{v:.1f}' for v in fps.values())}  load {samples[-1]['load']:.1f}", flush=True)
            time.sleep(a.interval)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # ward run shuts the ward and its local Ray down
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(3)
        for pid in ward_processes(mark):  # anything of ours that outlived the shutdown
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        log.close()

    warm = [s for s in samples if s["t"] >= warmup_s]
    rows = []
    for role in sorted({r for s in samples for r in s["rss"]}):
        after = [s["rss"][role] / 2**20 for s in warm if role in s["rss"]]
        if len(after) < 2:
            continue
        w0, w1 = _median3(after), _median3(after[::-1])
        rows.append({"role": role, "procs": max(s["n"].get(role, 0) for s in samples),
                     "rss_after_warmup_mb": round(w0, 1), "rss_end_mb": round(w1, 1),
                     "growth_pct": round(100 * (w1 - w0) / w0, 2), "pids_seen": len(pids_by_role.get(role, ())),
                     "restarts": max(0, len(pids_by_role.get(role, ())) - max(s["n"].get(role, 0) for s in samples))})
    fps_rows = {}
    for bed in sorted({b for s in warm for b in s["fps"]}):
        xs = [s["fps"][bed] for s in warm if bed in s["fps"]]
        m = statistics.mean(xs)
        fps_rows[bed] = {"mean": round(m, 2), "min": round(min(xs), 2),
                         "cv": round(statistics.pstdev(xs) / m, 3) if m else None,
                         "samples": len(xs),
                         "online_samples": sum(1 for s in warm if s["states"].get(bed) == "online"),
                         "degraded_samples": sum(1 for s in warm if s["states"].get(bed) == "degraded"),
                         "not_online_samples": sum(1 for s in warm if s["states"].get(bed) not in ("online", "degraded"))}
    total_w0 = sum(r["rss_after_warmup_mb"] for r in rows)
    total_w1 = sum(r["rss_end_mb"] for r in rows)
    extra = {"config": str(a.config), "minutes": a.minutes, "ward_up_after_s": round(t_up - t_start, 1), "warmup_minutes": warmup_s / 60, "interval_s": a.interval,
             "notes": notes, "fps": fps_rows, "total_rss_after_warmup_mb": round(total_w0, 1),
             "total_rss_end_mb": round(total_w1, 1),
             "total_growth_pct": round(100 * (total_w1 - total_w0) / total_w0, 2) if total_w0 else None,
             "restarts_total": sum(r["restarts"] for r in rows),
             "load_mean": round(statistics.mean(s["load"] for s in samples), 2) if samples else None,
             "samples": samples}
    report("bench_soak", rows, extra, json_path=a.json)
    print("\nfps per bed after warm-up:", fps_rows)
    n_deg = sum(r["degraded_samples"] for r in fps_rows.values())
    n_all = sum(r["samples"] for r in fps_rows.values())
    print(f"bed samples after warm-up: {n_all}, degraded {n_deg}, offline/other "
          f"{sum(r['not_online_samples'] for r in fps_rows.values())}; ward up after {t_up - t_start:.0f} s")
    print(f"total RSS {total_w0:.0f} -> {total_w1:.0f} MB ({extra['total_growth_pct']} %), "
          f"restarts {extra['restarts_total']}, mean load {extra['load_mean']}")


if __name__ == "__main__":
    main()
