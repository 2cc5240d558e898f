"""Seizure-detection metrics, measured the way the VSViG paper measures them.

Per seizure (EEG onset t_e, clinical onset t_c, end t_x) the detection window is
[t_e - pre_tolerance_s, t_x + post_tolerance_s]. The seizure is detected if an alarm *starts* inside
it; the first such alarm gives

    latency after EEG onset        = t_alarm - t_e      (smaller is better)
    advance before clinical onset  = t_c - t_alarm      (positive = the alarm came before the clinical onset)

An alarm that starts outside every detection window is a false alarm. False alarms (and review
events outside seizure windows) are counted per 24 h of non-seizure footage: the recording time not
covered by any detection window. Clip RMSE compares predicted and target clip probabilities.

Undefined figures (no seizures, no detected seizure, no non-seizure footage) are None, never NaN,
so the result dict is valid JSON.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

DAY_S = 86400.0


@dataclass(frozen=True)
class SeizureAnnotation:
    """One annotated seizure (times in s of recording time)."""

    type: str
    eeg_onset: float
    clinical_onset: float
    end: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.eeg_onset, self.clinical_onset, self.end)):
            raise ValueError(f"seizure times must be finite, got {self.eeg_onset}, {self.clinical_onset}, {self.end}")
        if not self.eeg_onset <= self.clinical_onset <= self.end:
            raise ValueError(f"seizure times must satisfy eeg_onset <= clinical_onset <= end, got "
                             f"{self.eeg_onset}, {self.clinical_onset}, {self.end}")


@dataclass(frozen=True)
class Recording:
    """One evaluated recording: its length, its seizures and the start times of the rule's events.

    ``alarm_intervals`` (start, end) are the alarms as intervals (an alarm still active at the end of the
    recording ends there); ward's metrics use only the starts, the SzCORE cross-check
    (:mod:`ward.evaluation.szcore`) scores the intervals with SzCORE's defaults.
    """

    id: str
    duration_s: float
    seizures: Sequence[SeizureAnnotation] = ()
    alarm_times: Sequence[float] = ()
    review_times: Sequence[float] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    alarm_intervals: Sequence[tuple[float, float]] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"recording {self.id!r}: duration_s must be > 0, got {self.duration_s}")


def event_times(events: Iterable[Any], kind: str = "alarm_start") -> list[float]:
    """Times of the rule events of one kind (e.g. `alarm_start`, `review_start`) from `ward.alarms.rule`."""
    return [float(e.t) for e in events if e.kind == kind]


def event_intervals(events: Iterable[Any], duration_s: float, tier: str = "alarm") -> list[tuple[float, float]]:
    """(start, end) of each episode of one tier ("alarm" or "review") from `ward.alarms.rule` events;
    an episode still open at the end of the recording ends at ``duration_s``."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for e in events:
        if e.kind == f"{tier}_start":
            start = float(e.t)
        elif e.kind == f"{tier}_end" and start is not None:
            out.append((start, float(e.t)))
            start = None
    if start is not None:
        out.append((start, max(start, float(duration_s))))
    return out


def clip_rmse(pred: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Root-mean-square error between predicted and target clip probabilities."""
    p = np.asarray(pred, dtype=float).ravel()
    y = np.asarray(target, dtype=float).ravel()
    if p.shape != y.shape:
        raise ValueError(f"pred and target must have the same length, got {p.size} and {y.size}")
    if p.size == 0:
        raise ValueError("clip_rmse needs at least one clip")
    return float(np.sqrt(np.mean((p - y) ** 2)))


def roc_auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve of scores that should be higher on ``positive`` than on ``negative``:
    the probability that a random positive outscores a random negative, ties counting one half
    (Mann-Whitney U / (n_pos * n_neg), with average ranks). None when either side is empty."""
    pos = np.asarray(positive, dtype=float).ravel()
    neg = np.asarray(negative, dtype=float).ravel()
    if pos.size == 0 or neg.size == 0:
        return None
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("roc_auc: scores must be finite (found NaN or inf)")
    values, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1            # 1-based rank of each distinct value's first copy
    avg_rank = first_rank + (counts - 1) / 2.0             # tied values share the mean of their ranks
    rank_sum = float(avg_rank[inverse[:pos.size]].sum())
    return (rank_sum - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)


def _union_length(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the union of intervals clipped to [lo, hi]."""
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in intervals):
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.median(values))


def _ratio(n: int, d: int) -> float | None:
    return n / d if d else None


def evaluate(recordings: Sequence[Recording], *, pre_tolerance_s: float = 0.0, post_tolerance_s: float = 60.0,
             clip_pred: Sequence[float] | np.ndarray | None = None,
             clip_target: Sequence[float] | np.ndarray | None = None,
             baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-seizure, per-type and overall detection metrics for a set of recordings (see module docstring)."""
    if pre_tolerance_s < 0 or post_tolerance_s < 0:
        raise ValueError(f"tolerances must be >= 0, got pre={pre_tolerance_s}, post={post_tolerance_s}")
    if not recordings:
        raise ValueError("evaluate needs at least one recording")
    seizures_out: list[dict[str, Any]] = []
    false_alarm_list: list[dict[str, Any]] = []
    non_seizure_s = total_s = 0.0
    reviews_outside = reviews_inside = 0
    for rec in recordings:
        windows = [(s.eeg_onset - pre_tolerance_s, s.end + post_tolerance_s) for s in rec.seizures]
        alarms = np.sort(np.asarray(rec.alarm_times, dtype=float))
        reviews = np.asarray(rec.review_times, dtype=float)
        total_s += rec.duration_s
        non_seizure_s += rec.duration_s - _union_length(windows, 0.0, rec.duration_s)
        if windows:
            w = np.asarray(windows)
            in_alarm = ((alarms[:, None] >= w[:, 0]) & (alarms[:, None] <= w[:, 1]))
            in_review = ((reviews[:, None] >= w[:, 0]) & (reviews[:, None] <= w[:, 1])).any(axis=1)
        else:
            in_alarm = np.zeros((alarms.size, 0), dtype=bool)
            in_review = np.zeros(reviews.size, dtype=bool)
        reviews_inside += int(in_review.sum())
        reviews_outside += int((~in_review).sum())
        false_alarm_list += [{"recording": rec.id, "t": float(t)} for t in alarms[~in_alarm.any(axis=1)]]
        for j, s in enumerate(rec.seizures):
            hits = alarms[in_alarm[:, j]]
            first = float(hits[0]) if hits.size else None
            seizures_out.append({
                "recording": rec.id, "type": s.type, "eeg_onset": s.eeg_onset,
                "clinical_onset": s.clinical_onset, "end": s.end, "detected": first is not None,
                "alarm_t": first,
                "latency_after_eeg_s": None if first is None else first - s.eeg_onset,
                "advance_before_clinical_s": None if first is None else s.clinical_onset - first,
                "alarms_in_window": int(hits.size),
            })

    def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        det = [r for r in rows if r["detected"]]
        lat_mean, lat_med = _stats([r["latency_after_eeg_s"] for r in det])
        adv_mean, adv_med = _stats([r["advance_before_clinical_s"] for r in det])
        return {"n_seizures": len(rows), "n_detected": len(det), "sensitivity": _ratio(len(det), len(rows)),
                "mean_latency_after_eeg_s": lat_mean, "median_latency_after_eeg_s": lat_med,
                "mean_advance_before_clinical_s": adv_mean, "median_advance_before_clinical_s": adv_med}

    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in seizures_out:
        by_type[r["type"]].append(r)
    per_day = (lambda n: n / non_seizure_s * DAY_S) if non_seizure_s > 0 else (lambda n: None)
    overall = aggregate(seizures_out)
    rmse = None
    if clip_pred is not None or clip_target is not None:
        if clip_pred is None or clip_target is None:
            raise ValueError("give both clip_pred and clip_target for clip RMSE, or neither")
        rmse = clip_rmse(clip_pred, clip_target)
    return {
        "sensitivity": overall["sensitivity"],
        "median_latency_after_eeg_s": overall["median_latency_after_eeg_s"],
        "median_advance_before_clinical_s": overall["median_advance_before_clinical_s"],
        "false_alarms_per_24h": per_day(len(false_alarm_list)),
        "hours_non_seizure": non_seizure_s / 3600.0,
        "per_type": {k: aggregate(v) for k, v in sorted(by_type.items())},
        "baseline": baseline,
        "mean_latency_after_eeg_s": overall["mean_latency_after_eeg_s"],
        "mean_advance_before_clinical_s": overall["mean_advance_before_clinical_s"],
        "n_seizures": overall["n_seizures"],
        "n_detected": overall["n_detected"],
        "false_alarms": len(false_alarm_list),
        "review_events_per_24h": per_day(reviews_outside),
        "review_events": reviews_outside,
        "review_events_in_seizures": reviews_inside,
        "clip_rmse": rmse,
        "hours_total": total_s / 3600.0,
        "n_recordings": len(recordings),
        "pre_tolerance_s": pre_tolerance_s,
        "post_tolerance_s": post_tolerance_s,
        "seizures": seizures_out,
        "false_alarm_list": false_alarm_list,
    }


def summary_rows(result: dict[str, Any], label: str = "all") -> list[dict[str, Any]]:
    """Table rows (overall, then per type) for printing with `benchmarks/_util.report` or rich."""
    def fmt(v: Any) -> Any:
        return "-" if v is None else v

    rows = [{"group": label, "n": result["n_seizures"], "sensitivity": fmt(result["sensitivity"]),
             "median_latency_s": fmt(result["median_latency_after_eeg_s"]),
             "median_advance_s": fmt(result["median_advance_before_clinical_s"]),
             "false_alarms_per_24h": fmt(result["false_alarms_per_24h"]),
             "reviews_per_24h": fmt(result.get("review_events_per_24h"))}]
    for name, r in result["per_type"].items():
        rows.append({"group": f"  {name}", "n": r["n_seizures"], "sensitivity": fmt(r["sensitivity"]),
                     "median_latency_s": fmt(r["median_latency_after_eeg_s"]),
                     "median_advance_s": fmt(r["median_advance_before_clinical_s"]),
                     "false_alarms_per_24h": "", "reviews_per_24h": ""})
    return rows
