"""Fault injection on a small real Ray ward: break things for real, then check recovery and the data.

One module-scoped ward (Ray with 4 logical CPUs on the 2 real cores, SQLite), four beds:

- ``bed-1``, ``bed-2``: simulated patients (sim://), scored all the time; bed-1 through the pose
  network, bed-2 with the simulator's keypoints (see the fixture: sized for two busy cores);
- ``bed-bug``: Debian's deliberately corrupted ``Megamind_bugy.avi``, not looping: it delivers what
  OpenCV can decode, then the stream ends and the bed goes offline with that reason;
- ``bed-late``: a video file that does not exist when the ward starts. It stays offline with a
  reason (and gets a technical alarm) while the others score; the file is created at the end.

The faults run in file order on the same ward: database outage (SQLite held under an exclusive
lock, i.e. unwritable, for 30 s), SIGKILL of the camera actors' processes, of the Pose and the VSViG
replica processes, and of the coordinator. After each, the affected beds must store new samples: the
product target is 30 s, and a test fails only past 6x the target (180 s), so a stuck system fails
while a loaded machine does not. Every recovery time is recorded: printed at the end, and written as
JSON to the file named by ``$WARD_FAULT_TIMES`` when set (``benchmarks/bench_faults.py`` runs this
module that way and compares the times with the targets). Throughout, stored samples must never be
duplicated (two rows of one bed less than a quarter of the 1 s clip stride apart), and the outage
must lose nothing (every sample the coordinator accepted is in the database after the spill is
replayed, with no gap across the outage) and be counted as failed flushes.

About alarms, honestly: the weights are untrained, and VSViG is a constant model
(support.serve.make_weights with logit -12: p = 6e-6 for every clip): nothing here responds to seizure motion, so no simulated seizure is
scheduled. Instead bed-1 and bed-late get a deliberately sensitive rule (p_floor 0, alarm_threshold
1e-9: "alarm whenever the model produces output", as in test_faults_pg_rtsp.py) and bed-2 keeps the
default rule (never alarms). That exercises what must survive the faults, the path model output ->
rule -> stored alarm -> API: the coordinator restart adopts bed-1's open alarm instead of
duplicating it, and bed-late, whose signal starts only after every fault (its camera appears last),
still gets its alarm raised and stored. Detection quality is the evaluation suite's business.

Runtime: about 3-5 minutes on 2 busy cores. Marked ``ray``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from support.serve import free_port, sim_bed, wait_for, ward_args

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
BUGGY = DATA / "Megamind_bugy.avi"
LATE_SOURCE_VIDEO = DATA / "vtest.avi"
RECOVERY_S = 30.0          # product target: a killed component back, beds storing again
# A test fails past LIMIT_FACTOR x the target, so a stuck system fails and a slow one does not. 6x: with
# both cores kept busy by other work, recoveries measured 81-110 s (camera actors, Pose, coordinator;
# target 30 s); at normal load 4-21 s. The times themselves are benchmarks/bench_faults.py's business.
LIMIT_FACTOR = 6.0
OUTAGE_S = 30.0
SIM_BEDS = ("bed-1", "bed-2")
V = ("viewer1", "viewer-pass")
# fires on any model output (see the module docstring); max_gap_s 60 so a restart gap does not end it
SENSITIVE = {"p_floor": 0.0, "alarm_threshold": 1e-9, "release_threshold": 5e-10, "max_gap_s": 60.0}


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    if not BUGGY.is_file() or not LATE_SOURCE_VIDEO.is_file():
        pytest.fail(f"{BUGGY} / {LATE_SOURCE_VIDEO} missing: install Debian's opencv-doc (DESIGN.md §8)")
    import ray
    from ray import serve

    from ward.serve.app import build_app
    from ward.store import Store

    tmp = tmp_path_factory.mktemp("faults")
    late = tmp / "late" / "bed-late.avi"
    # Sized for two busy cores (both kept busy by other work, as CI under load does). A clip needs 30
    # posed frames with no gap over max(1 s, 4 periods). Measured under two busy loops: the Pose
    # deployment completed ~3 requests/s in all (2-3 s each, queued in the replica), whatever the
    # network's cost (4 ms a frame at input height 64). With 12 requests/s asked for, clips stopped
    # filling and no bed scored. So only bed-1 (and bed-bug, bed-late) go through the pose network,
    # at 2 fps (a 15 s clip; 4 requests in flight per bed cover the round trip); bed-2 uses the
    # simulator's keypoints at 4 fps (still camera actor -> VSViG -> coordinator -> store).
    beds = [sim_bed("bed-1", 1, fps=2.0, source_fps=4.0, rules=SENSITIVE),
            sim_bed("bed-2", 2, fps=4.0, source_fps=8.0, keypoints="simulator"),
            {"bed_id": "bed-bug", "source": str(BUGGY), "fps": 2.0, "height": 180, "loop": False},
            {"bed_id": "bed-late", "source": str(late), "fps": 2.0, "height": 180, "offline_alarm_after_s": 3.0,
             "rules": SENSITIVE}]
    args = ward_args(tmp, beds, vsvig_bias=-12.0, ingest={"max_inflight_per_bed": 4})
    args["models"]["pose"]["input_height"] = 64
    store = Store(args["database"]["url"])
    store.create_user("viewer1", "viewer-pass")
    store.create_user("nurse1", "nurse-pass", role="clinician")
    port = free_port()
    # address="local": a new Ray instance even when another cluster on this machine is listed in
    # /tmp/ray/ray_current_cluster (plain ray.init() would try to join it, and refuse num_cpus)
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20,
             log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(args), name="ward", route_prefix="/")
    w = {"url": f"http://127.0.0.1:{port}", "store": store, "db": tmp / "ward.db", "late": late, "t0": time.time(),
         "recovery": {}}
    try:
        yield w
    finally:
        write_fault_times("test_faults", w["recovery"])
        serve.shutdown()
        ray.shutdown()
        store.close()


# ------------------------------------------------------------------------------------------ helpers

def record_recovery(ward, fault: str, seconds: float, target_s: float | None = None) -> None:
    """Record a measured recovery time; with a target, fail only past LIMIT_FACTOR x the target.

    The product target itself is not asserted: on a loaded 2-core machine a healthy ward can miss it
    by a second, while a stuck one never recovers. benchmarks/bench_faults.py compares with targets.
    """
    limit = None if target_s is None else LIMIT_FACTOR * target_s
    ward["recovery"][fault] = {"seconds": round(seconds, 2), "target_s": target_s, "limit_s": limit}
    if limit is not None:
        assert seconds <= limit, (f"{fault}: recovered only after {seconds:.1f} s (target {target_s:g} s, "
                                  f"test limit {limit:g} s)")


HOLE_S = 10.0
"""Longest gap in a bed's stored samples across a fault elsewhere (scores come every 1 s)."""
PURE_SPILL_BED = "bed-2"
"""In both fault wards bed-2 scores simulator keypoints: its samples do not wait for the shared Pose replica, so a hole in
them can only come from the store path. The pose beds' holes also depend on how much CPU the Pose
replica gets (on two busy cores it served ~3 frames/s and clip rings restarted after gaps): they are
measured (recorded with the recovery times) and fail only past LIMIT_FACTOR x HOLE_S. Lost rows are
caught by the count check (every sample the coordinator accepted is in PostgreSQL), not by gaps."""


def check_holes(ward, bed: str, ts: list[float], during: str) -> None:
    gap = _max_gap(ts)
    if bed == PURE_SPILL_BED:
        assert gap < HOLE_S, f"{bed}: a {gap:.1f} s hole in the stored samples {during}"
        return
    record_recovery(ward, f"{bed}: longest gap in stored samples {during}", gap)
    assert gap < LIMIT_FACTOR * HOLE_S, f"{bed}: a {gap:.1f} s hole in the stored samples {during}"


def _max_gap(ts: list[float]) -> float:
    return max((b - a for a, b in pairwise(ts)), default=float("inf"))


def write_fault_times(module: str, recovery: dict[str, dict]) -> None:
    """Print the recovery times and merge them into the JSON file named by $WARD_FAULT_TIMES, if set.

    Both fault modules call this from their fixture teardown, so the figures of a partly failed run
    are kept too; benchmarks/bench_faults.py reads the file.
    """
    print(f"\nrecovery times (s), {module}:", {k: v["seconds"] for k, v in recovery.items()})
    path = os.environ.get("WARD_FAULT_TIMES")
    if not path:
        return
    out = Path(path)
    data = json.loads(out.read_text()) if out.is_file() else {}
    data[module] = recovery
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))


def _api(ward, path, **params):
    r = httpx.get(ward["url"] + path, auth=V, params=params, timeout=15)
    r.raise_for_status()
    return r.json()


def _beds(ward) -> dict[str, dict]:
    return {b["bed_id"]: b for b in _api(ward, "/api/beds")}


def _metric(ward, name: str) -> float:
    text = httpx.get(ward["url"] + "/metrics", auth=V, timeout=15).text
    for ln in text.splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def _times(ward, bed: str, since: float = 0.0) -> list[float]:
    """Stored sample times of a bed (epoch s), read from the database itself."""
    pts = ward["store"].history(bed, datetime.fromtimestamp(max(since, ward["t0"] - 60), timezone.utc),
                                datetime.now(timezone.utc) + timedelta(seconds=5), "1s")
    return [p.t.timestamp() for p in pts]


def _scores_after(ward, beds, t_fault: float) -> float:
    """Seconds from the fault until every bed in ``beds`` stored a sample captured after it."""
    def ok():
        return all(any(t > t_fault for t in _times(ward, b, t_fault - 5)) for b in beds)
    # past the test's limit, so that a slow recovery is still measured before the test fails on it
    wait_for(ok, LIMIT_FACTOR * RECOVERY_S + 30, interval=0.5, what=f"{beds} scoring again after the fault")
    return time.time() - t_fault


def _alive(match: str) -> list[tuple[str, int]]:
    """(class name, pid) of live actors whose class name contains ``match`` (Ray's GCS actor table)."""
    from ray._private import state

    return [(a["ActorClassName"], a["Pid"]) for a in state.actors(actor_state_name="ALIVE").values()
            if match in a["ActorClassName"] and a["Pid"]]


def _kill(match: str) -> tuple[int, float]:
    procs = _alive(match)
    assert procs, f"no live actor matching {match!r}"
    pid = procs[0][1]
    t = time.time()
    os.kill(pid, signal.SIGKILL)
    return pid, t


def _assert_no_duplicates(ward) -> None:
    for bed in SIM_BEDS:
        ts = _times(ward, bed)
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert ts == sorted(ts)
        assert not gaps or min(gaps) >= 0.25, f"{bed}: two stored samples {min(gaps):.3f} s apart (a duplicate clip)"


# ------------------------------------------------------------------------------------------- tests

def test_ward_comes_up_without_the_missing_camera(ward):
    wait_for(lambda: all(len(_times(ward, b)) >= 3 for b in SIM_BEDS), 240, what="3 stored samples on bed-1 and bed-2")
    beds = wait_for(lambda: (lambda b: b if b["bed-late"]["state"] == "offline" and b["bed-late"]["reason"] else None)(
        _beds(ward)), 60, what="bed-late offline with a reason")
    late = beds["bed-late"]
    assert late["probability"] is None
    assert "open" in late["reason"] or "not found" in late["reason"] or "exist" in late["reason"], late["reason"]
    rows = wait_for(lambda: _api(ward, "/api/alarms", bed_id="bed-late", tier="technical"), 60,
                    what="a technical alarm for the missing camera")
    assert "offline" in rows[0]["reason"]
    assert _times(ward, "bed-late") == []
    ward["late_offline_at"] = time.time()


def test_corrupt_stream_is_read_then_ends_offline(ward):
    """Megamind_bugy.avi: OpenCV decodes what it can; the non-looping file then ends -> offline."""
    beds = wait_for(lambda: (lambda b: b if b["bed-bug"]["state"] == "offline" and "ended" in (b["bed-bug"]["reason"] or "")
                             else None)(_beds(ward)), 120, what="bed-bug: stream ended")
    assert beds["bed-bug"]["reason"] == "stream ended"
    mets = httpx.get(ward["url"] + "/metrics", auth=V, timeout=15).text
    frames = [ln for ln in mets.splitlines() if ln.startswith('ward_frames_in_total{bed="bed-bug"}')]
    assert frames and float(frames[0].split()[-1]) > 0  # frames were decoded before the end
    for b in SIM_BEDS:  # the others keep scoring
        assert beds[b]["state"] in ("online", "degraded"), beds[b]


def test_malformed_requests_through_serve(ward):
    """The same request checks as test_bad_input.py, through Ray Serve's HTTP proxy."""
    url = ward["url"]
    assert httpx.get(url + "/api/beds", timeout=15).status_code == 401
    assert httpx.post(url + "/api/alarms/1/ack", json={"verdict": "true"}, auth=V, timeout=15).status_code == 403
    big = b'{"verdict": "true", "note": "' + b"x" * (100 * 1024) + b'"}'
    r = httpx.post(url + "/api/alarms/1/ack", content=big, auth=("nurse1", "nurse-pass"),
                   headers={"content-type": "application/json"}, timeout=15)
    assert r.status_code == 413
    evil = "bed-1' OR '1'='1"
    assert httpx.get(f"{url}/api/beds/{evil}/probabilities", auth=V, timeout=15).status_code == 404
    r = httpx.get(url + "/api/alarms", params={"limit": "lots"}, auth=V, timeout=15)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = httpx.post(url + "/api/alarms/99999999999999999999/ack", json={"verdict": "true"},
                   auth=("nurse1", "nurse-pass"), timeout=15)
    assert r.status_code == 422


def test_database_outage_spills_and_replays_everything(ward):
    """SQLite held under an exclusive lock (unwritable) for 30 s: rows spill to disk, then replay."""
    before_errors = _metric(ward, "ward_flush_errors_total")
    conn = sqlite3.connect(ward["db"], timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    t_lock = time.time()
    try:
        peak_pending = wait_for(lambda: _metric(ward, "ward_spill_pending_rows") or None, OUTAGE_S,
                                what="samples spilled while the database is locked")
        time.sleep(max(0.0, OUTAGE_S - (time.time() - t_lock)))
        beds = _beds(ward)
        assert all(beds[b]["state"] in ("online", "degraded") for b in SIM_BEDS)  # the ward kept watching
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    t_unlock = time.time()
    assert peak_pending > 0
    flush_errors = _metric(ward, "ward_flush_errors_total")
    assert flush_errors > before_errors, f"no failed flush counted in the outage ({before_errors} -> {flush_errors})"
    wait_for(lambda: _metric(ward, "ward_spill_pending_rows") == 0, LIMIT_FACTOR * RECOVERY_S + 30,
             what="the spill replayed")
    record_recovery(ward, "database outage: spill replayed after unlock", time.time() - t_unlock, RECOVERY_S)
    for bed in SIM_BEDS:
        # continuity: the samples captured during the outage are in the database, without a hole
        ts = [t for t in _times(ward, bed, t_lock - 10) if t_lock - 5 <= t <= t_unlock + 5]
        assert len(ts) >= OUTAGE_S / 4, f"{bed}: only {len(ts)} samples across a {OUTAGE_S:g} s outage"
        check_holes(ward, bed, ts, "across the outage")
        # nothing lost: every sample the coordinator accepted is stored (it counts spilled rows too)
        a = _beds(ward)[bed]["samples_stored"]
        n = len(_times(ward, bed))
        b = _beds(ward)[bed]["samples_stored"]
        assert a <= n <= b + 2, f"{bed}: coordinator stored {a}..{b} samples, database holds {n}"
    _assert_no_duplicates(ward)


def test_kill_camera_actor_process(ward):
    """Both camera actors' processes are killed (the GCS table does not say which one reads bed-1)."""
    procs = _alive("CameraActor")
    assert len(procs) == 2  # bed-1 + bed-2, bed-bug + bed-late (beds_per_actor=2)
    t = time.time()
    for _, pid in procs:
        os.kill(pid, signal.SIGKILL)
    record_recovery(ward, "camera actors", _scores_after(ward, SIM_BEDS, t), RECOVERY_S)
    assert not {p for _, p in procs} & {p for _, p in _alive("CameraActor")}  # new processes, not survivors
    _assert_no_duplicates(ward)


@pytest.mark.parametrize("deployment", ["Pose", "VSViG"])
def test_kill_model_replica_process(ward, deployment):
    pid, t = _kill(f"ServeReplica:ward:{deployment}")
    record_recovery(ward, f"{deployment} replica", _scores_after(ward, SIM_BEDS, t), RECOVERY_S)
    wait_for(lambda: any(p != pid for _, p in _alive(f"ServeReplica:ward:{deployment}")), 30,
             what=f"a new {deployment} replica")
    _assert_no_duplicates(ward)


def test_kill_coordinator_keeps_alarm_and_data(ward):
    """The coordinator holds the rule state; it recovers it from SQL and adopts the open alarm.

    bed-1's rule alarms on any model output and ends an episode only after a 60 s gap in its scores,
    so an open alarm exists before the kill (if an earlier fault's gap ended one, the next opens after
    the 30 s refractory period: waited for here) and the adoption is always checked."""
    def open_alarms() -> list[dict]:
        return [a for a in _api(ward, "/api/alarms", bed_id="bed-1", tier="alarm") if a["end"] is None]

    active_before = wait_for(open_alarms, 180, what="an open (stored, not ended) alarm on bed-1")
    assert len(active_before) == 1, f"bed-1 has {len(active_before)} open alarms: {active_before}"
    alarms_before = _api(ward, "/api/alarms", bed_id="bed-1", tier="alarm")
    pid, t = _kill("ServeReplica:ward:Coordinator")
    dt = _scores_after(ward, SIM_BEDS, t)
    record_recovery(ward, "coordinator", dt, RECOVERY_S)
    beds = wait_for(lambda: (lambda b: b if b["bed-1"]["alarm_active"] else None)(_beds(ward)), 30,
                    what="bed-1's alarm active again after the restart")
    after = _api(ward, "/api/alarms", bed_id="bed-1", tier="alarm")
    # the open alarm was adopted, not duplicated
    assert beds["bed-1"]["alarm_id"] == active_before[0]["id"], (active_before, beds["bed-1"])
    assert len(after) == len(alarms_before), (alarms_before, after)
    assert [a["id"] for a in after if a["end"] is None] == [active_before[0]["id"]], after
    # the samples the dead coordinator had not flushed yet (<= flush_interval_s) and the clips pushed
    # while it was down are lost: the hole is bounded by the recovery time
    ts = [x for x in _times(ward, "bed-1", t - 10) if t - 5 <= x <= t + dt + 5]
    assert max(b - a for a, b in zip(ts, ts[1:])) <= dt + 5
    _assert_no_duplicates(ward)


def test_camera_that_appears_after_the_faults_scores_and_alarms(ward):
    """bed-late's camera appears only now, after every fault: it comes online, scores, and its
    (stuck-high model) alarm is raised and stored, with a start after the last fault."""
    t_appear = time.time()
    ward["late"].parent.mkdir(parents=True, exist_ok=True)
    tmp = ward["late"].with_suffix(".part")
    shutil.copy(LATE_SOURCE_VIDEO, tmp)
    tmp.rename(ward["late"])  # appears atomically
    wait_for(lambda: len(_times(ward, "bed-late", t_appear)) >= 3, 180, what="bed-late scoring once its file exists")
    record_recovery(ward, "late camera: first 3 samples", time.time() - t_appear)
    rows = wait_for(lambda: [a for a in _api(ward, "/api/alarms", bed_id="bed-late", tier="alarm")
                             if datetime.fromisoformat(a["start"]).timestamp() > t_appear - 1], 120,
                    what="an alarm on bed-late after it came online")
    assert rows[0]["peak"] > SENSITIVE["alarm_threshold"]
    beds = _beds(ward)
    assert beds["bed-late"]["state"] in ("online", "degraded")
    assert beds["bed-late"]["technical_alarm"] is False  # the offline alarm closed when the camera came back
    assert all(beds[b]["state"] in ("online", "degraded") for b in SIM_BEDS)
    assert _api(ward, "/api/alarms", bed_id="bed-2", tier="alarm") == []  # default rule: never fired
    # the offline technical alarm of bed-late is closed in the database too, not only in memory
    tech = wait_for(lambda: (lambda rows: rows if rows and all(r["end"] for r in rows) else None)(
        _api(ward, "/api/alarms", bed_id="bed-late", tier="technical")), 30, what="bed-late's technical alarm closed")
    assert all(datetime.fromisoformat(r["end"]).timestamp() >= t_appear - 1 for r in tech)
