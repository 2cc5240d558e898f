"""Choose the decision rule's parameters on validation streams (never on the evaluation seeds).

`ward eval --seed S --streams V.npz` scores validation scenarios once; `tune_rule` then replays the
rule over those saved streams for every point of a small grid and ranks the results:

0. rules whose sensitivity reaches ``min_sensitivity`` first (default 0.8: a rule that misses more
   than one seizure in five is not a candidate, however quiet it is),
1. fewest false alarms per 24 h (the clinical bar is zero),
2. highest sensitivity,
3. lowest median latency after EEG onset,
4. closest to the current defaults (a tie keeps the rule people already know).

The grid spans the parameters that trade latency for false alarms: the evidence floor, the alarm
threshold, the rise time constant and the minimum duration. Hysteresis, refractory period, review
tier and gap handling keep their current values.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ward.config import RuleConfig

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "p_floor": (0.2, 0.4, 0.6, 0.8),
    "alarm_threshold": (0.4, 0.55, 0.7, 0.85, 0.95),
    "tau_rise_s": (1.5, 3.0, 5.0, 10.0),
    "min_duration_s": (0.0, 1.0, 5.0, 10.0, 20.0),
}


def _key(res: Mapping[str, Any], distance: float, min_sensitivity: float) -> tuple[float, ...]:
    lat = res.get("median_latency_after_eeg_s")
    sens = float(res["sensitivity"] or 0.0)
    return (float(sens < min_sensitivity - 1e-9), float(res["false_alarms_per_24h"]), -sens,
            float("inf") if lat is None else float(lat), distance)


def candidate_rules(base: RuleConfig, grid: Mapping[str, Sequence[float]]) -> Iterable[RuleConfig]:
    """Every valid rule of the grid (combinations the validator rejects are skipped)."""
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        upd = dict(zip(names, values))
        if "alarm_threshold" in upd and base.release_threshold >= upd["alarm_threshold"]:
            upd["release_threshold"] = round(upd["alarm_threshold"] * 0.5, 4)
        try:
            yield RuleConfig.model_validate({**base.model_dump(), **upd})
        except ValueError:
            continue


def tune_rule(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], base: RuleConfig | None = None,
              grid: Mapping[str, Sequence[float]] | None = None, min_sensitivity: float = 0.8
              ) -> list[dict[str, Any]]:
    """All grid points, best first: [{"rule": {...}, "sensitivity", "false_alarms_per_24h", ...}]."""
    from ward.evaluation.run import evaluate_streams

    base = base or RuleConfig()
    grid = grid or DEFAULT_GRID
    ref = base.model_dump()
    rows = []
    for rule in candidate_rules(base, grid):
        res = evaluate_streams(streams, rule)
        d = rule.model_dump()
        distance = sum(abs(float(d[k]) - float(ref[k])) / max(abs(float(ref[k])), 1e-6) for k in grid)
        rows.append({"rule": {k: d[k] for k in (*grid, "release_threshold")},
                     "sensitivity": res["sensitivity"], "false_alarms_per_24h": res["false_alarms_per_24h"],
                     "median_latency_after_eeg_s": res["median_latency_after_eeg_s"],
                     "median_advance_before_clinical_s": res["median_advance_before_clinical_s"],
                     "per_type_sensitivity": {t: v["sensitivity"] for t, v in res["per_type"].items()},
                     "_key": _key(res, distance, min_sensitivity)})
    rows.sort(key=lambda r: r["_key"])
    for r in rows:
        r.pop("_key")
    return rows
