"""The whole ward on this machine: N simulated beds through the pose model, per-bed and pipeline figures.

    .venv/bin/python benchmarks/bench_ward.py [--beds 2,4,8] [--duration 60] [--pose official,small]
        [--input-height 256] [--backend auto|torch|openvino] [--precision auto|fp32|bf16|int8]
        [--device cpu|cuda] [--weights DIR] [--json PATH]

For each pose config and N, a ward runs N simulated 640x360 beds (every bed through the Pose
deployment, sampled at 6 fps) with the shipped ward's batching and resources
(serve_configs/ward.yaml; the Pose batch may grow to N). After the warm-up (every bed posed, then
``--warmup`` s) it measures ``--duration`` s of steady state: per-bed sampled (posed) fps, frames
dropped (latest-frame slot and in-flight cap), clips scored, end-to-end latency (frame captured ->
probability stored) p50/p95, the Pose batch-size distribution, CPU (per bed) and memory of the Ray
processes, and the engine each deployment's replicas report running (``pose_engine``, ``vsvig_engine``). ``beds_at_6fps`` counts the beds posed at >= 90 % of 6 fps; "sustained" means all of them
were, with p95 < 2 s. The largest sustained N per config is printed (``--stop-early`` skips larger N
after a failure). Then the ward's Pose throughput (posed frames/s of the largest N) is compared with
the pose stage's own throughput at the same (mean) batch size and engine, measured in this process.

``--backend``/``--precision`` set ``models.pose`` and ``models.vsvig`` (default: the config's
default, auto); ``--vsvig-precision`` overrides the precision for VSViG alone. Weights: ``DIR/ward-pose-<config>.pt`` (``DIR/official/pose.pth`` for official) and
``DIR/ward-vsvig-light.pt`` when present, else random init (timing does not depend on the values,
decoding a little does).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ward.serve.launcher import setup_ray_auth  # noqa: E402

setup_ray_auth()  # Ray with token authentication, as `ward run` starts it

from _util import add_json_option, pose_checkpoint, report  # noqa: E402


ProcKey = tuple[int, int]
"""(pid, start time in clock ticks): a PID the kernel reuses for a new process is a new key."""


def ray_procs_snapshot() -> dict[ProcKey, tuple[float, float]]:
    """{(pid, start): (CPU seconds so far, RSS MB)} of this user's ray/python worker processes now."""
    out: dict[ProcKey, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ray" not in cmd and int(pid) != os.getpid():
                continue
            st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[(int(pid), int(st[19]))] = ((int(st[11]) + int(st[12])) / tick, int(st[21]) * page / 2**20)
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_seconds_used(snapshots: list[dict[ProcKey, tuple[float, float]]]) -> float:
    """CPU seconds the processes used between the first and the last snapshot; never negative.

    Per process: its last reading minus its reading in the first snapshot (0 for a process that
    started after it). A process that ended inside the window keeps its last reading (what it used
    after that, at most one sampling interval, is not counted), instead of disappearing from the
    sum, which made the old total-minus-total figure negative when a Ray worker exited.
    """
    if not snapshots:
        return 0.0
    first = snapshots[0]
    last: dict[ProcKey, float] = {}
    for snap in snapshots:
        last.update({k: v[0] for k, v in snap.items()})
    return sum(max(0.0, v - (first[k][0] if k in first else 0.0)) for k, v in last.items())


def shipped_runtime() -> dict:
    """batching, resources and ingest of the shipped default ward (serve_configs/ward.yaml)."""
    import yaml

    app = yaml.safe_load((ROOT / "serve_configs" / "ward.yaml").read_text())["applications"][0]["args"]
    return {k: app[k] for k in ("batching", "resources", "ingest") if k in app}


def run_ward(n_beds: int, a: argparse.Namespace, pose_cfg: str, tmp: Path) -> dict:
    import ray
    from ray import serve

    from support.serve import sim_bed, ward_args
    from ward.serve.app import build_app

    beds = [sim_bed(f"bed-{i}", i, size=(640, 360)) for i in range(1, n_beds + 1)]
    args = ward_args(tmp, beds)
    args.update(copy.deepcopy(shipped_runtime()))
    args["resources"]["camera_actors"]["beds_per_actor"] = 4
    args["batching"]["pose"]["max_batch_size"] = max(args["batching"]["pose"]["max_batch_size"], n_beds)
    if a.pose_cpus:  # the Pose replica's logical CPUs, which also set its inference threads (ceil)
        args["resources"]["pose"]["num_cpus"] = a.pose_cpus
    if a.pose_replicas:
        args["resources"]["pose"]["replicas"] = a.pose_replicas
    pose_path, _ = pose_checkpoint(pose_cfg, a.weights)
    args["models"]["pose"] = {"path": str(pose_path), "config": pose_cfg, "input_height": a.input_height}
    if a.weights and (a.weights / "ward-vsvig-light.pt").is_file():
        args["models"]["vsvig"]["path"] = str(a.weights / "ward-vsvig-light.pt")
    for model in ("pose", "vsvig"):
        args["models"][model].update({k: v for k, v in (("backend", a.backend), ("precision", a.precision)) if v})
    if a.vsvig_precision:  # e.g. pose in bf16 for speed, VSViG kept in fp32 (cheap, and bf16 misses its gate)
        args["models"]["vsvig"]["precision"] = a.vsvig_precision
        if a.device.startswith("cuda"):
            args["resources"][model]["num_gpus"] = 0.5
    ray.init(address="local", num_cpus=a.ray_cpus, num_gpus=1 if a.device.startswith("cuda") else 0,
             include_dashboard=False, object_store_memory=400 * 2**20, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 0})
        serve.run(build_app(args), name="ward", route_prefix=None)
        coord = serve.get_deployment_handle("Coordinator", app_name="ward")
        t_ready = time.monotonic() + 120  # first clips need 5 s of frames; OpenVINO compiles on start
        while time.monotonic() < t_ready:
            m = coord.metrics.remote().result()
            if len(m["beds"]) == n_beds and all(b.get("pose_done", 0) > 0 for b in m["beds"].values()):
                break
            time.sleep(1)
        time.sleep(a.warmup)
        m0 = coord.metrics.remote().result()
        snaps = [ray_procs_snapshot()]
        t0 = time.monotonic()
        while (left := t0 + a.duration - time.monotonic()) > 0:  # sampled each second: see cpu_seconds_used
            time.sleep(min(1.0, left))
            snaps.append(ray_procs_snapshot())
        m1 = coord.metrics.remote().result()
        dt = time.monotonic() - t0
        snaps.append(ray_procs_snapshot())
        rss = sum(v[1] for v in snaps[-1].values())
        lat = coord.latency.remote().result()
    finally:
        serve.shutdown()
        ray.shutdown()
    d = lambda k, b: m1["beds"][b].get(k, 0) - m0["beds"].get(b, {}).get(k, 0)  # noqa: E731
    beds_ = list(m1["beds"])
    posed = [d("pose_done", b) / dt for b in beds_]
    pose_batches: dict[int, int] = {}
    for rep in m1["batches"].get("pose", {}).values():
        for k, v in rep["sizes"].items():
            pose_batches[int(k)] = pose_batches.get(int(k), 0) + v
    sizes = np.repeat(list(pose_batches), list(pose_batches.values())) if pose_batches else np.zeros(1)
    cpu = cpu_seconds_used(snaps) / dt
    engines = {kind: sorted({" ".join(str(e.get(k)) for k in ("backend", "precision", "device"))
                             for e in (s.get("engine") for s in m1["batches"].get(kind, {}).values()) if e})
               for kind in ("pose", "vsvig")}
    dropped = {k: sum(d(k, b) for b in beds_) for k in ("frames_dropped", "frames_dropped_inflight")}
    return {"pose": pose_cfg, "beds": n_beds, "beds_at_6fps": sum(f >= 0.9 * 6.0 for f in posed),
            "posed_fps_min": min(posed), "posed_fps_mean": float(np.mean(posed)),
            "dropped_slot": dropped["frames_dropped"], "dropped_inflight": dropped["frames_dropped_inflight"],
            "dropped_per_s": sum(dropped.values()) / dt,
            "clips_scored": sum(d("clips_scored", b) for b in beds_),
            "lat_p50_s": lat["p50"], "lat_p95_s": lat["p95"], "pose_batch_mean": float(sizes.mean()),
            "pose_batch_max": int(sizes.max()), "ward_pose_fps": float(sum(posed)),
            "cpu_cores": cpu, "cpu_per_bed": cpu / n_beds, "rss_mb": rss, "seconds": round(dt, 1),
            **{f"{k}_engine": ", ".join(v) or "not reported (torch fp32 before issue 15)" for k, v in engines.items()}}


def network_fps(pose_cfg: str, a: argparse.Namespace, batch: int, threads: int) -> float:
    """The pose stage's own throughput (preprocess + network + decode) at this batch size and engine."""
    import torch

    from ward.vision.pose import PoseEstimator

    torch.set_num_threads(threads)
    ckpt, _ = pose_checkpoint(pose_cfg, a.weights)
    est = PoseEstimator.from_checkpoint(ckpt, pose_cfg, height=a.input_height, device=a.device,
                                        backend=a.backend or "auto", precision=a.precision or "auto",
                                        num_threads=threads)
    x = np.random.default_rng(0).integers(0, 255, (batch, 360, 640, 3), dtype=np.uint8)
    est(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 8:
        est(x)
        n += batch
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beds", default="2,4,8")
    ap.add_argument("--duration", "--seconds", type=float, default=60.0, dest="duration",
                    help="seconds of steady state measured per run (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds after every bed was first posed")
    ap.add_argument("--pose", default="official,small")
    ap.add_argument("--input-height", type=int, default=256)
    ap.add_argument("--backend", choices=["auto", "torch", "openvino"], default=None,
                    help="models.pose/vsvig.backend (default: the config's default)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default=None,
                    help="models.pose/vsvig.precision (default: the config's default)")
    ap.add_argument("--vsvig-precision", choices=["auto", "fp32", "bf16", "int8"], default=None,
                    help="models.vsvig.precision only, overriding --precision for VSViG")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: Pose and VSViG on the GPU (num_gpus 0.5 each)")
    ap.add_argument("--ray-cpus", type=int, default=4, help="logical CPUs given to Ray (ray.init num_cpus)")
    ap.add_argument("--pose-cpus", type=float, default=None,
                    help="resources.pose.num_cpus (default: the shipped 0.5 = 1 inference thread; 2.0 = 2 threads)")
    ap.add_argument("--pose-replicas", type=int, default=None, help="resources.pose.replicas (default: shipped)")
    ap.add_argument("--stop-early", action="store_true", help="skip larger N once one is not sustained")
    ap.add_argument("--no-network", action="store_true", help="skip the in-process pose-stage comparison")
    ap.add_argument("--weights", type=Path, default=ROOT / "models")
    add_json_option(ap, "bench_ward")
    a = ap.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(2)
    rows, best = [], {}
    for cfg in a.pose.split(","):
        for n in [int(x) for x in a.beds.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_ward(n, a, cfg, Path(tmp))
            r["sustained"] = bool(r["beds_at_6fps"] == n and (r["lat_p95_s"] or 99) < 2.0)
            r["loadavg"] = os.getloadavg()[0]
            rows.append(r)
            print(r, flush=True)
            if r["sustained"]:
                best[cfg] = max(best.get(cfg, 0), n)
            elif a.stop_early:
                break  # larger N will not be sustained either
        if not a.no_network:
            sat = rows[-1]
            b = max(1, round(sat["pose_batch_mean"]))
            threads = max(1, math.ceil(a.pose_cpus or shipped_runtime()["resources"]["pose"]["num_cpus"]))  # as the replica
            try:
                sat["network_fps_same_batch"] = network_fps(cfg, a, b, threads)
                sat["ward_vs_network"] = sat["ward_pose_fps"] / sat["network_fps_same_batch"]
            except Exception as exc:  # the ward's figures are measured: keep them
                sat["network_fps_same_batch"] = f"failed: {type(exc).__name__}: {exc}"
                print("pose stage comparison failed:", sat["network_fps_same_batch"], flush=True)
    out = report("bench_ward", rows, {"largest_sustained_beds": best, "duration_s": a.duration,
                                      "warmup_s": a.warmup, "input_height": a.input_height,
                                      "backend": a.backend or "config default", "precision": a.precision or "config default",
                                      "vsvig_precision": a.vsvig_precision or a.precision or "config default",
                                      "device": a.device, "runtime": shipped_runtime(),
                                      "pose_cpus": a.pose_cpus, "pose_replicas": a.pose_replicas}, json_path=a.json)
    print("largest N sustained in real time (6 fps per bed, p95 < 2 s):", best)
    return out


if __name__ == "__main__":
    main()
