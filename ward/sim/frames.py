"""Still frames sampled from random simulated scenarios, with every person's ground truth.

Pose training (``ward.train.pose``), its held-out accuracy check and the int8 calibration and
accuracy-gate data (``ward.evaluation.calibration``) all draw frames the same way, from different
seed ranges; this is that one way.
"""

from __future__ import annotations

import numpy as np

from ward.sim.render import SimCamera
from ward.sim.scenario import legs_uncovered, random_scenario, with_legs_uncovered


def pick_frames(n_frames: int, m: int, rng: np.random.Generator, ictal: tuple[int, int] = (0, 0),
                share: float = 0.0) -> np.ndarray:
    """``m`` distinct sorted frame indices of ``n_frames``: ``round(share * m)`` of them (at most all)
    inside ``ictal`` = [first, end) frame of the seizure, the rest anywhere else. ``share`` 0 draws
    exactly as ``rng.choice(n_frames, m)`` (the frames earlier models were trained on)."""
    if share <= 0:
        return np.sort(rng.choice(n_frames, m, replace=False))
    lo, hi = ictal
    k = min(int(round(share * m)), hi - lo)
    inside = lo + rng.choice(hi - lo, k, replace=False)
    rest = np.setdiff1d(np.arange(n_frames), inside)
    return np.sort(np.concatenate([inside, rng.choice(rest, m - k, replace=False)]))


def sim_frames(n: int, seed_base: int, frame_size: tuple[int, int], seed: int = 0,
               per_scenario: int = 50, seizure_share: float = 0.0,
               uncovered_share: float = 0.0) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """n rendered frames (N, H, W, 3) uint8 with their people ((18, 3) frame px, patient first) from
    random scenarios with seeds seed_base + 100 * seed + k (frames spread over each scenario).

    ``seizure_share``: the share of each scenario's frames drawn between its seizure's EEG onset and
    end (the ictal postures: flexed, raised, jerking limbs), the rest from the whole scenario as
    before. A scenario spends ~20 % of its 300 s in its seizure, so 0 (the default, which draws the
    frames the shipped pose model was trained on) leaves the ictal postures rare.

    ``uncovered_share``: the share of scenarios drawn with the blanket folded at the foot end (legs
    in view), as ``ward dataset generate --uncovered-share`` draws them."""
    for name, v in (("seizure_share", seizure_share), ("uncovered_share", uncovered_share)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {v}")
    w, h = frame_size
    frames, people = [], []
    rng = np.random.default_rng([seed_base, seed])
    k = 0
    while len(frames) < n:
        sc_seed = seed_base + 100 * seed + k
        sc = random_scenario(sc_seed, 300.0, n_seizures=1, fps=6, width=w, height=h)
        if uncovered_share > 0 and legs_uncovered(sc_seed, uncovered_share):
            sc = with_legs_uncovered(sc, sc_seed)
        cam = SimCamera(sc)
        sz = sc.seizures[0]
        ictal = (int(sz.eeg_onset_s * cam.fps), min(cam.n_frames, int(np.ceil(sz.end_s * cam.fps))))
        idx = pick_frames(cam.n_frames, min(per_scenario, n - len(frames)), rng, ictal, seizure_share)
        for i in idx:
            img, kp, info = cam.frame(int(i))
            frames.append(img)
            people.append([kp, *info["others"]])
        k += 1
    return np.stack(frames), people
