"""Ward serving logic without a Ray cluster: metrics text, configs, builder validation, batching config,
dashboard process. (The coordinator's logic is tests/test_alarm_coordinator.py.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from support.serve import make_weights, sim_bed, ward_args

ROOT = Path(__file__).resolve().parents[1]


def test_render_metrics():
    from ward.serve.metrics import render_metrics

    text = render_metrics({
        "beds": {"b1": {"frames_in": 10, "frames_dropped": 2, "frames_corrupt": 3, "state": "online",
                        "fps_measured": 12.0},
                 "b2": {"frames_in": 0, "state": "offline"}},
        "batches": {"pose": {"r1": {"sizes": {"1": 3, "4": 2}, "items": 11, "batches": 5, "busy_s": 0.5, "ongoing": 1,
                                      "engine": {"backend": "openvino", "precision": "bf16", "device": "cpu"}}}},
        "latency": {"buckets": [0.5, 1.0], "counts": [2, 1, 1], "sum": 3.0, "count": 4},
        "spill_pending": 0, "flush_errors": 0})
    assert 'ward_frames_in_total{bed="b1"} 10.0' in text
    assert 'ward_frames_dropped_total{bed="b1"} 2.0' in text
    # corrupt frames per bed, a counter like the other camera counters (0 before the camera reports it)
    assert "# TYPE ward_frames_corrupt_total counter" in text
    assert 'ward_frames_corrupt_total{bed="b1"} 3.0' in text
    assert 'ward_frames_corrupt_total{bed="b2"} 0.0' in text
    assert 'ward_batches_total{deployment="pose",replica="r1",size="4"} 2' in text
    assert ('ward_model_engine_info{deployment="pose",replica="r1",backend="openvino",precision="bf16",'
            'device="cpu"} 1') in text
    assert 'ward_end_to_end_latency_seconds_bucket{le="1"} 3' in text
    assert 'ward_end_to_end_latency_seconds_bucket{le="+Inf"} 4' in text
    assert 'ward_bed_state{bed="b1",state="online"} 1' in text
    names = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE")}
    samples = {ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert all(s in names or s.rsplit("_", 1)[0] in names for s in samples)


@pytest.mark.parametrize("name", ["ward.yaml", "ward_gpu.yaml", "ward_cluster.yaml"])
def test_serve_configs_are_strictly_valid(name):
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    from ward.config import load_ward_config

    raw = yaml.safe_load((ROOT / "serve_configs" / name).read_text())
    schema = ServeDeploySchema.model_validate(raw)
    # Serve ignores unknown keys: check every key against its schema ourselves
    assert set(raw) <= set(ServeDeploySchema.model_fields), set(raw) - set(ServeDeploySchema.model_fields)
    for app in raw["applications"]:
        assert set(app) <= set(ServeApplicationSchema.model_fields), set(app) - set(ServeApplicationSchema.model_fields)
        assert app["import_path"] == "ward.serve.app:build_app"
        for dep in app.get("deployments", []):
            assert set(dep) <= set(DeploymentSchema.model_fields), set(dep) - set(DeploymentSchema.model_fields)
            assert dep["name"] in ("Pose", "VSViG", "Coordinator", "WardAPI")
            if "ray_actor_options" in dep:  # replaced wholesale: must be complete
                assert {"num_cpus", "num_gpus"} <= set(dep["ray_actor_options"])
    cfg = load_ward_config(raw, validate_paths=False)
    if name == "ward.yaml":
        assert len(cfg.beds) == 4 and sum("seizure=" in b.source for b in cfg.beds) == 2
        assert cfg.database.url == "sqlite:///./ward.db" and schema.http_options.host == "127.0.0.1"
        from ward.serve.app import deployment_options

        opts = deployment_options(cfg)
        n_actors = -(-len(cfg.beds) // cfg.resources.camera_actors.beds_per_actor)
        total = (opts["Pose"]["ray_actor_options"]["num_cpus"] + opts["VSViG"]["ray_actor_options"]["num_cpus"]
                 + 0.25 + 0.1 + n_actors * cfg.resources.camera_actors.num_cpus)
        assert total <= 2.0, f"default ward reserves {total} CPUs; it must fit 2"
        assert all(not o["ray_actor_options"].get("num_gpus") for o in opts.values())
    if name == "ward_gpu.yaml":
        assert all(o.get("ray_actor_options", {}).get("num_gpus", 0) > 0 for o in raw["applications"][0]["deployments"])


def test_build_app_rejects_bad_config_before_starting(tmp_path):
    from ward.config import ConfigError
    from ward.serve.app import build_app

    args = ward_args(tmp_path, [sim_bed("bed-1", 1), sim_bed("bed-1", 2)])
    args["beds"][0]["fpss"] = 6
    args["models"]["vsvig"]["path"] = str(tmp_path / "missing.pt")
    with pytest.raises(ConfigError) as ei:
        build_app(args)
    msg = str(ei.value)
    assert "beds[0].fpss: unknown key" in msg
    assert "models.vsvig.path: file not found" in msg
    assert "duplicate bed id 'bed-1'" in msg
    with pytest.raises(ConfigError, match="args"):
        build_app(None)


def test_build_app_binds_options_from_config(tmp_path):
    from ward.serve.app import build_app

    args = ward_args(tmp_path, [sim_bed("bed-1", 1)])
    args["resources"]["pose"] = {"num_cpus": 0.5, "replicas": 2, "resources": {"accel": 0.5}}
    args["batching"]["pose"] = {"max_batch_size": 12, "batch_wait_timeout_s": 0.01}
    app = build_app(args)
    deps = {}

    def walk(node):
        for a in list(node.args) + list(node.kwargs.values()):
            if hasattr(a, "_bound_deployment") or type(a).__name__ == "Application":
                walk(a._bound_deployment if hasattr(a, "_bound_deployment") else a)
        deps[node.name] = node

    root = app._bound_deployment
    for a in root.init_args:
        if type(a).__name__ == "Application":
            d = a._bound_deployment
            deps[d.name] = d
    pose = deps["Pose"]
    assert pose.num_replicas == 2 and pose.max_ongoing_requests >= 12
    assert pose.ray_actor_options["resources"] == {"accel": 0.5}
    assert pose.user_config == {"max_batch_size": 12, "batch_wait_timeout_s": 0.01}
    assert deps["VSViG"].ray_actor_options.get("num_gpus") in (None, 0)


def test_apply_batch_config_validates_and_sets():
    from ward.config import ConfigError
    from ward.serve.deployments import apply_batch_config

    class M:
        def set_max_batch_size(self, n):
            self.n = n

        def set_batch_wait_timeout_s(self, t):
            self.t = t

    m = M()
    apply_batch_config(m, {"max_batch_size": 8, "batch_wait_timeout_s": 0.03})
    assert (m.n, m.t) == (8, 0.03)
    with pytest.raises(ConfigError, match="max_batch_siz"):
        apply_batch_config(m, {"max_batch_siz": 8})
    with pytest.raises(ConfigError, match="max_batch_size"):
        apply_batch_config(m, {"max_batch_size": 0})


def test_pose_batch_groups_sizes_and_vsvig_batch(tmp_path):
    import numpy as np
    import torch

    from ward.serve.deployments import pose_batch, vsvig_batch
    from ward.vision.vsvig import load_vsvig

    calls = []

    def fake(batch):
        calls.append(batch.shape)
        return [[np.full((18, 3), float(b[0, 0, 0]), np.float32)] for b in batch]

    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)] + [np.zeros((8, 6, 3), np.uint8)]
    out = pose_batch(fake, frames)
    assert sorted(calls) == [(1, 8, 6, 3), (3, 4, 6, 3)]
    assert [o.shape for o in out] == [(1, 18, 3)] * 4 and [o[0, 0, 0] for o in out[:3]] == [0, 1, 2]
    with pytest.raises(ValueError, match="uint8"):
        pose_batch(fake, [np.zeros((4, 6, 3), np.float32)])
    _, vp = make_weights(tmp_path)
    model = load_vsvig(vp)
    with torch.no_grad():  # untrained logits are ~1e3 (p saturated at 1.0): scale them to ~1 so that
        model.fc[3].weight.mul_(1e-3)  # the clips' probabilities differ and a mix-up would show
        model.fc[3].bias.zero_()
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 255, (30, 15, 3, 32, 32), dtype=np.uint8) for _ in range(3)]
    kpts = [rng.random((30, 15, 3), dtype=np.float32) for _ in range(3)]
    batched = vsvig_batch(model, patches, kpts, torch.device("cpu"))
    single = [vsvig_batch(model, [p], [k], torch.device("cpu"))[0] for p, k in zip(patches, kpts)]
    assert min(abs(a - b) for i, a in enumerate(single) for b in single[i + 1:]) > 0.01, single  # distinct clips
    # batch 3 and batch 1 run differently blocked GEMMs (float rounding differs by CPU): a loose
    # tolerance, still far below the differences between clips
    assert np.allclose(batched, single, rtol=0, atol=1e-3), (batched, single)


def test_assign_beds():
    from ward.serve.camera_actor import assign_beds

    assert assign_beds(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    with pytest.raises(ValueError):
        assign_beds(["a"], 0)


def test_dashboard_process_stops_its_group(tmp_path):
    from ward.serve.supervisor import DashboardProcess, dashboard_command

    marker = tmp_path / "child.pid"
    code = f"import os,subprocess,sys,time; p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); open({str(marker)!r},'w').write(str(p.pid)); time.sleep(60)"
    proc = DashboardProcess([sys.executable, "-c", code])
    proc.start()
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "child did not start"
        time.sleep(0.1)
    child = int(marker.read_text())
    assert proc.running
    proc.stop(timeout=5)
    assert not proc.running
    time.sleep(0.2)
    stat = Path(f"/proc/{child}/stat")
    # the grandchild died with the group (gone, or a zombie waiting for its new parent to reap it)
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] in ("Z", "X")
    cmd = dashboard_command("127.0.0.1", 8501)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")


def _replica(cls, model, monkeypatch):
    """A Pose/VSViG replica object built outside Ray (the batch reporter replaced)."""
    from dataclasses import asdict
    from types import SimpleNamespace

    import ward.serve.deployments as dep

    monkeypatch.setattr(dep, "_Reporter", lambda kind, coordinator, engine: SimpleNamespace(
        engine=asdict(engine), stats=dep.BatchStats(), ongoing=0))
    return cls.func_or_class(model, None)


def test_replicas_run_the_configured_engine_with_the_outputs_of_before(monkeypatch):
    """Pose and VSViG replicas built from the config's backend/precision: torch fp32 gives what the
    replicas computed before the engines (BN-folded torch fp32; oneDNN's float rounding may differ in
    the last bit between two loads), OpenVINO fp32 the same within float tolerance; the engine is in
    stats()."""
    import numpy as np
    import torch

    from ward.serve.deployments import Pose, VSViG, pose_batch, vsvig_batch
    from ward.sim.render import SimCamera
    from ward.sim.scenario import random_scenario
    from ward.vision.openpose import fuse_for_inference, load_openpose
    from ward.vision.pose import PoseEstimator
    from ward.vision.vsvig import load_vsvig

    pose_w, vsvig_w = str(ROOT / "models" / "ward-pose-small.pt"), str(ROOT / "models" / "ward-vsvig-light.pt")
    cam = SimCamera(random_scenario(3, 10.0, n_seizures=0, fps=6, width=640, height=360))
    frames = [cam.frame(i)[0] for i in (0, 20, 40)]
    before_pose = PoseEstimator(fuse_for_inference(load_openpose(pose_w, "small", 1), channels_last=True),
                                height=256)
    ref_people = pose_batch(before_pose, frames)
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 255, (30, 15, 3, 32, 32), dtype=np.uint8) for _ in range(3)]
    kpts = [rng.random((30, 15, 3), dtype=np.float32) for _ in range(3)]
    ref_p = vsvig_batch(load_vsvig(vsvig_w).fuse_for_inference(channels_last=True), patches, kpts,
                        torch.device("cpu"))
    # torch: 1e-3 px, the last float bits of the heatmaps moved by the sub-cell peak fit (~3e-5 px seen)
    for backend, atol_px, atol_p in (("torch", 1e-3, 1e-6), ("openvino", 0.5, 1e-4)):
        common = {"backend": backend, "precision": "fp32", "device": "cpu", "num_cpus": 1.0}
        pose = _replica(Pose, {"path": pose_w, "config": "small", "refinement_stages": 1, "input_height": 256,
                               **common}, monkeypatch)
        assert pose.stats()["engine"]["backend"] == backend and pose.stats()["engine"]["precision"] == "fp32"
        people = pose_batch(pose.estimator, frames)
        assert [p.shape for p in people] == [p.shape for p in ref_people]
        assert sum(len(p) for p in people) > 0  # the shipped model finds the patient
        for got, ref in zip(people, ref_people):
            np.testing.assert_allclose(got, ref, rtol=0, atol=atol_px)
        vsvig = _replica(VSViG, {"path": vsvig_w, "variant": "light", **common}, monkeypatch)
        assert vsvig.stats()["engine"]["backend"] == backend
        np.testing.assert_allclose(vsvig_batch(vsvig.scorer, patches, kpts), ref_p, rtol=0, atol=atol_p)
