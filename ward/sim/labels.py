"""Per-frame seizure probability targets and clip labels.

Formula (per seizure, with t_e = EEG onset, t_c = clinical onset, t_x = seizure end):

    p(t) = 0                                                        t <  t_e
    p(t) = (1 - exp(-(t - t_e) / tau)) / (1 - exp(-(t_c - t_e) / tau))   t_e <= t < t_c,  tau = (t_c - t_e) / 3
    p(t) = 1                                                        t_c <= t < t_x
    p(t) = 1 - (t - t_x) / margin                                   t_x <= t < t_x + margin  (margin = 5 s)
    p(t) = 0                                                        afterwards (post-ictal stillness is negative)

The rise is exponential, concave, and reaches exactly 1 at clinical onset; with tau = gap / 3,
p(t_e + gap/3) = (1 - e^-1) / (1 - e^-3) = 0.666 and p(t_e + gap/2) = 0.818. After the end, a 5 s linear
fall (the length of a 30-frame clip at 6 fps) gives partial credit to clips that still contain ictal motion,
then post-ictal stillness is labelled 0: it is not a seizure to alarm on. With several seizures the target
is the maximum. A clip's label is the target at its last frame.
"""

from __future__ import annotations

from typing import Final, Iterable, Protocol

import numpy as np

TAU_FRACTION: Final[float] = 1.0 / 3.0
END_MARGIN_S: Final[float] = 5.0

LABEL_FORMULA: Final[str] = (
    "p=0 for t<t_eeg; p=(1-exp(-(t-t_eeg)/tau))/(1-exp(-(t_clin-t_eeg)/tau)) with tau=(t_clin-t_eeg)/3 for "
    "t_eeg<=t<t_clin; p=1 for t_clin<=t<t_end; p=1-(t-t_end)/5 for t_end<=t<t_end+5 s; p=0 afterwards; "
    "max over seizures; clip label = p at the clip's last frame"
)


class HasOnsets(Protocol):
    eeg_onset: float
    clinical_onset: float
    end: float


def seizure_target(t: np.ndarray | float, eeg_onset: float, clinical_onset: float, end: float,
                   margin: float = END_MARGIN_S) -> np.ndarray:
    """Target probability of one seizure at times t (see the module docstring for the formula)."""
    if not (eeg_onset <= clinical_onset <= end):
        raise ValueError(f"seizure times must satisfy eeg_onset <= clinical_onset <= end, got "
                         f"{eeg_onset}, {clinical_onset}, {end}")
    t = np.asarray(t, dtype=float)
    p = np.zeros(t.shape)
    gap = clinical_onset - eeg_onset
    if gap > 0:
        tau = gap * TAU_FRACTION
        m = (t >= eeg_onset) & (t < clinical_onset)
        p[m] = (1 - np.exp(-(t[m] - eeg_onset) / tau)) / (1 - np.exp(-gap / tau))
    p[(t >= clinical_onset) & (t < end)] = 1.0
    if margin > 0:
        m = (t >= end) & (t < end + margin)
        p[m] = 1.0 - (t[m] - end) / margin
    return p


def target(t: np.ndarray | float, seizures: Iterable[HasOnsets]) -> np.ndarray:
    """Target at times t for a list of seizures (max over seizures; 0 with none)."""
    t = np.asarray(t, dtype=float)
    out = np.zeros(t.shape)
    for s in seizures:
        out = np.maximum(out, seizure_target(t, s.eeg_onset, s.clinical_onset, s.end))
    return out


def clip_label(frame_times: np.ndarray, seizures: Iterable[HasOnsets]) -> float:
    """Label of a clip = target at the time of its last frame."""
    return float(target(np.asarray(frame_times, dtype=float)[-1], seizures))
