"""What was happening in the simulated room when each false alarm of a `ward eval` run started.

    .venv/bin/python benchmarks/eval_false_alarms.py docs/results/eval_24h.json \
        [--window-s 30] [--json docs/results/eval_24h_false_alarms.json]

`ward eval` stores each false alarm as (recording, t); the scenarios are deterministic by seed, so
their behaviour and scene-event schedules are rebuilt here (no rendering, no model) and matched to
the alarm times. Definitions, recorded in the JSON next to the counts:

* a behaviour or event is "before" an alarm when its interval [start, start + duration] overlaps
  the window [t - window_s, t] that ends at the alarm's start t (the rule needs seconds of high
  probability, so the cause precedes the alarm);
* an event is "at" an alarm when t lies inside its interval.

Both the docs' false-alarm explanation and this script read the same eval JSON; run it again
after a new `ward eval --json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import add_json_option, report  # noqa: E402
from ward.evaluation.run import EvalConfig, eval_scenarios  # noqa: E402


def scenarios_of(ev: dict[str, Any]) -> dict[str, Any]:
    """The eval's scenarios keyed by recording id ('seed<N>'), rebuilt from the JSON's settings."""
    n_types = len(ev["per_type"])
    if not n_types or ev["n_seizures"] % n_types:
        raise ValueError(f"cannot infer seizures per type from n_seizures={ev['n_seizures']} and "
                         f"{n_types} types; is this a `ward eval --json` file?")
    cfg = EvalConfig(seed=int(ev["eval_seed"]), hours=float(ev["hours_requested_non_seizure"]),
                     seizures_per_type=ev["n_seizures"] // n_types, seizure_types=tuple(ev["per_type"]))
    out = {f"seed{sc.seed}": sc for sc in eval_scenarios(cfg)}
    missing = sorted(set(f"seed{s}" for s in ev["scenario_seeds"]) - set(out))
    if missing:
        raise ValueError(f"scenarios {missing[:5]} of the JSON are not rebuilt by its settings; "
                         "was it written by another ward version?")
    return out


def overlaps(spec: Any, lo: float, hi: float) -> bool:
    """Whether a behaviour/event interval overlaps [lo, hi]."""
    return spec.start_s <= hi and spec.start_s + spec.duration_s >= lo


def classify(ev: dict[str, Any], window_s: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per false alarm (what preceded it, what was on at its start) and the summary counts."""
    scs = scenarios_of(ev)
    rows: list[dict[str, Any]] = []
    for fa in ev["false_alarm_list"]:
        sc, t = scs[fa["recording"]], float(fa["t"])
        before = sorted({b.kind for b in [*sc.behaviours, *sc.events] if overlaps(b, t - window_s, t)})
        at = sorted({e.kind for e in sc.events if overlaps(e, t, t)})
        rows.append({"recording": fa["recording"], "t": round(t, 2), "before": ",".join(before) or "-",
                     "events_at_start": ",".join(at) or "-"})
    n = len(rows)
    turning = [r for r in rows if "turning_over" in r["before"].split(",")]
    summary = {
        "false_alarms": n,
        "window_s": window_s,
        "definition_before": f"interval overlaps [t - {window_s:g} s, t], t = alarm start",
        "definition_at": "t inside the event's interval",
        "preceded_by_kind": dict(Counter(k for r in rows for k in r["before"].split(",") if k != "-")),
        "nothing_scheduled_before": sum(r["before"] == "-" for r in rows),
        "preceded_by_turning_over": len(turning),
        "preceded_by_turning_over_and_caregiver": sum("caregiver" in r["before"].split(",") for r in turning),
        "preceded_by_turning_over_and_caregiver_at_start":
            sum("caregiver" in r["events_at_start"].split(",") for r in turning),
        "caregiver_at_start": sum("caregiver" in r["events_at_start"].split(",") for r in rows),
    }
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_json", type=Path, help="a `ward eval --json` file (e.g. docs/results/eval_24h.json)")
    ap.add_argument("--window-s", type=float, default=30.0, help="how far before an alarm a cause may lie")
    add_json_option(ap, "eval_false_alarms")
    args = ap.parse_args()
    if not args.eval_json.is_file():
        ap.error(f"{args.eval_json}: no such file; pass a JSON written by `ward eval --json`")
    ev = json.loads(args.eval_json.read_text())
    if "false_alarm_list" not in ev:
        ap.error(f"{args.eval_json} has no false_alarm_list; pass a JSON written by `ward eval --json`")
    rows, summary = classify(ev, args.window_s)
    report("eval_false_alarms", rows, {"eval_json": str(args.eval_json), "summary": summary}, json_path=args.json)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
