"""Non-seizure behaviour and scene events, as vectorised functions of time.

Each behaviour maps local times (seconds since its start) to PoseParams deltas with smooth ramps at
both ends. Some are deliberately seizure-like in motion energy (shivering: 8-12 Hz tremor; restless
legs: periodic jerks; scratching: 3-5 Hz rhythm; turning over: large fast displacement), so a motion
detector alone cannot separate them from seizures.

Side convention: side = +1 is the patient's right, -1 the left. On a limb of side s, a positive
"outward" rotation is ``d_angle = -s * a`` (towards the side of the bed) and an elbow/knee "fold" is
``d_angle = +s * a`` (towards the midline).
"""

from __future__ import annotations

from typing import Callable, Final

import numpy as np

from ward.sim.body import JI, NUM_JOINTS, SI, PoseParams
from ward.sim.motion import Sines, envelope, jerk_train, keyframes, poisson_times

BEHAVIOURS: Final[tuple[str, ...]] = (
    "turning_over", "reaching_cup", "scratching", "adjusting_blanket", "sitting_up", "talking",
    "restless_legs", "shivering",
)
"""Scheduled behaviours. Still sleep with breathing is the baseline whenever none is active."""

SCENE_EVENTS: Final[tuple[str, ...]] = ("caregiver", "lights_off", "camera_shake", "compression")

DURATION_RANGE: Final[dict[str, tuple[float, float]]] = {
    "turning_over": (10, 45), "reaching_cup": (8, 16), "scratching": (4, 12), "adjusting_blanket": (5, 10),
    "sitting_up": (15, 60), "talking": (10, 50), "restless_legs": (20, 90), "shivering": (10, 40),
    "caregiver": (15, 60), "lights_off": (60, 600), "camera_shake": (2, 8), "compression": (30, 300),
}


def _p(s: int) -> str:
    return "r_" if s > 0 else "l_"


def breathing(t: np.ndarray, rate_hz: float, depth: float) -> PoseParams:
    """Still sleep: chest rise seen as a small shoulder and arm sway (the baseline, always on)."""
    p = PoseParams.zeros(len(t))
    b = depth * np.sin(2 * np.pi * rate_hz * t)
    p.d_angle[:, SI["r_clav"]] += 0.012 * b
    p.d_angle[:, SI["l_clav"]] -= 0.012 * b
    p.root[:, 1] += 0.003 * b
    p.d_elev[:, SI["spine"]] += 0.01 * b
    return p


def _turning_over(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    rho = envelope(t, dur, rng.uniform(1.8, 3.0)) * k
    fidget = Sines(rng, 0.1, 0.4, 3, 2)(t) * envelope(t, dur, 3.0)[:, None] * 0.05
    top, bot = _p(-s), _p(s)
    p.d_elev[:, SI[top + "clav"]] += 1.1 * rho
    p.d_elev[:, SI[bot + "clav"]] -= 0.5 * rho
    p.d_elev[:, SI[top + "hipseg"]] += 1.0 * rho
    p.d_elev[:, SI[bot + "hipseg"]] -= 0.5 * rho
    p.d_angle[:, SI[top + "upper"]] += s * 1.1 * rho + fidget[:, 0]
    p.d_elev[:, SI[top + "upper"]] += 0.5 * rho
    p.d_angle[:, SI[top + "fore"]] += s * 0.6 * rho
    p.d_angle[:, SI[bot + "upper"]] += s * 0.7 * rho
    p.d_angle[:, SI[bot + "fore"]] += s * 1.2 * rho
    for leg, f in ((top, 1.0), (bot, 0.6)):
        p.d_angle[:, SI[leg + "thigh"]] -= s * 0.55 * f * rho
        p.d_angle[:, SI[leg + "shin"]] += s * 0.9 * f * rho + fidget[:, 1]
    p.root[:, 0] += s * 0.12 * rho
    p.yaw += s * 0.08 * rho
    p.head_yaw += s * 1.2 * rho
    return p


def _arm_keys(p: PoseParams, s: int, vals: np.ndarray) -> None:
    """Channels: upper outward, upper elev, fore fold, fore elev, head yaw (towards s), spine elev."""
    pre = _p(s)
    p.d_angle[:, SI[pre + "upper"]] += -s * vals[:, 0]
    p.d_elev[:, SI[pre + "upper"]] += vals[:, 1]
    p.d_angle[:, SI[pre + "fore"]] += s * vals[:, 2]
    p.d_elev[:, SI[pre + "fore"]] += vals[:, 3]
    p.head_yaw += s * vals[:, 4]
    p.d_elev[:, SI["spine"]] += vals[:, 5]


def _reaching_cup(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    u = np.clip(t / dur, 0, 1)
    times = np.array([0, .15, .28, .36, .52, .66, .78, .88, 1.0])
    vals = np.array([
        [0, 0, 0, 0, 0, 0], [0.9, 0.5, 0.2, 0.1, 0.5, 0.1], [1.3, 0.3, 0.0, 0.0, 0.6, 0.15],
        [1.3, 0.25, 0.05, 0.0, 0.6, 0.15], [0.3, 0.9, 2.3, 0.6, 0.0, 0.35], [0.3, 0.9, 2.4, 0.7, 0.0, 0.35],
        [1.3, 0.3, 0.0, 0.0, 0.5, 0.15], [1.2, 0.3, 0.1, 0.0, 0.4, 0.1], [0, 0, 0, 0, 0, 0]])
    _arm_keys(p, s, keyframes(u, times, vals) * k)
    return p


def _scratching(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    target = rng.integers(3)
    pose = np.array([[0.0, 1.0, 2.5, 0.8, 0.2, 0.05],    # head
                     [-0.2, 0.3, 1.9, 0.3, 0.0, 0.0],    # chest
                     [0.1, 0.1, 0.4, 0.1, 0.0, 0.0]])[target]  # thigh
    env = envelope(t, dur, 0.9)
    _arm_keys(p, s, env[:, None] * pose[None] * k)
    f = rng.uniform(3.0, 5.0)
    scr = np.sin(2 * np.pi * f * t) * envelope(t - 0.9, dur - 1.8, 0.3) * rng.uniform(0.1, 0.18) * k
    p.d_angle[:, SI[_p(s) + "fore"]] += scr
    p.d_elev[:, SI[_p(s) + "fore"]] += 0.4 * scr
    return p


def _adjusting_blanket(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    u = np.clip(t / dur, 0, 1)
    times = np.array([0, .2, .35, .6, .8, 1.0])
    arm = np.array([[0, 0, 0, 0, 0, 0], [0.1, 0.5, 0.3, 0.2, 0.0, 0.3], [0.05, 0.3, 0.2, 0.1, 0.0, 0.35],
                    [0.1, 0.6, 1.4, 0.3, 0.0, 0.2], [0.05, 0.2, 0.8, 0.1, 0.0, 0.05], [0, 0, 0, 0, 0, 0]])
    v = keyframes(u, times, arm) * k
    _arm_keys(p, 1, v)
    _arm_keys(p, -1, v * np.array([1, 1, 1, 1, 0, 0]))
    pull = keyframes(u, times, np.array([[0], [0], [0.05], [0.3], [0.3], [0.0]]))[:, 0]
    p.blanket += pull * k
    return p


def _sitting_up(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    e = envelope(t, dur, rng.uniform(2.5, 4.0)) * k
    look = Sines(rng, 0.1, 0.6, 3, 2)(t) * envelope(t, dur, 4.0)[:, None]
    p.d_elev[:, SI["spine"]] += 1.05 * e
    p.d_elev[:, SI["neck"]] += 1.15 * e + 0.1 * look[:, 1]
    for side in (1, -1):
        pre = _p(side)
        p.d_elev[:, SI[pre + "upper"]] -= 0.9 * e
        p.d_angle[:, SI[pre + "upper"]] += -side * 0.25 * e
        p.d_elev[:, SI[pre + "thigh"]] += 0.35 * e
        p.d_elev[:, SI[pre + "shin"]] -= 0.35 * e
    p.head_yaw += 0.4 * look[:, 0]
    return p


def _talking(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    e = envelope(t, dur, 1.5) * k
    head = Sines(rng, 0.3, 1.2, 4, 2)(t)
    hand = Sines(rng, 0.5, 1.5, 4, 2)(t)
    p.head_yaw += 0.25 * e * head[:, 0]
    p.d_elev[:, SI["neck"]] += e * (0.25 + 0.08 * head[:, 1])
    p.d_elev[:, SI["spine"]] += 0.12 * e
    gest = 0.5 + 0.5 * np.clip(hand[:, 1], -1, 1)
    _arm_keys(p, s, e[:, None] * np.stack([0.2 + 0 * gest, 0.4 * gest, 1.4 * gest + 0.2 * hand[:, 0],
                                           0.6 * gest, 0 * gest, 0 * gest], 1))
    return p


def _restless_legs(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    e = envelope(t, dur, 1.0) * k
    onsets = poisson_times(rng, 0.5, dur - 1.0, rng.uniform(0.25, 0.5), min_gap=1.0)
    jerk = jerk_train(t, onsets, rng.uniform(0.6, 1.0, size=len(onsets)), tau=rng.uniform(0.25, 0.5))
    rub = Sines(rng, 0.6, 1.4, 3, 2)(t)
    both = rng.random() < 0.5
    for side, w in ((s, 1.0), (-s, 1.0 if both else 0.3)):
        pre = _p(side)
        p.d_elev[:, SI[pre + "thigh"]] += e * w * (0.45 * jerk + 0.05 * rub[:, 0])
        p.d_elev[:, SI[pre + "shin"]] -= e * w * (0.45 * jerk)
        p.d_angle[:, SI[pre + "shin"]] += e * w * side * (0.15 * rub[:, 1] + 0.1 * jerk)
    return p


def _shivering(t, dur, s, k, rng) -> PoseParams:
    p = PoseParams.zeros(len(t))
    e = envelope(t, dur, 2.0) * k
    n = p.d_angle.shape[1]
    trem = Sines(rng, 8.0, 12.0, 3, n + 2)(t)
    amp = rng.uniform(0.03, 0.05)
    p.d_angle += e[:, None] * amp * trem[:, :n]
    p.head_yaw += e * 0.6 * amp * trem[:, n]
    p.root[:, 0] += e * 0.003 * trem[:, n + 1]
    hug = envelope(t, dur, 2.0) * k
    for side in (1, -1):
        _arm_keys(p, side, hug[:, None] * np.array([[-0.15, 0.2, 1.8, 0.2, 0.0, 0.0]]))
    return p


_IMPL: Final[dict[str, Callable[..., PoseParams]]] = {
    "turning_over": _turning_over, "reaching_cup": _reaching_cup, "scratching": _scratching,
    "adjusting_blanket": _adjusting_blanket, "sitting_up": _sitting_up, "talking": _talking,
    "restless_legs": _restless_legs, "shivering": _shivering,
}


def behaviour_pose(kind: str, t_local: np.ndarray, duration: float, side: int, intensity: float,
                   seed: int) -> PoseParams:
    """Pose deltas of one behaviour at local times (s since its start); zero outside [0, duration]."""
    if kind not in _IMPL:
        raise ValueError(f"unknown behaviour {kind!r}: choose one of {', '.join(BEHAVIOURS)}")
    return _IMPL[kind](np.asarray(t_local, dtype=float), float(duration), int(side), float(intensity),
                       np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------- caregiver

def caregiver_joints(t_local: np.ndarray, duration: float, side: int, seed: int,
                     bed_len: float = 2.0) -> np.ndarray:
    """3-D joints (N, J, 3) of a caregiver who walks in beside the bed, leans over the patient and leaves.

    Same joint set as the patient (OpenPose 18 + pelvis + head centre); the floor is at z = -0.55.
    """
    rng = np.random.default_rng(seed)
    t = np.asarray(t_local, dtype=float)
    n = len(t)
    walk = min(4.0, duration / 4)
    stand_x = side * rng.uniform(0.75, 0.9)
    stand_y = rng.uniform(0.5, 0.9)
    far_x = side * 3.0
    u_in = np.clip(t / walk, 0, 1)
    u_out = np.clip((t - (duration - walk)) / walk, 0, 1)
    x = far_x + (stand_x - far_x) * (u_in * u_in * (3 - 2 * u_in)) + (far_x - stand_x) * (u_out * u_out * (3 - 2 * u_out))
    y = np.full(n, stand_y) + 0.6 * (1 - u_in) - 0.6 * u_out
    lean = envelope(t - walk, duration - 2 * walk, 1.5) * rng.uniform(0.35, 0.6)
    reach = envelope(t - walk - 1.0, duration - 2 * walk - 2.0, 1.2)
    busy = Sines(rng, 0.3, 1.0, 3, 3)(t)
    facing = np.stack([-side * np.ones(n), np.zeros(n), np.zeros(n)], 1)           # towards the bed
    lateral = np.array([0.0, 1.0, 0.0])[None] * np.ones((n, 1))
    up = np.array([0.0, 0.0, 1.0])
    hip_c = np.stack([x, y, np.full(n, 0.4)], 1)
    torso = 0.52 * (np.cos(lean)[:, None] * up + np.sin(lean)[:, None] * facing)
    neck = hip_c + torso
    head_c = neck + 0.2 * torso / 0.52
    j = np.zeros((n, NUM_JOINTS, 3))
    j[:, JI["pelvis"]] = hip_c
    j[:, JI["neck"]] = neck
    j[:, JI["head_c"]] = head_c
    j[:, JI["nose"]] = head_c + 0.1 * facing
    for name, sgn in (("r_", 1.0), ("l_", -1.0)):
        lat = sgn * lateral * (-side)          # the caregiver's right when facing the bed
        j[:, JI[name + "eye"]] = head_c + 0.08 * facing + 0.035 * lat + 0.03 * up
        j[:, JI[name + "ear"]] = head_c + 0.085 * lat
        sho = neck + 0.2 * lat
        j[:, JI[name + "sho"]] = sho
        target = np.stack([np.full(n, 0.0), np.full(n, stand_y), np.full(n, 0.12)], 1) + 0.15 * lat
        target[:, :2] += 0.08 * busy[:, :2] * sgn
        hang = sho + np.array([0, 0, -0.55]) + 0.08 * lat
        wri = hang + (target - hang) * reach[:, None]
        elb = 0.5 * (sho + wri) + 0.12 * lat - 0.08 * up * (1 - reach[:, None])
        j[:, JI[name + "elb"]] = elb
        j[:, JI[name + "wri"]] = wri
        hip = hip_c + 0.1 * lat
        j[:, JI[name + "hip"]] = hip
        stride = 0.25 * np.sin(2 * np.pi * 0.9 * t + (0 if sgn > 0 else np.pi)) * (u_in < 1) * (u_out == 0) \
            + 0.25 * np.sin(2 * np.pi * 0.9 * t) * (u_out > 0) * sgn
        step = stride[:, None] * np.array([0, 1.0, 0])
        j[:, JI[name + "knee"]] = hip + np.array([0, 0, -0.47]) + 0.5 * step
        j[:, JI[name + "ank"]] = hip + np.array([0, 0, -0.93]) + step
    return j
