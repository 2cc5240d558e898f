"""Patient selection per bed: identity with a nurse in view, gaps, smoothing, missing joints."""

from __future__ import annotations

import numpy as np
import pytest

from ward.core.keypoints import OPENPOSE_INDEX
from ward.vision.patient import OneEuroFilter, PatientSelector

FRAME = (640, 480)
ROI = (0.25, 0.3, 0.85, 0.8)  # normalised -> pixels (160, 144, 544, 384)
FPS = 10.0

# A standing body, height 1, origin at the top of the head, y down; OpenPose-18 order.
_TEMPLATE = np.array([
    [0.00, 0.08], [0.00, 0.18],
    [-0.10, 0.18], [-0.15, 0.33], [-0.17, 0.47],
    [0.10, 0.18], [0.15, 0.33], [0.17, 0.47],
    [-0.06, 0.52], [-0.07, 0.74], [-0.07, 0.96],
    [0.06, 0.52], [0.07, 0.74], [0.07, 0.96],
    [-0.02, 0.06], [0.02, 0.06], [-0.04, 0.07], [0.04, 0.07],
])


def lying(cx: float = 350.0, cy: float = 265.0, size: float = 300.0, score: float = 0.9) -> np.ndarray:
    """Patient lying along the bed (head left), centred at (cx, cy)."""
    body = _TEMPLATE - [0.0, 0.5]
    xy = np.stack([body[:, 1], -body[:, 0]], axis=1) * size + [cx, cy]
    return np.concatenate([xy, np.full((18, 1), score)], axis=1)


def standing(cx: float, top: float = 130.0, size: float = 340.0, score: float = 0.95) -> np.ndarray:
    xy = _TEMPLATE * size + [cx, top]
    return np.concatenate([xy, np.full((18, 1), score)], axis=1)


def roi_overlap(person: np.ndarray) -> float:
    x0, y0, x1, y1 = np.array(ROI) * [*FRAME, *FRAME]
    inside = (person[:, 0] >= x0) & (person[:, 0] <= x1) & (person[:, 1] >= y0) & (person[:, 1] <= y1)
    return float(inside.mean())


def selector(**kw) -> PatientSelector:
    return PatientSelector(ROI, frame_size=FRAME, **kw)


def test_nurse_at_bedside_never_takes_identity() -> None:
    rng = np.random.default_rng(0)
    sel = selector()
    # Nurse walks in from the right, leans to the bed edge, leaves; the patient breathes a little.
    nurse_x = np.concatenate([np.linspace(720, 480, 15), np.full(10, 480), np.linspace(480, 720, 15)])
    # The nurse at her closest has a large part of her joints in the bed region, even above the
    # acquisition threshold, so only continuity keeps the patient.
    assert roi_overlap(standing(480)) >= 0.8
    assert roi_overlap(standing(720)) == 0.0
    undetected = {17, 18}  # the decoder misses the patient while the nurse is at the bed
    for i, nx in enumerate(nurse_x):
        patient = lying(cy=265 + 3 * np.sin(i / 3))
        patient[:, :2] += rng.normal(0, 1.0, (18, 2))
        nurse = standing(nx)
        people = [nurse] if i in undetected else ([nurse, patient] if i % 2 else [patient, nurse])
        out = sel.update(people, i / FPS)
        conf = out[:, 2] > 0
        assert conf.all(), f"frame {i}: patient joints lost"
        err = np.linalg.norm(out[:, :2] - lying()[:, :2], axis=1)
        assert err.max() < 25, f"frame {i}: output moved to someone else (max err {err.max():.1f} px)"
        assert sel.found == (i not in undetected)
        if i in undetected:
            assert np.all(out[:, 2] < 0.9)  # held with decayed confidence, not the nurse's 0.95


def test_nurse_alone_is_not_acquired() -> None:
    sel = selector()
    out = sel.update([standing(600)], 0.0)
    assert not sel.found and not sel.has_identity
    assert np.all(out == 0)
    out = sel.update([standing(600), lying()], 0.1)
    assert sel.found
    np.testing.assert_allclose(out[:, :2], lying()[:, :2], atol=1e-4)


def test_short_gap_holds_with_decaying_confidence() -> None:
    sel = selector(max_gap_frames=4, gap_decay=0.7)
    t = 0.0
    for _ in range(5):
        last = sel.update([lying(score=0.8)], t)
        t += 0.1
    for k in range(1, 5):
        out = sel.update([], t)
        t += 0.1
        assert not sel.found and sel.frames_missing == k and sel.has_identity
        np.testing.assert_allclose(out[:, 2], 0.8 * 0.7 ** k, rtol=1e-5)
        np.testing.assert_allclose(out[:, :2], last[:, :2])
    out = sel.update([lying(score=0.8)], t)
    assert sel.found and sel.frames_missing == 0
    np.testing.assert_allclose(out[:, 2], 0.8, rtol=1e-6)


def test_long_absence_outputs_zeros_then_reacquires() -> None:
    sel = selector(max_gap_frames=3)
    t = 0.0
    for _ in range(4):
        sel.update([lying()], t)
        t += 0.1
    outs = []
    for _ in range(6):  # patient out of bed (e.g. to the bathroom)
        outs.append(sel.update([], t))
        t += 0.1
    assert all(o[:, 2].min() > 0 for o in outs[:3])
    for o in outs[3:]:
        assert np.all(o == 0)
    assert sel.frames_missing == 6 and not sel.has_identity
    # Back in bed at a different place: acquired again, no smoothing across the gap.
    back = lying(cx=300, cy=300)
    out = sel.update([back], t)
    assert sel.found
    np.testing.assert_allclose(out[:, :2], back[:, :2], atol=1e-4)
    np.testing.assert_allclose(out[:, 2], back[:, 2], rtol=1e-6)


def test_missing_joint_held_then_zeroed_then_fresh() -> None:
    wri = OPENPOSE_INDEX["l_wri"]
    sel = selector(max_gap_frames=2, gap_decay=0.5)
    t = 0.0
    for _ in range(3):
        prev = sel.update([lying()], t)
        t += 0.1
    p = lying()
    p[wri] = -1
    confs = []
    for _ in range(4):
        out = sel.update([p], t)
        t += 0.1
        confs.append(out[wri, 2])
        if out[wri, 2] > 0:
            np.testing.assert_allclose(out[wri, :2], prev[wri, :2])  # held where it was last seen
        assert np.all(out[np.arange(18) != wri, 2] == pytest.approx(0.9))
    assert confs[:2] == pytest.approx([0.45, 0.225])
    assert confs[2:] == [0.0, 0.0]
    assert np.all(out[wri] == 0)
    moved = lying()
    moved[wri, :2] += [40.0, 25.0]  # the wrist comes back elsewhere: fresh filter, raw position
    out = sel.update([moved], t)
    np.testing.assert_allclose(out[wri, :2], moved[wri, :2], atol=1e-4)


def test_without_roi_takes_largest_and_keeps_it() -> None:
    sel = PatientSelector()
    small = standing(100, size=150)
    big = lying(size=300)
    sel.update([small, big], 0.0)
    out = sel.update([big, small], 0.1)
    np.testing.assert_allclose(out[:, :2], big[:, :2], atol=1e-3)


def test_one_euro_reduces_jitter_on_static_pose() -> None:
    rng = np.random.default_rng(1)
    sel = selector()
    truth = lying()
    outs = []
    for i in range(150):
        p = truth.copy()
        p[:, :2] += rng.normal(0, 3.0, (18, 2))
        outs.append(sel.update([p], i / 30.0))
    outs = np.array(outs[20:])
    raw_std = 3.0
    out_std = (outs[:, :, :2] - truth[:, :2]).std()
    assert out_std < 0.6 * raw_std, out_std


def test_one_euro_follows_fast_move() -> None:
    t = np.arange(40) / 30.0
    x = np.where(t < 0.3, 100.0, 100.0 + 600.0 * (t - 0.3))  # 600 px/s ramp after 0.3 s
    lags = {}
    for beta in (0.0, 0.05):
        f = OneEuroFilter((1, 2), min_cutoff=1.0, beta=beta)
        out = [f(np.array([[xi, 50.0]]), ti)[0, 0] for xi, ti in zip(x, t)]
        lags[beta] = x[-1] - out[-1]
    assert lags[0.05] < 25, lags
    assert lags[0.05] < 0.25 * lags[0.0], lags


def test_one_euro_mask_and_reset_are_per_element() -> None:
    f = OneEuroFilter((2, 2))
    f(np.zeros((2, 2)), 0.0)
    out = f(np.full((2, 2), 10.0), 0.1, mask=np.array([[True], [False]]))
    assert 0 < out[0, 0] < 10 and out[1, 0] == 0
    f.reset(np.array([[False], [True]]))
    out = f(np.full((2, 2), 10.0), 0.2)
    assert out[1, 0] == 10 and out[0, 0] < 10
    with pytest.raises(ValueError, match="timestamps must increase"):
        f(np.zeros((2, 2)), 0.2)


def test_bad_input_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        PatientSelector(ROI)
    with pytest.raises(ValueError, match="normalised"):
        PatientSelector((160, 144, 544, 384), frame_size=FRAME)
    sel = selector()
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        sel.update([np.zeros((17, 3))], 0.0)
    sel.update([lying()], 1.0)
    with pytest.raises(ValueError, match="time order"):
        sel.update([lying()], 1.0)
    sel.reset()
    sel.update(np.stack([lying()]), 0.5)  # after reset, time may restart; arrays accepted
    assert sel.found


def test_vigorous_limb_motion_keeps_identity() -> None:
    """Convulsive movement (limbs jerking by ~0.15 body size per frame) must not drop the patient."""
    limbs = [OPENPOSE_INDEX[n] for n in ("r_elb", "r_wri", "l_elb", "l_wri", "r_knee", "r_ank", "l_knee", "l_ank")]
    sel = selector()
    for i in range(40):
        p = lying()
        p[limbs, 1] += 45.0 * (-1) ** i  # alternating jerks
        out = sel.update([standing(480), p], i / FPS)
        assert sel.found, f"frame {i}: patient dropped"
        assert np.abs(out[:, 0] - p[:, 0]).max() < 5  # x barely moves: still the patient's joints
