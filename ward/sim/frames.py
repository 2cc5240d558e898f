"""Still frames sampled from random simulated scenarios, with every person's ground truth.

Pose training (``ward.train.pose``), its held-out accuracy check and the int8 calibration and
accuracy-gate data (``ward.evaluation.calibration``) all draw frames the same way, from different
seed ranges; this is that one way.
"""

from __future__ import annotations

import numpy as np

from ward.sim.render import SimCamera
from ward.sim.scenario import random_scenario


def sim_frames(n: int, seed_base: int, frame_size: tuple[int, int], seed: int = 0,
               per_scenario: int = 50) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """n rendered frames (N, H, W, 3) uint8 with their people ((18, 3) frame px, patient first) from
    random scenarios with seeds seed_base + 100 * seed + k (frames spread over each scenario)."""
    w, h = frame_size
    frames, people = [], []
    rng = np.random.default_rng([seed_base, seed])
    k = 0
    while len(frames) < n:
        sc = random_scenario(seed_base + 100 * seed + k, 300.0, n_seizures=1, fps=6, width=w, height=h)
        cam = SimCamera(sc)
        idx = np.sort(rng.choice(cam.n_frames, min(per_scenario, n - len(frames)), replace=False))
        for i in idx:
            img, kp, info = cam.frame(int(i))
            frames.append(img)
            people.append([kp, *info["others"]])
        k += 1
    return np.stack(frames), people
