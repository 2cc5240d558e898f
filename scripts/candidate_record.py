"""The record of a VSViG candidate judged on validation: docs/results/train_<name>_candidate.json.

    .venv/bin/python scripts/candidate_record.py --what "..." --ckpt RUN/best.pt \
        --val-json VAL.json --val-command "ward eval ..." --streams VAL.npz \
        --tune-json TUNE.json --tune-command "ward eval-tune ..." \
        [--extra "label=TUNE.json" ...] --out docs/results/train_<name>_candidate.json

Collects, for a candidate that may or may not be shipped: its training command and history (from the
checkpoint's metadata), its 24 h validation run under the shipped rule (with the causes of its false
alarms, rebuilt from the scenario seeds as in benchmarks/eval_false_alarms.py), the best rule under each
false-alarm cap (`ward eval-tune --curve`), and how often p stays above 0.6 during each kind of behaviour
(the `behaviour_profile`: share of events whose p, 5/10/20 s after the start, exceeds 0.6).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_false_alarms import classify, scenarios_of  # noqa: E402

OFFSETS_S = (5, 10, 20)


def behaviour_profile(ev: dict[str, Any], streams: Path, threshold: float = 0.6) -> dict[str, Any]:
    """Per behaviour/event kind on seizure-free streams: n and the share with p > threshold at each offset."""
    scs = scenarios_of(ev)
    z = np.load(streams, allow_pickle=False)
    hits: dict[str, list[np.ndarray]] = {}
    for key in sorted({k.split("/")[0] for k in z.files if "/" in k}, key=int):
        meta = json.loads(str(z[f"{key}/meta"]))
        if meta["seizures"]:
            continue
        t, p = z[f"{key}/t_end"], z[f"{key}/p"]
        for b in [*scs[f"seed{meta['seed']}"].behaviours, *scs[f"seed{meta['seed']}"].events]:
            idx = np.searchsorted(t, b.start_s + np.asarray(OFFSETS_S, float))
            if (idx < len(t)).all():
                hits.setdefault(b.kind, []).append(p[idx] > threshold)
    return {"threshold": threshold, "offsets_s": list(OFFSETS_S),
            "kinds": {k: {"n": len(v), "share_above": [round(float(x), 3) for x in np.mean(v, axis=0)]}
                      for k, v in sorted(hits.items())}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("what", "ckpt", "val-json", "val-command", "streams", "tune-json", "tune-command", "out"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--extra", action="append", default=[], help="label=TUNE.json: another curve to keep")
    a = ap.parse_args(argv)
    md = torch.load(a.ckpt, map_location="cpu", weights_only=True)["metadata"]
    ev = json.loads(Path(a.val_json).read_text())
    _, causes = classify(ev, 30.0)

    def curve(path: str) -> list[dict[str, Any]]:
        return [{k: r.get(k) for k in ("max_false_alarms_per_24h", "sensitivity", "false_alarms_per_24h",
                                       "median_latency_after_eeg_s", "median_advance_before_clinical_s",
                                       "per_type_sensitivity", "rule")}
                for r in json.loads(Path(path).read_text())["operating_points"]]

    rec = {
        "what": a.what,
        **{k: md.get(k) for k in ("command", "notes", "averaged_from", "precision", "precision_choice",
                                  "train_config", "data_manifest_sha256", "history") if md.get(k) is not None},
        "validation_24h": {
            "command": a.val_command, "rule": ev.get("rule_source"), "sensitivity": ev["sensitivity"],
            "false_alarms_per_24h": ev["false_alarms_per_24h"], "false_alarms": ev["false_alarms"],
            "review_events_per_24h": ev["review_events_per_24h"], "clip_rmse": ev.get("clip_rmse"),
            "per_type_detected": {t: f"{v['n_detected']}/{v['n_seizures']}" for t, v in ev["per_type"].items()},
            "false_alarm_causes": causes,
            "behaviour_profile": behaviour_profile(ev, Path(a.streams)),
        },
        "operating_points": {"command": a.tune_command, "points": curve(a.tune_json)},
        "other_curves": {lab: curve(path) for lab, path in (e.split("=", 1) for e in a.extra)},
    }
    Path(a.out).write_text(json.dumps(rec, indent=1, default=str) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
