"""Seizure semiology with labelled times.

Timeline of one seizure: EEG onset -> subtle signs (head version, hand or facial twitching,
automatisms, growing towards clinical onset) -> clinical onset -> the ictal pattern of its type ->
end -> post-ictal stillness (limbs relax over a few seconds, slow deep breathing, no behaviour).

Types:
- focal_clonic: rhythmic 1.5-4 Hz jerks of one limb (arm or leg), head turned to that side.
- tonic: stiffening with extension and elevation of the limbs, head version, a fine 8-12 Hz vibration.
- tonic_clonic: a tonic phase (15-25 % of the clinical duration), then bilateral clonic jerks whose
  rate slows exponentially from ~5 Hz to ~1 Hz while their amplitude grows.
- hypermotor: large irregular proximal movements: bicycling legs, flailing arms, body rocking.
- myoclonic: brief (~0.15 s) bilateral jerks at irregular intervals (1-3 per second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from ward.sim.body import SI, PoseParams
from ward.sim.motion import Sines, chirp_freq, chirp_phase, clonic_wave, envelope, jerk_train, poisson_times

SEIZURE_TYPES: Final[tuple[str, ...]] = ("focal_clonic", "tonic", "tonic_clonic", "hypermotor", "myoclonic")
SUBTLE_SIGNS: Final[tuple[str, ...]] = ("head_version", "hand_twitch", "facial_twitch", "automatism")

CLINICAL_DURATION: Final[dict[str, tuple[float, float]]] = {
    "focal_clonic": (20, 90), "tonic": (10, 40), "tonic_clonic": (45, 120), "hypermotor": (15, 60),
    "myoclonic": (5, 25),
}
POST_ICTAL: Final[dict[str, tuple[float, float]]] = {
    "focal_clonic": (20, 60), "tonic": (30, 90), "tonic_clonic": (60, 180), "hypermotor": (15, 60),
    "myoclonic": (10, 30),
}
ONSET_GAP: Final[tuple[float, float]] = (3.0, 30.0)
"""EEG onset to clinical onset, s."""
RELAX_S: Final[float] = 3.0
"""Time for the ictal posture to relax back to rest after the end."""

PHASES: Final[tuple[str, ...]] = ("none", "pre_clinical", "clinical", "post_ictal")


@dataclass(frozen=True)
class SeizurePlan:
    """A fully resolved seizure (times in s of scenario time)."""

    type: str
    eeg_onset: float
    clinical_onset: float
    end: float
    post_ictal_s: float
    side: int           # +1 right, -1 left
    amplitude: float
    signs: tuple[str, ...]
    seed: int

    def phase_code(self, t: np.ndarray) -> np.ndarray:
        """Index into PHASES per time."""
        code = np.zeros(t.shape, dtype=np.int8)
        code[(t >= self.eeg_onset) & (t < self.clinical_onset)] = 1
        code[(t >= self.clinical_onset) & (t < self.end)] = 2
        code[(t >= self.end) & (t < self.end + self.post_ictal_s)] = 3
        return code


def _pre(s: int) -> str:
    return "r_" if s > 0 else "l_"


def _subtle(plan: SeizurePlan, t: np.ndarray, rng: np.random.Generator) -> PoseParams:
    """Signs between EEG and clinical onset, amplitude growing from 30 % to 100 %."""
    p = PoseParams.zeros(len(t))
    gap = plan.clinical_onset - plan.eeg_onset
    u = np.clip((t - plan.eeg_onset) / gap, 0, 1)
    live = ((t >= plan.eeg_onset) & (t < plan.end)).astype(float)
    grow = (0.3 + 0.7 * u) * live * plan.amplitude
    s = plan.side
    pre = _pre(s)
    if "head_version" in plan.signs:
        # slow forced turn, held into the clinical phase, released at the end
        p.head_yaw += s * 0.7 * u * u * live * plan.amplitude
        p.d_angle[:, SI["neck"]] += -s * 0.12 * u * live
    if "hand_twitch" in plan.signs:
        on = poisson_times(rng, plan.eeg_onset, plan.end, rng.uniform(1.0, 2.5), 0.15)
        tw = jerk_train(t, on, rng.uniform(0.5, 1.0, len(on)), 0.06)
        p.d_angle[:, SI[pre + "fore"]] += s * 0.18 * tw * grow
        p.d_elev[:, SI[pre + "fore"]] += 0.12 * tw * grow
    if "facial_twitch" in plan.signs:
        on = poisson_times(rng, plan.eeg_onset, plan.end, rng.uniform(2.0, 4.0), 0.1)
        tw = jerk_train(t, on, rng.uniform(0.5, 1.0, len(on)), 0.05)
        p.head_yaw += s * 0.08 * tw * grow
        p.d_elev[:, SI["neck"]] += 0.04 * tw * grow
    if "automatism" in plan.signs:
        fum = Sines(rng, 0.8, 1.6, 3, 3)(t)
        p.d_angle[:, SI[pre + "fore"]] += s * (0.6 + 0.3 * fum[:, 0]) * grow
        p.d_elev[:, SI[pre + "fore"]] += (0.3 + 0.2 * fum[:, 1]) * grow
        p.d_elev[:, SI[pre + "upper"]] += 0.15 * grow
        p.head_yaw += 0.05 * fum[:, 2] * grow     # chewing / lip smacking seen as small head motion
    return p


def _clinical(plan: SeizurePlan, t: np.ndarray, rng: np.random.Generator) -> PoseParams:
    """The ictal pattern; t is absolute time, the pattern lives in [clinical_onset, end + RELAX_S]."""
    p = PoseParams.zeros(len(t))
    d = plan.end - plan.clinical_onset
    tl = t - plan.clinical_onset
    a = plan.amplitude
    s = plan.side
    hold = envelope(tl, d + RELAX_S, RELAX_S) * (tl >= 0)   # posture: ramps in quickly, relaxes after the end
    hold = np.where(tl < RELAX_S, np.clip(tl / 0.8, 0, 1), hold)
    active = ((tl >= 0) & (tl < d)).astype(float)
    sides = (1, -1)

    if plan.type == "focal_clonic":
        limb = "arm" if rng.random() < 0.65 else "leg"
        f0, f1 = rng.uniform(2.5, 4.0), rng.uniform(1.2, 2.0)
        w = clonic_wave(chirp_phase(tl, d, f0, f1)) * active
        pre = _pre(s)
        if limb == "arm":
            p.d_angle[:, SI[pre + "fore"]] += s * (0.35 * hold + 0.6 * w) * a
            p.d_elev[:, SI[pre + "fore"]] += (0.2 * hold + 0.35 * w) * a
            p.d_angle[:, SI[pre + "upper"]] += -s * (0.15 * hold + 0.25 * w) * a
            p.d_elev[:, SI[pre + "upper"]] += 0.25 * w * a
        else:
            p.d_elev[:, SI[pre + "thigh"]] += (0.15 * hold + 0.35 * w) * a
            p.d_elev[:, SI[pre + "shin"]] -= (0.15 * hold + 0.35 * w) * a
            p.d_angle[:, SI[pre + "shin"]] += s * 0.1 * w * a
        p.head_yaw += s * (0.5 * hold + 0.1 * w) * a

    elif plan.type in ("tonic", "tonic_clonic"):
        tonic_d = d if plan.type == "tonic" else d * rng.uniform(0.15, 0.25)
        t_hold = envelope(tl, tonic_d + (RELAX_S if plan.type == "tonic" else 1.5), 0.8) * (tl >= 0)
        vib = Sines(rng, 8.0, 12.0, 3, 4)(t) * (t_hold[:, None] * active[:, None])
        for side in sides:
            pre = _pre(side)
            p.d_elev[:, SI[pre + "upper"]] += (0.9 * t_hold + 0.03 * vib[:, 0]) * a
            p.d_angle[:, SI[pre + "upper"]] += -side * 0.5 * t_hold * a
            p.d_angle[:, SI[pre + "fore"]] += -side * 0.15 * t_hold * a + 0.03 * vib[:, 1] * a
            p.d_elev[:, SI[pre + "thigh"]] += 0.05 * t_hold * a
            p.d_angle[:, SI[pre + "shin"]] += 0.03 * vib[:, 2] * a
        p.d_elev[:, SI["neck"]] -= 0.25 * t_hold * a
        p.head_yaw += s * 0.5 * t_hold * a + 0.03 * vib[:, 3] * a
        if plan.type == "tonic_clonic":
            cd = d - tonic_d
            tc = tl - tonic_d
            on = ((tc >= 0) & (tc < cd)).astype(float)
            f0, f1 = rng.uniform(4.5, 5.5), rng.uniform(0.8, 1.2)
            ph = chirp_phase(tc, cd, f0, f1)
            grow = 0.5 + 0.5 * (f0 - chirp_freq(tc, cd, f0, f1)) / (f0 - f1)   # slower jerks are bigger
            w = clonic_wave(ph, 0.12) * on * grow * a
            flex = envelope(tc, cd + RELAX_S, RELAX_S) * (tc >= 0) * a
            for side in sides:
                pre = _pre(side)
                p.d_angle[:, SI[pre + "fore"]] += side * (0.6 * flex + 0.7 * w)
                p.d_elev[:, SI[pre + "fore"]] += 0.35 * w + 0.2 * flex
                p.d_angle[:, SI[pre + "upper"]] += -side * 0.35 * w
                p.d_elev[:, SI[pre + "upper"]] += 0.4 * w + 0.3 * flex
                p.d_elev[:, SI[pre + "thigh"]] += 0.3 * w
                p.d_elev[:, SI[pre + "shin"]] -= 0.3 * w
            p.d_elev[:, SI["neck"]] += 0.25 * w
            p.d_elev[:, SI["spine"]] += 0.08 * w
            p.head_yaw += s * (0.5 * flex + 0.2 * w)
            p.root[:, 1] += -0.03 * w

    elif plan.type == "hypermotor":
        e = envelope(tl, d, 1.0) * (tl >= 0)
        f_leg = rng.uniform(0.9, 1.6)
        arms = Sines(rng, 0.5, 1.6, 4, 4)(t)
        body = Sines(rng, 0.4, 1.0, 3, 4)(t)
        for side in sides:
            pre = _pre(side)
            cyc = np.sin(2 * np.pi * f_leg * tl + (0 if side > 0 else np.pi))
            p.d_elev[:, SI[pre + "thigh"]] += e * a * (0.45 + 0.45 * cyc)
            p.d_elev[:, SI[pre + "shin"]] -= e * a * (0.45 + 0.45 * np.sin(2 * np.pi * f_leg * tl + (0.8 if side > 0 else np.pi + 0.8)))
            k = 0 if side > 0 else 2
            p.d_angle[:, SI[pre + "upper"]] += -side * e * a * (0.5 + 0.7 * arms[:, k])
            p.d_elev[:, SI[pre + "upper"]] += e * a * (0.5 + 0.5 * arms[:, k + 1])
            p.d_angle[:, SI[pre + "fore"]] += side * e * a * (0.8 + 0.6 * arms[:, k + 1])
        p.root[:, 0] += 0.05 * e * a * body[:, 0]
        p.yaw += 0.15 * e * a * body[:, 1]
        p.d_elev[:, SI["spine"]] += e * a * np.clip(0.15 + 0.2 * body[:, 2], 0, None)
        p.head_yaw += 0.6 * e * a * body[:, 3]

    elif plan.type == "myoclonic":
        on = poisson_times(rng, plan.clinical_onset, plan.end, rng.uniform(1.0, 3.0), 0.2)
        amps = rng.uniform(0.5, 1.0, len(on)) * a
        j = jerk_train(t, on, amps, 0.07)
        legs = rng.random() < 0.4
        for side in sides:
            pre = _pre(side)
            p.d_angle[:, SI[pre + "upper"]] += -side * 0.4 * j
            p.d_elev[:, SI[pre + "upper"]] += 0.45 * j
            p.d_angle[:, SI[pre + "fore"]] += side * 0.5 * j
            if legs:
                p.d_elev[:, SI[pre + "thigh"]] += 0.2 * j
        p.d_elev[:, SI["neck"]] += 0.2 * j
        p.d_elev[:, SI["spine"]] += 0.05 * j
    else:
        raise ValueError(f"unknown seizure type {plan.type!r}: choose one of {', '.join(SEIZURE_TYPES)}")
    return p


def seizure_pose(plan: SeizurePlan, t: np.ndarray) -> PoseParams:
    """Pose deltas of one seizure at absolute times t (N,); zero outside [eeg_onset, end + RELAX_S]."""
    t = np.asarray(t, dtype=float)
    p = PoseParams.zeros(len(t))
    live = (t >= plan.eeg_onset) & (t < plan.end + RELAX_S)
    if not live.any():
        return p
    tt = t[live]
    sub = _subtle(plan, tt, np.random.default_rng([plan.seed, 1]))
    sub += _clinical(plan, tt, np.random.default_rng([plan.seed, 2]))
    return sub.masked_into(live, len(t))


def behaviour_suppression(plans: list[SeizurePlan], t: np.ndarray) -> np.ndarray:
    """(N,) weight in [0, 1] for voluntary behaviour: 0 from clinical onset through the post-ictal phase."""
    w = np.ones(len(t))
    for pl in plans:
        w[(t >= pl.clinical_onset - 0.5) & (t < pl.end + pl.post_ictal_s)] = 0.0
    return w


def breathing_gain(plans: list[SeizurePlan], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(depth gain, rate factor) per time: post-ictal breathing is deep and slow."""
    g = np.ones(len(t))
    r = np.ones(len(t))
    for pl in plans:
        m = (t >= pl.end) & (t < pl.end + pl.post_ictal_s)
        g[m] = 2.5
        r[m] = 0.7
    return g, r
