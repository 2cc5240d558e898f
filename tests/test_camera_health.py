"""The one camera state machine (ward.camera.health): the reader's, camera actor's and coordinator's rules."""

from __future__ import annotations

from ward.camera.health import POSE_WARMUP_S, STATUS_STALE_S, CameraHealth


def _facts(**kw):
    return {"receiving": True, "offline_reason": "connecting", "fps": 6.0, "warm": True,
            "patient_lost_since": None, **kw}


def test_source_verdicts_and_since_moves_only_on_a_change_of_state():
    h = CameraHealth(6.0, 0.8, 10.0, now=0.0, now_wall=1000.0)
    assert (h.state, h.reason, h.since, h.since_wall) == ("offline", "starting", 0.0, 1000.0)
    assert h.min_fps == 6.0 * 0.8
    assert h.verdict(1.0, **_facts(receiving=False)) == ("offline", "connecting")
    assert h.verdict(1.0, **_facts(fps=3.0)) == ("degraded", "camera delivers 3.0 fps, the model needs >= 4.8")
    assert h.verdict(1.0, **_facts(fps=3.0, warm=False)) == ("online", "receiving frames")
    assert h.verdict(12.0, **_facts(patient_lost_since=1.0)) == ("degraded", "patient not found for 11 s")
    assert h.verdict(5.0, **_facts(patient_lost_since=1.0)) == ("online", "receiving frames")
    assert h.observe(2.0, 1002.0, **_facts()) is True and (h.state, h.since, h.since_wall) == ("online", 2.0, 1002.0)
    assert h.observe(3.0, 1003.0, **_facts()) is False and h.since == 2.0
    assert h.observe(4.0, 1004.0, **_facts(receiving=False, offline_reason="stream ended")) is True
    assert (h.state, h.reason, h.since) == ("offline", "stream ended", 4.0)


def test_pose_rate_silence_and_technical_alarm_rules():
    h = CameraHealth(6.0)
    assert h.pose_verdict("online", POSE_WARMUP_S + 1, 2.0) == (
        "degraded", "pose keeps up with 2.0 fps, the model needs >= 4.8")
    assert h.pose_verdict("online", POSE_WARMUP_S - 1, 2.0) is None   # not warm yet
    assert h.pose_verdict("online", POSE_WARMUP_S + 1, 6.0) is None
    assert h.pose_verdict("offline", 100.0, 0.0) is None                # the camera's own state stands
    assert CameraHealth.silence("online", 100.0, 100.0 + STATUS_STALE_S + 1) == "no status from the camera actor for 16 s"
    assert CameraHealth.silence("online", 100.0, 100.0 + STATUS_STALE_S) is None
    assert CameraHealth.silence("offline", 0.0, 1000.0) is None         # already offline
    assert CameraHealth.offline_too_long("offline", 31.0, 30.0) and not CameraHealth.offline_too_long("offline", 30.0, 30.0)
    assert not CameraHealth.offline_too_long("degraded", 100.0, 30.0)
