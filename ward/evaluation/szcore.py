"""Cross-check of ward's event metrics with the SzCORE scorer (`timescoring`, PyPI, pinned 0.0.7).

SzCORE (Dan et al., Epilepsia 2025) scores seizure detectors with `timescoring.scoring.EventScoring`:
reference events (the annotated seizures) and hypothesis events (the detector's output) become
binary masks on a 10 Hz grid; then, per recording,

1. events of each mask closer than ``minDurationBetweenEvents`` (default 90 s) are merged,
2. events longer than ``maxEventDuration`` (default 300 s) are split into 300 s pieces,
3. a reference event counts as detected (TP) if the hypothesis mask covers more than ``minOverlap``
   (default 0: any sample) of the event widened by ``toleranceStart`` before (30 s) and
   ``toleranceEnd`` after (60 s),
4. a hypothesis event is a false positive if it touches no widened *detected* reference event,
5. sensitivity = TP / reference events; false positives per 24 h = FP / the *whole* recording time.

This module scores ward's recordings (:class:`ward.evaluation.metrics.Recording`) both ways:

* ``szcore_default``: SzCORE's default parameters, seizures from EEG onset to end, each alarm the
  interval it was active (``Recording.alarm_intervals``; the start alone when no interval is known);
* ``szcore_mirrored``: parameters that mirror ward's conventions (tolerances = ward's pre/post
  tolerance, no merging, no splitting, any overlap) and each alarm a point event at its start
  (one 0.1 s sample), so a seizure is detected exactly when an alarm *starts* in its window.

With the mirrored parameters, ward and SzCORE agree exactly on detected seizures and false-alarm
counts, except for alarms within 0.1 s of a window edge (the 10 Hz grid and its half-open windows);
false alarms per 24 h then differ only by the normalisation (ward: per 24 h of non-seizure time,
SzCORE: per 24 h of recording), which is why ``false_alarms_per_24h_non_seizure`` is also reported.
Every convention that separates the two is listed in :data:`CONVENTIONS`, with how often it
occurs in the scored data. Aggregation over recordings follows SzCORE: TP, reference events, FP and
durations are summed, then divided.

Pure: no I/O; `timescoring` is imported here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring

from ward.evaluation.metrics import DAY_S, Recording, evaluate

FS = 10
"""Hz: the grid EventScoring works on (it resamples every annotation to 10 Hz)."""
SAMPLE_S = 1.0 / FS


@dataclass(frozen=True)
class SzCoreParams:
    """EventScoring.Parameters plus how ward's alarms become hypothesis events."""

    tolerance_start_s: float = 30.0
    tolerance_end_s: float = 60.0
    min_overlap: float = 0.0
    max_event_duration_s: float = 300.0
    min_duration_between_events_s: float = 90.0
    alarm_events: str = "interval"  # "interval": start..end of each alarm; "start": a 0.1 s event at each start

    def to_timescoring(self) -> EventScoring.Parameters:
        return EventScoring.Parameters(toleranceStart=self.tolerance_start_s, toleranceEnd=self.tolerance_end_s,
                                       minOverlap=self.min_overlap, maxEventDuration=self.max_event_duration_s,
                                       minDurationBetweenEvents=self.min_duration_between_events_s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in d.items()}


SZCORE_DEFAULT = SzCoreParams()
"""SzCORE's defaults (timescoring 0.0.7 EventScoring.Parameters())."""


def mirrored_params(pre_tolerance_s: float, post_tolerance_s: float) -> SzCoreParams:
    """Parameters under which EventScoring counts what ward counts (see the module docstring)."""
    return SzCoreParams(tolerance_start_s=pre_tolerance_s, tolerance_end_s=post_tolerance_s, min_overlap=0.0,
                        max_event_duration_s=math.inf, min_duration_between_events_s=0.0, alarm_events="start")


@dataclass(frozen=True)
class Scores:
    """Event-level figures of one scorer over all recordings (sums over recordings, then ratios)."""

    scorer: str
    n_seizures: int
    n_detected: int
    sensitivity: float | None
    false_alarms: int
    false_alarms_per_24h: float | None
    """ward: per 24 h of non-seizure time; SzCORE: per 24 h of recording time (each scorer's own convention)."""
    false_alarms_per_24h_non_seizure: float | None
    """false alarms per 24 h of ward's non-seizure time (the same denominator for every scorer)."""
    hours: float
    """the denominator of false_alarms_per_24h, in hours."""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Convention:
    """One convention on which ward and SzCORE differ, and how often it bites in the scored data."""

    name: str
    ward: str
    szcore: str
    occurrences: int | None = None


@dataclass(frozen=True)
class SzCoreCrossCheck:
    ward: Scores
    szcore_default: Scores
    szcore_mirrored: Scores
    mirrored_agrees: bool
    """True when the mirrored SzCORE run counts the same detected seizures and false alarms as ward."""
    conventions: tuple[Convention, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One table row per scorer (for printing)."""
        return [{"scorer": s.scorer, "seizures": s.n_seizures, "detected": s.n_detected,
                 "sensitivity": s.sensitivity, "false_alarms": s.false_alarms,
                 "false_alarms_per_24h": s.false_alarms_per_24h,
                 "false_alarms_per_24h_non_seizure": s.false_alarms_per_24h_non_seizure}
                for s in (self.ward, self.szcore_mirrored, self.szcore_default)]


def _hypothesis(rec: Recording, alarm_events: str) -> list[tuple[float, float]]:
    """Alarm events on the 10 Hz grid, sorted, kept inside the recording (a 0.1 s minimum length)."""
    last = max(rec.duration_s - SAMPLE_S, 0.0)
    if alarm_events == "interval" and rec.alarm_intervals:
        spans = [(float(a), float(b)) for a, b in rec.alarm_intervals]
    elif alarm_events in ("interval", "start"):
        spans = [(float(t), float(t)) for t in rec.alarm_times]
    else:
        raise ValueError(f"alarm_events must be 'interval' or 'start', got {alarm_events!r}")
    out = []
    for a, b in sorted(spans):
        a = min(max(a, 0.0), last)
        out.append((a, min(max(b, a + SAMPLE_S), rec.duration_s)))
    return out


def score_recording(rec: Recording, params: SzCoreParams) -> EventScoring:
    """timescoring's EventScoring of one recording: seizures (EEG onset .. end) vs the rule's alarms."""
    n = int(round(rec.duration_s * FS))
    ref = Annotation(sorted((float(s.eeg_onset), float(s.end)) for s in rec.seizures), FS, n)
    hyp = Annotation(_hypothesis(rec, params.alarm_events), FS, n)
    return EventScoring(ref, hyp, params.to_timescoring())


def _szcore_scores(name: str, recordings: Sequence[Recording], params: SzCoreParams, non_seizure_s: float) -> Scores:
    tp = ref = fp = 0
    total_s = 0.0
    for rec in recordings:
        sc = score_recording(rec, params)
        tp, ref, fp = tp + int(sc.tp), ref + int(sc.refTrue), fp + int(sc.fp)
        total_s += sc.numSamples / sc.fs
    return Scores(name, ref, tp, tp / ref if ref else None, fp,
                  fp / total_s * DAY_S if total_s > 0 else None,
                  fp / non_seizure_s * DAY_S if non_seizure_s > 0 else None,
                  total_s / 3600.0, params.to_dict())


def _gaps(spans: list[tuple[float, float]]) -> np.ndarray:
    if len(spans) < 2:
        return np.zeros(0)
    s = np.asarray(sorted(spans), dtype=float)
    return s[1:, 0] - s[:-1, 1]


def _conventions(recordings: Sequence[Recording], pre: float, post: float) -> tuple[Convention, ...]:
    d = SZCORE_DEFAULT
    merged = split = outside_start = edge = 0
    for rec in recordings:
        sz = [(s.eeg_onset, s.end) for s in rec.seizures]
        al = _hypothesis(rec, "interval")
        merged += int((_gaps(sz) < d.min_duration_between_events_s).sum())
        merged += int((_gaps(al) < d.min_duration_between_events_s).sum())
        split += sum(int((b - a) > d.max_event_duration_s) for a, b in sz + al)
        w = [(a - pre, b + post) for a, b in sz]
        for a, b in al:  # alarms that overlap a default SzCORE window but start outside ward's windows
            if not any(lo <= a <= hi for lo, hi in w) and any(
                    a < e + d.tolerance_end_s and b > s - d.tolerance_start_s for s, e in sz):
                outside_start += 1
        for t in rec.alarm_times:
            edge += sum(int(abs(t - lo) < SAMPLE_S or abs(t - hi) < SAMPLE_S) for lo, hi in w)
    return (
        Convention("event merging", "every alarm and every seizure counts on its own",
                   f"events closer than {d.min_duration_between_events_s:g} s merge into one (alarms and seizures)",
                   merged),
        Convention("event splitting", "a long seizure or alarm is one event",
                   f"events longer than {d.max_event_duration_s:g} s are split into {d.max_event_duration_s:g} s "
                   "pieces (a long seizure counts several times; each piece must be detected)", split),
        Convention("detection window", f"an alarm *start* in [EEG onset - {pre:g} s, end + {post:g} s]",
                   f"any overlap of the alarm *interval* with [EEG onset - {d.tolerance_start_s:g} s, "
                   f"end + {d.tolerance_end_s:g} s]; an alarm that starts before a seizure and lasts into it "
                   "detects it (ward: a false alarm and, unless another alarm starts, a miss)", outside_start),
        Convention("false-alarm denominator", "24 h of non-seizure time (recording minus detection windows)",
                   "24 h of the whole recording", None),
        Convention("time grid", "exact times, closed windows",
                   "10 Hz samples, half-open windows: an alarm within 0.1 s of a window edge may fall on "
                   "either side", edge),
        Convention("false alarm next to a seizure", "an alarm starting outside every window is false",
                   "an alarm interval touching the widened window of a detected seizure is never false "
                   "(one alarm both detects and is excused)", None),
    )


def szcore_crosscheck(recordings: Sequence[Recording], *, pre_tolerance_s: float = 0.0,
                      post_tolerance_s: float = 60.0) -> SzCoreCrossCheck:
    """ward's event metrics next to SzCORE's (default and mirrored parameters) on the same recordings."""
    if not recordings:
        raise ValueError("szcore_crosscheck needs at least one recording")
    res = evaluate(recordings, pre_tolerance_s=pre_tolerance_s, post_tolerance_s=post_tolerance_s)
    non_seizure_s = res["hours_non_seizure"] * 3600.0
    ward = Scores("ward", res["n_seizures"], res["n_detected"], res["sensitivity"], res["false_alarms"],
                  res["false_alarms_per_24h"], res["false_alarms_per_24h"], res["hours_non_seizure"],
                  {"pre_tolerance_s": pre_tolerance_s, "post_tolerance_s": post_tolerance_s,
                   "alarm_events": "start"})
    mirrored = _szcore_scores("szcore_mirrored", recordings, mirrored_params(pre_tolerance_s, post_tolerance_s),
                              non_seizure_s)
    default = _szcore_scores("szcore_default", recordings, SZCORE_DEFAULT, non_seizure_s)
    agrees = (mirrored.n_seizures, mirrored.n_detected, mirrored.false_alarms) == (
        ward.n_seizures, ward.n_detected, ward.false_alarms)
    return SzCoreCrossCheck(ward, default, mirrored, agrees,
                            _conventions(recordings, pre_tolerance_s, post_tolerance_s))

