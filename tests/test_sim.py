"""Simulator: determinism, labels, URI parsing, every behaviour/seizure renders sensibly, motion energy."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from ward.sim.behaviours import BEHAVIOURS, SCENE_EVENTS
from ward.sim.labels import clip_label, seizure_target, target
from ward.sim.render import SimCamera, open_capture
from ward.sim.scenario import (BehaviourSpec, EventSpec, Scenario, SeizureSpec, load_scenario, parse_sim_uri,
                               random_scenario)
from ward.sim.seizures import SEIZURE_TYPES

SMALL = dict(width=320, height=180, fps=10.0)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_same_frames_and_keypoints_and_different_seed_differs():
    def run(seed: int) -> str:
        sc = random_scenario(seed, 120, n_seizures=1, **SMALL)
        cam = SimCamera(sc)
        frames = [cam.frame(i) for i in (0, 333, 700, 1199)]
        return _digest(*[f[0] for f in frames], *[f[1] for f in frames], cam.track(0, None, 7)["kpts"])

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_frame_access_order_does_not_matter():
    sc = random_scenario(2, 60, **SMALL)
    a = SimCamera(sc)
    b = SimCamera(sc)
    ka = [a.keypoints(i) for i in (590, 10, 300)]
    kb = [b.keypoints(i) for i in (10, 300, 590)]
    np.testing.assert_array_equal(ka[0], kb[2])
    np.testing.assert_array_equal(ka[1], kb[0])
    fa, fb = a.frame(300)[0], b.frame(300)[0]
    np.testing.assert_array_equal(fa, fb)
    tr = a.track(0, 600)
    np.testing.assert_array_equal(tr["kpts"][300], a.keypoints(300))


def test_label_formula_values():
    te, tc, tx = 100.0, 112.0, 150.0
    t = np.array([0, 99.9, 100, 104, 106, 111.999, 112, 149.9, 150, 152.5, 155, 500])
    p = seizure_target(t, te, tc, tx)
    tau = (tc - te) / 3
    expect_mid = (1 - np.exp(-4 / tau)) / (1 - np.exp(-12 / tau))
    assert p[0] == 0 and p[1] == 0 and p[2] == 0
    assert p[3] == pytest.approx(expect_mid) and p[3] == pytest.approx(0.6652, abs=1e-3)
    assert p[4] == pytest.approx(0.8176, abs=1e-3)
    assert p[5] == pytest.approx(1.0, abs=1e-3)
    assert np.all(p[6:8] == 1)
    assert p[8] == pytest.approx(1.0) and p[9] == pytest.approx(0.5) and p[10] == 0 and p[11] == 0
    assert np.all(np.diff(p[:8]) >= 0)   # monotone rise


def test_label_max_over_seizures_and_clip_label_uses_last_frame():
    class S:
        def __init__(self, e, c, x):
            self.eeg_onset, self.clinical_onset, self.end = e, c, x

    sz = [S(10, 20, 30), S(40, 45, 60)]
    assert target(25.0, sz) == 1.0 and target(35.0, sz) == 0.0 and target(50, sz) == 1.0
    frames = np.arange(30) / 6.0 + 5.0          # ends at 9.83 s, before EEG onset
    assert clip_label(frames, sz) == 0.0
    assert clip_label(frames + 15.0, sz) == 1.0     # ends at 24.8 s, clinical
    with pytest.raises(ValueError, match="eeg_onset <= clinical_onset <= end"):
        seizure_target(1.0, 10, 5, 20)


def test_camera_labels_follow_the_scenario_times():
    sc = Scenario(seed=1, duration_s=90, seizures=[SeizureSpec(type="tonic", eeg_onset_s=20, clinical_onset_s=30,
                                                               end_s=50, post_ictal_s=20)], **SMALL)
    cam = SimCamera(sc)
    tr = cam.track()
    t = tr["t"]
    np.testing.assert_allclose(tr["target"], seizure_target(t, 20, 30, 50))
    assert set(tr["phase"][(t >= 30) & (t < 50)]) == {"clinical"}
    assert set(tr["phase"][(t >= 20) & (t < 30)]) == {"pre_clinical"}
    assert set(tr["phase"][(t >= 50) & (t < 70)]) == {"post_ictal"}
    assert set(tr["phase"][t < 20]) == {"none"}
    assert cam.info(400)["seizure_type"] == "tonic" and cam.info(10)["seizure_type"] == "none"


@pytest.mark.parametrize("view", ["ceiling", "bed_end"])
def test_every_behaviour_event_and_seizure_renders_with_visible_keypoints_in_frame(view):
    beh = [BehaviourSpec(kind=k, start_s=5 + 20 * i, duration_s=15) for i, k in enumerate(BEHAVIOURS)]
    t0 = 5 + 20 * len(BEHAVIOURS)
    ev = [EventSpec(kind=k, start_s=5 + 10 * i, duration_s=8) for i, k in enumerate(SCENE_EVENTS)]
    sz = [SeizureSpec(type=k, eeg_onset_s=t0 + 60 * i, clinical_onset_s=t0 + 60 * i + 5, end_s=t0 + 60 * i + 30,
                      post_ictal_s=20) for i, k in enumerate(SEIZURE_TYPES)]
    sc = Scenario(seed=3, duration_s=t0 + 60 * len(SEIZURE_TYPES), view=view, behaviours=beh, events=ev,
                  seizures=sz, **SMALL)
    cam = SimCamera(sc)
    tr = cam.track()
    k = tr["kpts"]
    vis = k[..., 2] > 0
    assert vis.any(-1).all(), "the patient must always have visible joints"
    x, y = k[..., 0][vis], k[..., 1][vis]
    assert (x >= 0).all() and (x <= sc.width - 1).all() and (y >= 0).all() and (y <= sc.height - 1).all()
    seen = set(tr["behaviour"])
    assert set(BEHAVIOURS) <= seen and {"sleep", "seizure", "post_ictal"} <= seen
    assert set(tr["seizure_type"]) == set(SEIZURE_TYPES) | {"none"}
    # the blanket hides the legs most of the time; the face is visible when sleeping supine
    assert vis[:, 10].mean() < 0.5
    # render one frame inside every behaviour and seizure, and every scene event
    idx = [int((b.start_s + 7) * sc.fps) for b in beh] + [int((s.clinical_onset_s + 10) * sc.fps) for s in sc.seizures]
    idx += [int((e.start_s + 4) * sc.fps) for e in ev]
    bg = cam.background()
    for i in idx:
        img, kp, info = cam.frame(i)
        assert img.shape == (sc.height, sc.width, 3) and img.dtype == np.uint8
        assert np.abs(img.astype(int) - bg).mean() > 2, f"frame {i} ({info['behaviour']}) looks like the background"
        np.testing.assert_array_equal(kp, k[i])
    lights = cam.frame(int((ev[1].start_s + 4) * sc.fps))[0]
    assert np.abs(lights[..., 0].astype(int) - lights[..., 2]).mean() < 1, "lights off must give a grey IR image"
    care = cam.info(int((ev[0].start_s + 4) * sc.fps))
    assert "caregiver" in care["events"] and len(care["others"]) == 1 and care["others"][0].shape == (18, 3)


def _energy(k: np.ndarray, fps: float) -> float:
    """Mean squared joint speed (px/s)^2 over all 18 joints (visible or not: ground truth motion)."""
    v = np.diff(k[..., :2], axis=0) * fps
    return float((v ** 2).sum(-1).mean())


def test_seizures_move_more_than_sleep_but_some_behaviours_move_a_lot_too():
    fps = 25.0
    beh = [BehaviourSpec(kind=k, start_s=10 + 60 * i, duration_s=40, side="right")
           for i, k in enumerate(("shivering", "restless_legs", "turning_over"))]
    sc = Scenario(seed=9, duration_s=200, behaviours=beh, width=640, height=360, fps=fps,
                  seizures=[SeizureSpec(type="tonic_clonic", eeg_onset_s=190, clinical_onset_s=195, end_s=199)])
    sc2 = Scenario(seed=9, duration_s=120, width=640, height=360, fps=fps,
                   seizures=[SeizureSpec(type="tonic_clonic", eeg_onset_s=20, clinical_onset_s=30, end_s=110)])
    tr, tr2 = SimCamera(sc).track(), SimCamera(sc2).track()
    t = tr["t"]
    sleep = _energy(tr["kpts"][(t > 1) & (t < 9)], fps)
    clinical = _energy(tr2["kpts"][(tr2["t"] > 50) & (tr2["t"] < 100)], fps)
    assert clinical > 50 * sleep
    for b in beh:
        m = (t > b.start_s + 1) & (t < b.start_s + b.duration_s - 1)
        assert _energy(tr["kpts"][m], fps) > 10 * sleep, b.kind


def test_uri_parsing_valid():
    sc = parse_sim_uri("sim://?seed=3&duration=600&seizure=tonic_clonic@120&width=640&height=360&fps=6")
    assert (sc.seed, sc.duration_s, sc.width, sc.height, sc.fps) == (3, 600, 640, 360, 6)
    assert len(sc.seizures) == 1 and sc.seizures[0].type == "tonic_clonic" and sc.seizures[0].eeg_onset_s == 120
    gap = sc.seizures[0].clinical_onset_s - 120
    assert 3 <= gap <= 30
    assert len(sc.behaviours) > 0                    # auto schedule
    assert parse_sim_uri("sim://?seed=3&duration=600&seizure=tonic_clonic@120") == parse_sim_uri(
        "sim://?seed=3&duration=600&seizure=tonic_clonic@120")
    sc2 = parse_sim_uri("sim://?seed=1&seizure=focal_clonic@60:12:40&auto=0&behaviour=shivering@5+20"
                        "&event=lights_off@0+30&view=bed_end&loop=1")
    s = sc2.seizures[0]
    assert (s.eeg_onset_s, s.clinical_onset_s, s.end_s) == (60, 72, 112)
    assert [b.kind for b in sc2.behaviours] == ["shivering"] and sc2.events[0].kind == "lights_off"
    assert sc2.view == "bed_end" and sc2.loop
    assert parse_sim_uri("sim://?seizures=0&auto=0").seizures == []
    assert len(parse_sim_uri("sim://?seed=2&seizures=3&duration=1800").seizures) == 3


@pytest.mark.parametrize("uri, msg", [
    ("rtsp://x", "not a simulator URI"),
    ("sim://?sede=3", "unknown key"),
    ("sim://?seed=abc", "seed must be int"),
    ("sim://?seizure=grand_mal@10", "unknown seizure type"),
    ("sim://?seizure=tonic@ten", "seizure time must be a number"),
    ("sim://?behaviour=shivering@30", "KIND@START\\+DURATION"),
    ("sim://?behaviour=dancing@30+5&auto=0", "invalid scenario"),
    ("sim://?duration=100&seizure=tonic@200", "after the scenario's end"),
    ("sim://?view=side", "invalid scenario"),
    ("sim://no/such/file.yaml", "scenario file not found"),
])
def test_uri_parsing_invalid(uri, msg):
    with pytest.raises(ValueError, match=msg):
        parse_sim_uri(uri)


def test_scenario_file_roundtrip_and_overrides(tmp_path):
    sc = random_scenario(4, 300, seizure_types=["myoclonic"], **SMALL)
    f = tmp_path / "s.json"
    f.write_text(sc.model_dump_json())
    assert load_scenario(f) == sc
    y = tmp_path / "s.yaml"
    y.write_text("seed: 4\nduration_s: 50\nseizures:\n  - type: tonic\n")
    a = parse_sim_uri(f"sim://{y}?fps=6&width=320&height=180")
    assert a.fps == 6 and a.width == 320 and a.seizures[0].eeg_onset_s is not None
    assert a == parse_sim_uri(f"sim://{y}?fps=6&width=320&height=180")
    with pytest.raises(ValueError, match="simple overrides"):
        parse_sim_uri(f"sim://{y}?seizure=tonic")
    with pytest.raises(ValueError, match="extra"):
        load_scenario(_write(tmp_path / "bad.yaml", "seed: 1\ncolour: red\n"))


def _write(p, text):
    p.write_text(text)
    return p


def test_open_capture_behaves_like_videocapture():
    cap = open_capture("sim://?seed=1&duration=1&fps=10&width=160&height=90&seizures=0", realtime=False)
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FPS) == 10
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (90, 160, 3)
        n += 1
    assert n == 10 and cap.last_info["frame"] == 9
    cap.release()
    assert not cap.isOpened() and cap.read() == (False, None)


def test_open_capture_realtime_paces_frames():
    import time

    cap = open_capture("sim://?seed=1&duration=2&fps=20&width=160&height=90&seizures=0", realtime=True)
    t0 = time.monotonic()
    for _ in range(11):
        assert cap.read()[0]
    assert time.monotonic() - t0 >= 0.45     # 10 frame intervals at 20 fps
