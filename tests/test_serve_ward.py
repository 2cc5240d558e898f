"""The ward on a small real Ray: two simulated beds and one unreachable camera, end to end.

One module-scoped ward (about 30-60 s on 2 busy cores): probabilities reach the store and the API,
an alarm is raised and stored, the dead camera stays offline with a reason (and a technical alarm)
while the other beds work, and the API enforces authentication and roles.

About the alarm: the VSViG weights here are a constant model (support.serve.make_weights with
logit +3.9) that answers p = 0.98 for every clip. The test therefore shows the path model output -> per-bed rule ->
alarm stored -> API (and that a per-bed threshold override applies: bed-2 never alarms), not that
an untrained model detects the simulated seizure.

Both models run on OpenVINO, asked for in the config (pose fp32, VSViG at the CPU's best precision):
the replicas build their engines from ``models.<model>.backend``/``precision`` and report them in
``/metrics``.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from support.serve import free_port, sim_bed, wait_for, ward_args

# The first test also waits for the module's ward to start (setup counts towards its timeout): generous on 2 busy cores.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    import ray
    from ray import serve

    from ward.serve.app import build_app
    from ward.store import Store

    tmp = tmp_path_factory.mktemp("ward")
    beds = [sim_bed("bed-1", 1, seizure_at=5.0),
            sim_bed("bed-2", 2, rules={"alarm_threshold": 0.99, "release_threshold": 0.5}),
            {"bed_id": "bed-x", "source": "rtsp://127.0.0.1:9/nothing", "offline_alarm_after_s": 3.0}]
    args = ward_args(tmp, beds, vsvig_bias=3.9)
    args["models"]["pose"].update(backend="openvino", precision="fp32")
    args["models"]["vsvig"].update(backend="openvino", precision="auto")
    store = Store(args["database"]["url"])
    store.create_user("viewer1", "viewer-pass")
    store.create_user("nurse1", "nurse-pass", role="clinician")
    token = store.create_token("nurse1")
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20,
             log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    t0 = time.monotonic()
    serve.run(build_app(args), name="ward", route_prefix="/")
    try:
        yield {"url": f"http://127.0.0.1:{port}", "store": store, "token": token, "t0": t0, "args": args}
    finally:
        serve.shutdown()
        ray.shutdown()


def _get(ward, path, auth=("viewer1", "viewer-pass"), **params):
    return httpx.get(ward["url"] + path, auth=auth, params=params, timeout=45)


def test_probabilities_flow_to_store_and_api(ward):
    def stored():
        beds = {b["bed_id"]: b for b in _get(ward, "/api/beds").json()}
        return beds if all(beds[b]["samples_stored"] >= 3 for b in ("bed-1", "bed-2")) else None

    beds = wait_for(stored, 420, what="3 stored probabilities for bed-1 and bed-2")  # generous: 2 busy cores
    for b in ("bed-1", "bed-2"):
        assert beds[b]["state"] in ("online", "degraded"), beds[b]
        assert 0.0 <= beds[b]["probability"] <= 1.0
        assert beds[b]["updated_at"] is not None
    hist = ward["store"].history("bed-1", datetime.now(timezone.utc) - timedelta(minutes=5), resolution="1s")
    assert len(hist) >= 3
    r = _get(ward, "/api/beds/bed-1/probabilities")
    assert r.status_code == 200
    pts = r.json()["points"]
    assert len(pts) >= 3 and all(0.0 <= p["probability"] <= 1.0 for p in pts)
    times = [p["t"] for p in pts]
    assert times == sorted(times) and len(set(times)) == len(times)  # one sample per clip, in order


def test_alarm_raised_stored_and_acknowledged(ward):
    def alarm():
        rows = _get(ward, "/api/alarms", bed_id="bed-1", tier="alarm").json()
        return rows or None

    rows = wait_for(alarm, 300, what="an alarm on bed-1")
    a = rows[0]
    assert a["bed"] == "bed-1" and a["tier"] == "alarm" and a["peak"] > 0.9
    beds = {b["bed_id"]: b for b in _get(ward, "/api/beds").json()}
    assert beds["bed-1"]["alarm_active"] is True
    assert beds["bed-2"]["alarm_active"] is False  # its own threshold (0.99 on the accumulator) is never reached
    assert _get(ward, "/api/alarms", bed_id="bed-2", tier="alarm").json() == []
    # viewer may not acknowledge; clinician (bearer token) may
    url = f"{ward['url']}/api/alarms/{a['id']}/ack"
    r = httpx.post(url, json={"verdict": "true", "note": "seen"}, auth=("viewer1", "viewer-pass"), timeout=10)
    assert r.status_code == 403
    r = httpx.post(url, json={"verdict": "maybe"}, headers={"Authorization": f"Bearer {ward['token']}"}, timeout=10)
    assert r.status_code == 422
    r = httpx.post(url, json={"verdict": "true", "note": "seen"},
                   headers={"Authorization": f"Bearer {ward['token']}"}, timeout=10)
    assert r.status_code == 200 and r.json()["verdict"] == "true" and r.json()["acknowledged"] is True
    assert ward["store"].ack_events(a["id"])[0].username == "nurse1"
    r = httpx.post(f"{ward['url']}/api/alarms/999999/ack", json={"verdict": "true"},
                   headers={"Authorization": f"Bearer {ward['token']}"}, timeout=10)
    assert r.status_code == 404


def test_unreachable_camera_stays_offline_while_others_work(ward):
    def tech():
        return _get(ward, "/api/alarms", bed_id="bed-x", tier="technical").json() or None

    rows = wait_for(tech, 60, what="a technical alarm for the dead camera")
    assert "offline" in rows[0]["reason"]
    beds = {b["bed_id"]: b for b in _get(ward, "/api/beds").json()}
    assert beds["bed-x"]["state"] == "offline"
    assert "could not open" in beds["bed-x"]["reason"] or "open failed" in beds["bed-x"]["reason"]
    assert beds["bed-x"]["probability"] is None and beds["bed-x"]["since"] is not None
    assert beds["bed-1"]["samples_stored"] > 0 and beds["bed-2"]["samples_stored"] > 0
    events = ward["store"].health_events(bed="bed-x")
    assert events and events[0].state == "offline" and events[0].reason


def test_auth_required_and_health_open(ward):
    assert httpx.get(ward["url"] + "/api/beds", timeout=10).status_code == 401
    assert httpx.get(ward["url"] + "/api/alarms", timeout=10).status_code == 401
    assert httpx.get(ward["url"] + "/metrics", timeout=10).status_code == 401
    assert _get(ward, "/api/beds", auth=("viewer1", "wrong-pass")).status_code == 401
    r = httpx.get(ward["url"] + "/api/beds", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    h = httpx.get(ward["url"] + "/api/health", timeout=10)
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["beds"] == 3
    assert _get(ward, "/api/beds/nope/probabilities").status_code == 404
    assert httpx.get(ward["url"] + "/docs", timeout=10).status_code == 200
    paths = httpx.get(ward["url"] + "/openapi.json", timeout=10).json()["paths"]
    assert {"/api/health", "/api/beds", "/api/alarms", "/api/alarms/{alarm_id}/ack", "/metrics"} <= set(paths)


def test_metrics_exposition(ward):
    wait_for(lambda: "ward_end_to_end_latency_seconds_count" in _get(ward, "/metrics").text
             and 'deployment="pose"' in _get(ward, "/metrics").text, 60, what="latency and batch metrics")
    text = _get(ward, "/metrics").text
    lines = {ln.split(" ")[0]: ln.rsplit(" ", 1)[1] for ln in text.splitlines() if ln and not ln.startswith("#")}
    assert float(lines['ward_frames_in_total{bed="bed-1"}']) > 0
    assert float(lines['ward_frames_in_total{bed="bed-x"}']) == 0
    assert float(lines["ward_end_to_end_latency_seconds_count"]) > 0
    assert any(k.startswith('ward_batches_total{deployment="pose"') for k in lines)
    assert 'ward_bed_state{bed="bed-x",state="offline"} 1' in text
    assert "# TYPE ward_end_to_end_latency_seconds histogram" in text
    engines = {k.split('deployment="')[1].split('"')[0]: k for k in lines if k.startswith("ward_model_engine_info{")}
    assert set(engines) == {"pose", "vsvig"}, engines
    assert 'backend="openvino",precision="fp32",device="cpu"' in engines["pose"]
    assert 'backend="openvino"' in engines["vsvig"]


def test_poses_endpoint(ward):
    r = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(_get(ward, "/api/beds/bed-1/poses")), 30,
                 what="a pose for bed-1")
    kp = r.json()["keypoints"][0]
    assert len(kp) == 18 and all(len(j) == 3 for j in kp)


def test_dashboard_live_view_uses_a_token(ward):
    """The dashboard's live API call needs the service token the ward hands it; anonymous gets 401."""
    from ward.dashboard.data import fetch_api_beds
    from ward.dashboard.settings import load_settings

    anonymous = fetch_api_beds(ward["url"], timeout_s=45)
    assert anonymous is not None and anonymous.error and "401" in anonymous.error
    store = ward["store"]
    name = f"svc-dashboard-test-{secrets.token_hex(4)}"  # fresh: no error to swallow if it existed
    store.create_user(name, "x" * 24, role="viewer")
    cfg = load_settings({"WARD_API_URL": ward["url"], "WARD_API_TOKEN": store.create_token(name)})
    live = fetch_api_beds(cfg.api_url, timeout_s=45, headers=cfg.api_headers())
    assert live is not None and live.error is None
    assert {"bed-1", "bed-2", "bed-x"} <= set(live.beds)
