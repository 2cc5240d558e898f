"""`ward eval` as a long benchmark: parallel scoring processes (--jobs), a resumable cache (--cache),
and the same result keys on the fast and the full path. Tiny scenarios, the shipped models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ward.evaluation.run import EvalConfig, EvalInterrupted, replay_eval, run_eval

ROOT = Path(__file__).resolve().parents[1]
VSVIG = str(ROOT / "models" / "ward-vsvig-light.pt")
POSE = str(ROOT / "models" / "ward-pose-small.pt")
# one seizure scenario (myoclonic: the shortest) and 40 s of seizure-free footage in two scenarios,
# at a small frame size; validation-range seed
TINY = EvalConfig(seed=800_700, hours=40 / 3600, chunk_s=20, seizures_per_type=1, seizure_types=("myoclonic",),
                  width=256, height=144, vsvig=VSVIG, pose=POSE, threads=1)
SAME = ("sensitivity", "false_alarms", "false_alarms_per_24h", "review_events_per_24h", "n_clips",
        "hours_non_seizure", "clip_rmse", "scenario_seeds", "seizures", "false_alarm_list")


def _quiet(_: str) -> None:
    pass


def _same(a: dict, b: dict) -> None:
    for k in SAME:
        assert a[k] == b[k], k
    assert a["baseline"]["threshold_power"] == b["baseline"]["threshold_power"]


def test_two_jobs_give_the_single_process_result(tmp_path):
    one = run_eval(TINY, log=_quiet, progress=False, streams_path=tmp_path / "one.npz")
    two = run_eval(replace(TINY, jobs=2, threads=None), log=_quiet, progress=False, streams_path=tmp_path / "two.npz")
    _same(one, two)
    assert two["throughput"]["jobs"] == 2 and two["throughput"]["threads_per_job"] >= 1
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "two.npz") as b:
        for k in a.files:
            if k != "info":
                assert np.array_equal(a[k], b[k]), k  # bit-identical streams, in the same order
    with pytest.raises(ValueError, match="do not pass model="):
        run_eval(replace(TINY, jobs=2), log=_quiet, progress=False, model=object())


def test_an_interrupted_cached_run_resumes_to_the_uninterrupted_result(tmp_path):
    cache = tmp_path / "cache"
    whole = run_eval(TINY, log=_quiet, progress=False)
    with pytest.raises(EvalInterrupted):
        run_eval(TINY, log=_quiet, progress=False, cache_dir=cache, stop_after=2)
    assert len(list(cache.glob("scenario_*.npz"))) == 2 and not list(cache.glob(".*tmp*"))
    lines: list[str] = []
    resumed = run_eval(TINY, log=lines.append, progress=False, cache_dir=cache)
    assert any("2 of 3 scenarios already scored, resuming" in s for s in lines), lines
    _same(whole, resumed)
    assert resumed["throughput"]["frames_scored_now"] < resumed["throughput"]["frames"]
    # the cache is a streams folder: replayed under the same rule it gives the same metrics
    again = replay_eval(cache, TINY, log=_quiet)
    for k in ("sensitivity", "false_alarms", "n_clips", "clip_rmse"):
        assert again[k] == resumed[k], k
    # other settings (here the pose noise; likewise other weights or engines) are refused, naming the field
    with pytest.raises(ValueError, match="pose_noise"):
        run_eval(replace(TINY, noise=replace(TINY.noise, jitter_px=3.0)), log=_quiet, progress=False, cache_dir=cache)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a `ward eval --cache` folder"):
        run_eval(TINY, log=_quiet, progress=False, cache_dir=tmp_path / "other")


def test_fast_and_full_path_report_the_same_keys():
    cfg = replace(TINY, hours=20 / 3600, seizures_per_type=0)  # the pose network on 120 frames
    fast = run_eval(cfg, log=_quiet, progress=False)
    full = run_eval(replace(cfg, fast=False), log=_quiet, progress=False)

    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k not in ("per_type", "engine", "rule", "pose_noise"):
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(fast) == keys(full)
    assert fast["path"] == "fast" and full["path"] == "full" and full["engine"]["pose"] is not None
    assert full["n_clips"] == fast["n_clips"] and full["throughput"]["frames"] == fast["throughput"]["frames"]
