"""Choose the decision rule's parameters on validation streams (never on the evaluation seeds).

`ward eval --seed S --streams V.npz` scores validation scenarios once; `tune` then replays the rule
over those saved streams for every point of a grid (no re-scoring: :func:`evaluate_streams`) in two
stages (issue 16 item 4).

**Stage 1, the alarm tier.** Objective: at most ``max_false_alarms_per_24h`` false alarms per 24 h of
non-seizure footage (default 1.0, the clinical bar), at the highest sensitivity, then the earliest
alarm. Rules that meet the constraint ("feasible") come first, ranked by

1. highest overall sensitivity,
2. highest per-type minimum sensitivity (of two rules detecting as many seizures, prefer the one
   that misses no seizure type entirely: a type the rule never catches is the worse failure),
3. lowest median latency after EEG onset,
4. highest median advance before clinical onset,
5. closest to the starting rule (a tie keeps the rule people already know).

If no grid point is feasible, the result says so (``feasible: false`` and a message) and the rules
are ranked by fewest false alarms per 24 h, then the same keys; the best of them is still reported,
never silently presented as meeting the bar.

The alarm grid (:data:`ALARM_GRID`) spans the evidence floor, the alarm threshold, the rise and decay
time constants and the minimum duration; ``release_threshold`` is set to ``RELEASE_FRACTION`` of the
alarm threshold when the starting one would not be below it.

**Operating points** (``ward eval-tune --curve 0,1,2,5``, :func:`operating_points`): the same replayed rows
ranked under each of several caps, so the price of a false-alarm budget in sensitivity and latency is read
off one table instead of re-tuning per cap.

**Stage 2, the review tier**, on the chosen alarm rule (the review parameters do not change when an
alarm starts, so stage 1's figures hold). A seizure is *flagged* when an alarm or a review event starts
in its detection window, at the first such start; it is flagged *early* when that start is at or before
the clinical onset. Objective: at most ``max_reviews_per_24h`` review events per 24 h outside seizure
windows (default 50), then

1. most seizures flagged early,
2. most seizures flagged,
3. lowest median flag latency after EEG onset,
4. fewest review events per 24 h,
5. closest to the starting rule.

Infeasible review rules (every one above the cap) rank by fewest review events per 24 h first, and the
result says the cap was not met. The review grid (:data:`REVIEW_GRID`) spans review_threshold,
review_release, review_min_duration_s and tau_review_s.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ward.config import RuleConfig

ALARM_GRID: dict[str, tuple[float, ...]] = {
    "p_floor": (0.2, 0.4, 0.6, 0.8),
    "alarm_threshold": (0.4, 0.55, 0.7, 0.85, 0.95),
    "tau_rise_s": (1.5, 3.0, 5.0, 10.0),
    "tau_decay_s": (10.0, 30.0),
    "min_duration_s": (0.0, 1.0, 5.0, 10.0, 20.0),
}
REVIEW_GRID: dict[str, tuple[float, ...]] = {
    "review_threshold": (0.35, 0.5, 0.65, 0.8),
    "review_release": (0.25, 0.45),
    "review_min_duration_s": (5.0, 10.0, 20.0, 40.0),
    "tau_review_s": (5.0, 10.0, 30.0),
}
RELEASE_FRACTION = 0.5
MAX_FALSE_ALARMS_PER_24H = 1.0
MAX_REVIEWS_PER_24H = 50.0
_EPS = 1e-9


def candidate_rules(base: RuleConfig, grid: Mapping[str, Sequence[float]]) -> Iterable[RuleConfig]:
    """Every valid rule of the grid (combinations the validator rejects are skipped)."""
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        upd = dict(zip(names, values))
        if ("alarm_threshold" in upd and "release_threshold" not in upd
                and base.release_threshold >= upd["alarm_threshold"]):
            upd["release_threshold"] = round(upd["alarm_threshold"] * RELEASE_FRACTION, 4)
        try:
            yield RuleConfig.model_validate({**base.model_dump(), **upd})
        except ValueError:
            continue


def _distance(rule: RuleConfig, ref: Mapping[str, Any], names: Iterable[str]) -> float:
    d = rule.model_dump()
    return sum(abs(float(d[k]) - float(ref[k])) / max(abs(float(ref[k])), 1e-6) for k in names)


def _rate(res: Mapping[str, Any], rate_key: str, count: int) -> float:
    """A per-24-h rate; with no non-seizure footage it is 0 when nothing happened, else infinite."""
    v = res.get(rate_key)
    if v is None:
        return 0.0 if count == 0 else math.inf
    return float(v)


def _num(v: float | None, default: float) -> float:
    return default if v is None else float(v)


def _replay(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], rule: RuleConfig) -> dict[str, Any]:
    """evaluate() of the streams under `rule`, plus the review-tier figures of stage 2."""
    from ward.alarms.rule import run_rule
    from ward.evaluation.metrics import Recording, SeizureAnnotation, evaluate, event_times

    recs = []
    for meta, s in streams:
        ev = run_rule(s["t_end"], s["p"], rule)
        anns = [SeizureAnnotation(t, float(e), float(c), float(x)) for t, e, c, x in meta["seizures"]]
        recs.append(Recording(f"seed{meta['seed']}", float(meta["duration_s"]), anns,
                              event_times(ev, "alarm_start"), event_times(ev, "review_start")))
    res = evaluate(recs)
    pre, post = res["pre_tolerance_s"], res["post_tolerance_s"]
    early = flagged = 0
    lat: list[float] = []
    for rec in recs:
        starts = np.asarray(sorted([*rec.alarm_times, *rec.review_times]), dtype=float)
        for s in rec.seizures:
            hit = starts[(starts >= s.eeg_onset - pre) & (starts <= s.end + post)]
            if hit.size:
                flagged += 1
                early += int(hit[0] <= s.clinical_onset)
                lat.append(float(hit[0] - s.eeg_onset))
    res["n_flagged"] = flagged
    res["n_flagged_early"] = early
    res["median_flag_latency_after_eeg_s"] = float(np.median(lat)) if lat else None
    return res


def _alarm_row(rule: RuleConfig, res: Mapping[str, Any], names: Sequence[str], distance: float) -> dict[str, Any]:
    """One alarm-grid point's figures, with its cap-independent merit (``_merit``) and false-alarm rate (``_fa``):
    :func:`_rank_alarm` ranks the same rows under any cap."""
    fa = _rate(res, "false_alarms_per_24h", res["false_alarms"])
    per_type = {t: v["sensitivity"] for t, v in res["per_type"].items()}
    sens = _num(res["sensitivity"], 0.0)
    min_type = min((_num(v, 0.0) for v in per_type.values()), default=0.0)
    merit = (-sens, -min_type, _num(res["median_latency_after_eeg_s"], math.inf),
             -_num(res["median_advance_before_clinical_s"], -math.inf), distance)
    d = rule.model_dump()
    return {"rule": {k: d[k] for k in (*names, "release_threshold")},
            "sensitivity": res["sensitivity"], "min_type_sensitivity": min_type,
            "false_alarms_per_24h": res["false_alarms_per_24h"], "false_alarms": res["false_alarms"],
            "median_latency_after_eeg_s": res["median_latency_after_eeg_s"],
            "median_advance_before_clinical_s": res["median_advance_before_clinical_s"],
            "review_events_per_24h": res["review_events_per_24h"],
            "per_type_sensitivity": per_type, "_fa": fa, "_merit": merit}


def _rank_alarm(rows: Sequence[dict[str, Any]], max_fa: float) -> list[dict[str, Any]]:
    """The rows ranked under a cap (module docstring), as new dicts with ``feasible`` and no private keys."""
    def key(r: Mapping[str, Any]) -> tuple:
        ok = r["_fa"] <= max_fa + _EPS
        return (0.0 if ok else 1.0, 0.0 if ok else r["_fa"], *r["_merit"])

    out = []
    for r in sorted(rows, key=key):
        row = {k: v for k, v in r.items() if not k.startswith("_")}
        row["feasible"] = r["_fa"] <= max_fa + _EPS
        out.append(row)
    return out


def _review_row(rule: RuleConfig, res: Mapping[str, Any], names: Sequence[str], distance: float,
                max_reviews: float) -> dict[str, Any]:
    rv = _rate(res, "review_events_per_24h", res["review_events"])
    feasible = rv <= max_reviews + _EPS
    key = (0.0 if feasible else 1.0, 0.0 if feasible else rv, -float(res["n_flagged_early"]),
           -float(res["n_flagged"]), _num(res["median_flag_latency_after_eeg_s"], math.inf), rv, distance)
    d = rule.model_dump()
    return {"rule": {k: d[k] for k in names}, "feasible": feasible,
            "review_events_per_24h": res["review_events_per_24h"], "review_events": res["review_events"],
            "n_seizures": res["n_seizures"],
            "n_flagged_early": res["n_flagged_early"], "n_flagged": res["n_flagged"],
            "median_flag_latency_after_eeg_s": res["median_flag_latency_after_eeg_s"],
            "sensitivity": res["sensitivity"], "false_alarms_per_24h": res["false_alarms_per_24h"], "_key": key}


def _rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows.sort(key=lambda r: r["_key"])
    for r in rows:
        r.pop("_key")
    return rows


def alarm_rows(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], base: RuleConfig | None = None,
               grid: Mapping[str, Sequence[float]] | None = None) -> list[dict[str, Any]]:
    """Every alarm-grid point replayed over the streams, unranked (rank with :func:`_rank_alarm`)."""
    base = base or RuleConfig()
    grid = grid or ALARM_GRID
    ref = base.model_dump()
    rows = [_alarm_row(rule, _replay(streams, rule), list(grid), _distance(rule, ref, grid))
            for rule in candidate_rules(base, grid)]
    if not rows:
        raise ValueError("the grid holds no valid rule (every combination was rejected by RuleConfig)")
    return rows


def _check_cap(cap: float) -> None:
    if cap < 0:
        raise ValueError(f"max_false_alarms_per_24h must be >= 0, got {cap}")


def tune_rule(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], base: RuleConfig | None = None,
              grid: Mapping[str, Sequence[float]] | None = None,
              max_false_alarms_per_24h: float = MAX_FALSE_ALARMS_PER_24H) -> list[dict[str, Any]]:
    """Stage 1: every alarm-grid point, best first (see the module docstring);
    each row: {"rule": {...}, "feasible", "sensitivity", "false_alarms_per_24h", ...}."""
    _check_cap(max_false_alarms_per_24h)
    return _rank_alarm(alarm_rows(streams, base, grid), max_false_alarms_per_24h)


def operating_points(rows: Sequence[dict[str, Any]], caps: Iterable[float]) -> list[dict[str, Any]]:
    """The price of each false-alarm budget: for every cap (false alarms per 24 h), the alarm rule stage 1
    would choose under it, from the same replayed rows (:func:`alarm_rows`). Sensitivity never falls as the
    cap grows; a cap no rule meets gives the rule with the fewest false alarms, ``feasible: false``."""
    caps = sorted(float(c) for c in caps)
    for c in caps:
        _check_cap(c)
    return [{"max_false_alarms_per_24h": c, **_rank_alarm(rows, c)[0]} for c in caps]


def tune_review(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], rule: RuleConfig,
                grid: Mapping[str, Sequence[float]] | None = None,
                max_reviews_per_24h: float = MAX_REVIEWS_PER_24H) -> list[dict[str, Any]]:
    """Stage 2: every review-grid point on top of `rule`'s alarm tier, best first (module docstring)."""
    if max_reviews_per_24h < 0:
        raise ValueError(f"max_reviews_per_24h must be >= 0, got {max_reviews_per_24h}")
    grid = grid or REVIEW_GRID
    ref = rule.model_dump()
    rows = [_review_row(r, _replay(streams, r), list(grid), _distance(r, ref, grid), max_reviews_per_24h)
            for r in candidate_rules(rule, grid)]
    if not rows:
        raise ValueError("the review grid holds no valid rule (every combination was rejected by RuleConfig)")
    return _rank(rows)


def tune(streams: Sequence[tuple[dict[str, Any], dict[str, np.ndarray]]], base: RuleConfig | None = None, *,
         max_false_alarms_per_24h: float = MAX_FALSE_ALARMS_PER_24H,
         max_reviews_per_24h: float = MAX_REVIEWS_PER_24H,
         alarm_grid: Mapping[str, Sequence[float]] | None = None,
         review_grid: Mapping[str, Sequence[float]] | None = None, top: int = 10,
         curve: Iterable[float] = ()) -> dict[str, Any]:
    """Both stages. Returns {"rule": the chosen RuleConfig as a dict, "alarm": {...}, "review": {...}}, where each
    stage holds its constraint, whether any candidate met it, a message, the chosen row and the ``top`` rows;
    with ``curve`` (false-alarm caps) also "operating_points" (:func:`operating_points`, same replays)."""
    base = base or RuleConfig()
    _check_cap(max_false_alarms_per_24h)
    raw = alarm_rows(streams, base, alarm_grid)
    ranked = _rank_alarm(raw, max_false_alarms_per_24h)
    best = ranked[0]
    alarm_rule = RuleConfig.model_validate({**base.model_dump(), **best["rule"]})
    review_rows = tune_review(streams, alarm_rule, review_grid, max_reviews_per_24h)
    chosen = RuleConfig.model_validate({**alarm_rule.model_dump(), **review_rows[0]["rule"]})

    def msg(ok: bool, what: str, cap: float, row: Mapping[str, Any], key: str) -> str:
        v = row[key]
        got = "undefined (no non-seizure footage)" if v is None else f"{v:.2f}"
        if ok:
            return f"{what}: the chosen rule meets <= {cap:g} {key} ({got})"
        return (f"{what}: NO rule of the grid meets <= {cap:g} {key}; the constraint is NOT met. Reported: the "
                f"rule with the fewest ({got}). Widen the grid or improve the model.")

    return {
        "rule": chosen.model_dump(),
        "alarm": {"max_false_alarms_per_24h": max_false_alarms_per_24h, "feasible": best["feasible"],
                  "n_candidates": len(ranked), "n_feasible": sum(r["feasible"] for r in ranked),
                  "message": msg(best["feasible"], "alarm tier", max_false_alarms_per_24h, best,
                                 "false_alarms_per_24h"),
                  "chosen": best, "top": ranked[:top]},
        "review": {"max_reviews_per_24h": max_reviews_per_24h, "feasible": review_rows[0]["feasible"],
                   "n_candidates": len(review_rows), "n_feasible": sum(r["feasible"] for r in review_rows),
                   "message": msg(review_rows[0]["feasible"], "review tier", max_reviews_per_24h, review_rows[0],
                                  "review_events_per_24h"),
                   "chosen": review_rows[0], "top": review_rows[:top]},
        **({"operating_points": operating_points(raw, curve)} if curve else {}),
    }
