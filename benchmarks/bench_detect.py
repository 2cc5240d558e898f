"""Decision rule and motion baseline: latency of the default rule on ideal label streams, rule throughput,
and baseline cost per frame.

    .venv/bin/python benchmarks/bench_detect.py [--json PATH]

Rows:
- "rule latency": the rule fed the training label itself (sim/labels.py) at 1 Hz, i.e. a perfect model,
  for EEG-to-clinical gaps of 3-30 s: the rule's own share of detection latency. Also the shortest
  p = 1.0 spike (s) that raises an alarm.
- "rule throughput": samples/s of BedRule.update (one day at 1 Hz, random p).
- "baseline": ms per frame of MotionBaseline.update (streaming) and scores_from_frames (offline, hop 25)
  on 640x360 grayscale at 25 fps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._util import add_json_option, report  # noqa: E402
from ward.alarms.rule import run_rule  # noqa: E402
from ward.config import RuleConfig  # noqa: E402
from ward.evaluation.baseline import MotionBaseline, scores_from_frames  # noqa: E402
from ward.sim.labels import seizure_target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(ap, "detect")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = RuleConfig()
    rows = []
    t = np.arange(0.0, 300.0, 1.0)
    for gap in (3, 5, 10, 15, 20, 30):
        p = seizure_target(t, 100.0, 100.0 + gap, 160.0 + gap)
        a = [e.t for e in run_rule(t, p, cfg) if e.kind == "alarm_start"]
        rows.append({"case": f"rule latency, gap {gap} s", "latency_after_eeg_s": a[0] - 100.0,
                     "advance_before_clinical_s": 100.0 + gap - a[0]})
    spike = next(w for w in np.arange(0.5, 10.01, 0.5) if any(
        e.kind == "alarm_start" for e in run_rule(np.arange(0, 60, 0.1), np.where(
            (np.arange(0, 60, 0.1) >= 10) & (np.arange(0, 60, 0.1) < 10 + w), 1.0, 0.0), cfg)))
    rows.append({"case": "shortest alarming spike of p=1 (s, 10 Hz)", "value": float(spike)})

    day = np.arange(0.0, 86400.0, 1.0)
    probs = np.random.default_rng(0).random(day.size) * 0.6
    t0 = time.perf_counter()
    run_rule(day, probs, cfg)
    dt = time.perf_counter() - t0
    rows.append({"case": "rule throughput (samples/s)", "value": day.size / dt})

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (250, 360, 640), dtype=np.uint8)
    mb = MotionBaseline(25.0)
    for f in frames[:124]:
        mb.update(f)
    t0 = time.perf_counter()
    for f in frames[124:]:
        mb.update(f)
    rows.append({"case": "baseline streaming 640x360 (ms/frame)", "value": (time.perf_counter() - t0) / 126 * 1e3})
    t0 = time.perf_counter()
    scores_from_frames(frames, 25.0, hop=25)
    rows.append({"case": "baseline offline hop 25, 640x360 (ms/frame)",
                 "value": (time.perf_counter() - t0) / len(frames) * 1e3})
    mb = MotionBaseline(25.0, hop=25)
    t0 = time.perf_counter()
    for f in frames:
        mb.update(f)
    rows.append({"case": "baseline streaming hop 25, 640x360 (ms/frame)",
                 "value": (time.perf_counter() - t0) / len(frames) * 1e3})
    report("detect", rows, {"config": cfg.model_dump(), "loadavg": os.getloadavg()}, json_path=args.json)


if __name__ == "__main__":
    main()
