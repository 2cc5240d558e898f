"""From a simulated tonic-clonic seizure to an acknowledged alarm, with the SHIPPED weights and rule.

A small real Ray ward runs models/ward-vsvig-light.pt and models/ward-pose-small.pt (checked against
models/SHA256SUMS) with the decision rule and clip stride of serve_configs/ward.yaml, on two simulated
640x360 beds (the shipped config's frame size):

- ``bed-sz``: seed 8, a tonic-clonic seizure with EEG onset 25 s into the stream, 6 fps as shipped,
  keypoints from the simulator (``keypoints: simulator``; the shipped config poses every bed);
- ``bed-q``: seed 12, no seizure, keypoints from the shipped pose model through the Pose deployment
  (input height 256, as shipped), sampled at 3 fps instead of 6: at 6 fps the pose model (0.2-0.5 s a
  frame on 1 busy core) fell behind, and with a busy extra core posed frames came more than a second
  apart, so the bed never filled a clip. Lowering the pose input height instead is no option: at 160
  px the shipped pose keypoints jitter enough that VSViG scores this calm patient 0.3-1.0 (offline),
  while at 256 px and 3 or 6 fps it scores 0.06.

The test asserts that an alarm is raised and stored for bed-sz after the seizure's onset (minus a small
margin) and within a generous bound after it, that the model was quiet before the onset, that bed-q
scores clips and raises no alarm, and that a clinician's acknowledgement through the API is stored
with its verdict, user and an audit row.

Honest scope. This tests the path with the real weights, not clinical sensitivity. The offline figures
below were measured with the VSViG weights and rule shipped before 2026-12-01 (p_floor 0.8, threshold
0.95) and were not re-measured with the later ones (trained on pose-model clips; since session 11 a
weight average with p_floor 0.4, threshold 0.85, min_duration 0 s; since session 13 a fine-tune of it on
the new pose model's keypoints with p_floor 0.2, threshold 0.85, min_duration 10 s), with which this test
passed too;
the bounds asserted are wide enough for each:

- Seed and onset are chosen. Offline, through the ward's own BedPipeline + VSViG + rule
  (simulator keypoints, every frame), seed 8 alarms 13-15 s after EEG onset (at 20 s or 25 s) in
  each of 8 variations of frame phase, clip grid and 10-30 % dropped frames. With onset 20 s, seeds
  4, 10, 11 and 12 alarm 17-22 s after onset, seeds 1 and 7 only after 70-85 s, seed 5 not within
  130 s. In the ward (4 runs on 2 shared cores, load average 12-27) it alarmed 13-15 s after onset.
- The seizure bed uses simulator keypoints, not the pose model, because the shipped pose model does
  not carry this seizure to the shipped rule: offline, with pose keypoints, none of seeds 1, 2, 3, 5
  and 11 raised an alarm (VSViG's p peaked at 0.19-0.95 and never stayed near 1, which the rule's
  p_floor 0.8 / alarm_threshold 0.95 need). The pose model keeps the resting body within ~5 px but
  loses the arms in the clinical phase. The shipped pose weights still run here, on the quiet bed.
- Both beds are calm patients (``auto=0``: no turning over, caregivers or lights off), so "no alarm
  on the quiet bed" is not a false-alarm rate.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from support.serve import SHIPPED_SIZE, free_port, shipped_settings, shipped_ward_args, sim_bed, wait_for

pytestmark = pytest.mark.ray

SEIZURE_BED, QUIET_BED = "bed-sz", "bed-q"
SEIZURE_SEED, QUIET_SEED = 8, 12
QUIET_FPS = 3.0           # half the shipped 6 fps: the pose path then keeps up on 2 overloaded cores
ONSET_S = 25.0            # EEG onset, simulator time from the start of the stream
SOURCE_FPS = 12.0         # sim_bed's stream rate: the reader counts these frames
MARGIN_S = 5.0            # the onset estimate may be a little late (status reports are up to ~1 s old)
LATENCY_BOUND_S = 60.0    # offline latency of this seed: 13-15 s; the clinical phase lasts ~55 s
ALARM_WAIT_S = 240.0      # ward start (30-60 s on 2 busy cores) + onset + latency, generously
QUIET_MIN_SAMPLES = 10    # 10 clips of the quiet bed (one a second once its first 10 s clip is full)
QUIET_WAIT_S = 300.0     # generous: with both cores busy with other work, pose ran at 0.8 fps (CI, session 12)
V, N = ("viewer1", "viewer-pass"), ("nurse1", "nurse-pass")


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    import ray
    from ray import serve

    from ward.serve.app import build_app
    from ward.store import Store

    tmp = tmp_path_factory.mktemp("shipped")
    beds = [sim_bed(SEIZURE_BED, SEIZURE_SEED, seizure_at=ONSET_S, size=SHIPPED_SIZE, keypoints="simulator"),
            sim_bed(QUIET_BED, QUIET_SEED, fps=QUIET_FPS, size=SHIPPED_SIZE, keypoints="pose")]
    # a reader that sees no frame for no_frame_timeout_s reconnects, and a reconnected simulator starts
    # its scenario again at 0: on 2 overloaded cores the default 5 s was seen to expire once
    args = shipped_ward_args(tmp, beds, watchdog={"no_frame_timeout_s": 30.0, "backoff_initial_s": 0.5,
                                                  "backoff_max_s": 2.0})
    store = Store(args["database"]["url"])
    store.create_user("viewer1", "viewer-pass")
    store.create_user("nurse1", "nurse-pass", role="clinician")
    port = free_port()
    # address="local": a new cluster of our own, even while another session's `ray start --head` is
    # listed in /tmp/ray/ray_current_cluster (plain ray.init() would try to join that one)
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        t_start = datetime.now(timezone.utc)
        serve.run(build_app(args), name="ward", route_prefix="/")
        yield {"url": f"http://127.0.0.1:{port}", "store": store, "t_start": t_start, "args": args}
    finally:
        serve.shutdown()
        ray.shutdown()
        store.close()


def _get(ward, path, auth=V, **params):
    r = httpx.get(ward["url"] + path, auth=auth, params=params, timeout=15)
    r.raise_for_status()
    return r


def _bed_counters(ward, bed: str) -> dict[str, float]:
    """The bed's counters from /metrics (``ward_<name>_total{bed="..."} value``), read as a viewer."""
    text = _get(ward, "/metrics").text
    pat = re.compile(rf'^ward_(\w+)_total\{{bed="{re.escape(bed)}"\}} (\S+)$', re.M)
    return {name: float(v) for name, v in pat.findall(text)}


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _diagnostics(ward) -> str:
    try:
        beds = _get(ward, "/api/beds").json()
    except Exception as exc:  # noqa: BLE001 - only for the failure message
        return f"(no bed snapshot: {exc})"
    keys = ("bed_id", "state", "reason", "fps", "camera_fps", "clips_scored", "samples_stored", "probability",
            "accumulator", "alarm_active")
    return "; ".join(str({k: b.get(k) for k in keys}) for b in beds)


def _wait_for_alarm(ward) -> dict:
    def alarm():
        return _get(ward, "/api/alarms", bed_id=SEIZURE_BED, tier="alarm").json() or None

    try:
        return wait_for(alarm, ALARM_WAIT_S, interval=1.0, what=f"an alarm on {SEIZURE_BED}")[-1]  # oldest
    except AssertionError as exc:
        raise AssertionError(f"{exc}; beds: {_diagnostics(ward)}") from None


def _stream_start(ward) -> datetime:
    """When the seizure bed's simulated stream began (its simulator time 0), from the frames its reader
    has counted: now - frames_in / 12 fps. Counters lag by up to a status period, so this errs late.
    A reconnect would restart the simulator at 0 and void the estimate, so there must be none."""
    counters = _bed_counters(ward, SEIZURE_BED)
    now = datetime.now(timezone.utc)
    assert counters.get("camera_reconnects") == 0, (counters, _diagnostics(ward),
                                                    ward["store"].health_events(bed=SEIZURE_BED))
    assert counters.get("frames_in", 0) > ONSET_S * SOURCE_FPS, counters  # the stream is past the onset
    return now - timedelta(seconds=counters["frames_in"] / SOURCE_FPS)


def _check_alarm_follows_onset(ward, alarm, onset: datetime, quiet_below: float) -> list[float]:
    """The alarm starts within [onset - margin, onset + bound]; stored samples before the onset are below
    ``quiet_below``. Returns those samples' probabilities."""
    start = _utc(alarm.start)
    assert alarm.tier == "alarm" and alarm.peak >= quiet_below, alarm
    assert onset - timedelta(seconds=MARGIN_S) <= start <= onset + timedelta(seconds=LATENCY_BOUND_S), (
        f"alarm started {(start - onset).total_seconds():+.1f} s from the estimated EEG onset {onset.isoformat()}")
    print(f"alarm {alarm.id} started {(start - onset).total_seconds():+.1f} s after the estimated EEG onset, "
          f"{(start - ward['t_start']).total_seconds():.1f} s after serve.run; peak {alarm.peak:.3f}")
    # On 2 overloaded cores the VSViG replica can come up only after the onset (seen once at load
    # average 30 with a busy core), leaving no sample before it; the non-empty check that the model is
    # not stuck high is the quiet bed's.
    history = ward["store"].history(SEIZURE_BED, ward["t_start"] - timedelta(seconds=5), resolution="1s")
    before = [h.p_max for h in history if _utc(h.t) < onset - timedelta(seconds=MARGIN_S)]
    assert all(p < quiet_below for p in before), (before, onset)
    return before


def _acknowledge_and_check(ward, alarm_id: int) -> None:
    """A clinician acknowledges through the API; the verdict, the user and an audit row are stored."""
    store = ward["store"]
    t_ack = datetime.now(timezone.utc) - timedelta(seconds=1)
    r = httpx.post(f"{ward['url']}/api/alarms/{alarm_id}/ack", json={"verdict": "true", "note": "tonic-clonic seen"},
                   auth=N, timeout=15)
    assert r.status_code == 200 and r.json()["acknowledged"] is True and r.json()["verdict"] == "true", r.text
    acked = store.get_alarm(alarm_id)
    assert acked.acknowledged is True and acked.verdict == "true", acked
    events = store.ack_events(alarm_id)
    assert [(e.username, e.verdict, e.note, e.source) for e in events] == [("nurse1", "true", "tonic-clonic seen", "api")]
    audit = [a for a in store.audit_log(since=t_ack, user="nurse1") if a.action == "acknowledge"]
    assert len(audit) == 1 and audit[0].source == "api", audit
    assert audit[0].detail["alarm_id"] == alarm_id and audit[0].detail["verdict"] == "true", audit
    listed = _get(ward, "/api/alarms", bed_id=SEIZURE_BED, tier="alarm").json()
    assert [(a["id"], a["verdict"], a["acknowledged"]) for a in listed] == [(alarm_id, "true", True)], listed


def _quiet_bed_samples(ward) -> list:
    """The quiet bed's stored samples, once there are QUIET_MIN_SAMPLES (its Pose replica may start late
    on busy cores: wait for its clips rather than judge an empty stream)."""
    def enough():
        rows = ward["store"].history(QUIET_BED, ward["t_start"] - timedelta(seconds=5), resolution="1s")
        return rows if len(rows) >= QUIET_MIN_SAMPLES else None

    try:
        return wait_for(enough, QUIET_WAIT_S, interval=1.0, what=f"{QUIET_MIN_SAMPLES} samples of {QUIET_BED}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; beds: {_diagnostics(ward)}") from None


def test_seizure_raises_alarm_that_a_clinician_acknowledges(ward):
    store = ward["store"]
    # "quiet" = p below the shipped review tier's threshold (not even flagged for review). Not p_floor: the
    # session-13 rule's floor (0.2) lies below a calm patient's typical p (~0.24), whose evidence the
    # rule's smoothing and 10 s minimum duration keep far from the alarm threshold.
    quiet_below = shipped_settings()["rules"]["review_threshold"]
    listed = _wait_for_alarm(ward)
    onset = _stream_start(ward) + timedelta(seconds=ONSET_S)

    # raised and stored once, for the seizure, after its onset
    assert [a.id for a in store.list_alarms(bed=SEIZURE_BED, tier="alarm")] == [listed["id"]], listed
    before = _check_alarm_follows_onset(ward, store.get_alarm(listed["id"]), onset, quiet_below)

    _acknowledge_and_check(ward, listed["id"])

    # the quiet bed, through the shipped pose model, scored clips, all low, and raised no alarm
    quiet = [h.p_max for h in _quiet_bed_samples(ward)]
    assert store.list_alarms(bed=QUIET_BED, tier="alarm") == [], quiet
    assert max(quiet) < quiet_below, quiet
    print(f"quiet bed: {len(quiet)} samples, max p {max(quiet):.3f}; seizure bed before onset: {len(before)} "
          f"samples, max p {max(before, default=float('nan')):.3f}; beds: {_diagnostics(ward)}")
