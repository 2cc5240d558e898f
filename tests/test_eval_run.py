"""`ward eval` pipeline: pose noise, latency/false-alarm arithmetic on known streams, a tiny end-to-end run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ward.config import RuleConfig
from ward.evaluation.metrics import evaluate
from ward.evaluation.run import (EVAL_SEED, MIRROR_18, EvalConfig, PoseNoise, clip_ends, eval_scenarios,
                                 noisy_keypoints, recordings_for, run_eval)
from ward.sim.scenario import Scenario, SeizureSpec

ROOT = Path(__file__).resolve().parents[1]


def test_noisy_keypoints_jitter_drop_and_swap_rates():
    rng = np.random.default_rng(0)
    n = 4000
    gt = np.zeros((n, 18, 3), np.float32)
    gt[..., 0] = np.arange(18) * 10.0
    gt[..., 1] = 100.0
    gt[..., 2] = 1.0
    gt[:, 3, 2] = 0.0  # a hidden joint stays hidden
    k = noisy_keypoints(gt, rng, PoseNoise(jitter_px=2.0, p_drop=0.1, p_swap=0.05))
    vis = k[..., 2] > 0
    kept = vis[:, [0, 1]]  # nose and neck never swap
    assert 1 - kept.mean() == pytest.approx(0.1, abs=0.02)
    assert np.all(k[~vis][:, :2] == 0)
    err = k[:, 0, 1][vis[:, 0]] - 100.0
    assert err.std() == pytest.approx(2.0, rel=0.1)
    # a swapped frame puts the left shoulder (5) where the right one (2) was
    swapped = np.abs(k[:, 5, 0] - 20.0) < 8
    assert swapped.mean() == pytest.approx(0.05, abs=0.02)


def _scored(times: np.ndarray, p: np.ndarray) -> dict:
    return {"t_end": times, "p": p, "target": np.zeros_like(p), "baseline": np.zeros_like(p)}


def _tonic_and_quiet(seeds: tuple[int, int]):
    """A 120 s recording with a tonic seizure (EEG 50 s, clinical 60 s, end 80 s; p = 0.9 over
    [50, 85) s) and a 600 s seizure-free one at p = 0.05: (scenarios, t1, p1, t2, p2)."""
    sz = Scenario(seed=seeds[0], duration_s=120, fps=6,
                  seizures=[SeizureSpec(type="tonic", eeg_onset_s=50, clinical_onset_s=60, end_s=80)])
    quiet = Scenario(seed=seeds[1], duration_s=600, fps=6)
    t1 = clip_ends(120 * 6) / 6.0
    p1 = np.where((t1 >= 50) & (t1 < 85), 0.9, 0.05)
    t2 = clip_ends(600 * 6) / 6.0
    return [sz, quiet], t1, p1, t2, np.full(t2.shape, 0.05)


def test_latency_advance_and_false_alarm_arithmetic():
    (sz, quiet), t1, p1, t2, p2 = _tonic_and_quiet((1, 2))
    p2[(t2 >= 100) & (t2 < 102)] = 1.0   # 2 s spike: no alarm
    p2[(t2 >= 300) & (t2 < 312)] = 0.9   # sustained: one false alarm
    recs = recordings_for([_scored(t1, p1), _scored(t2, p2)], [sz, quiet], "p", RuleConfig())
    res = evaluate(recs)
    # first sample at or after the EEG onset is t = 29/6 + 46 = 50.833 s; with p = 0.9 the evidence is
    # e = 0.5/0.6 and A = e(1 - exp(-n/3)) after n one-second samples: A >= 0.55 from n = 4 (0.611),
    # i.e. at the sample 3 s after the first one, plus min_duration 1 s -> alarm at 50.833 + 4 = 54.833 s
    first = 29 / 6 + 46
    assert res["seizures"][0]["alarm_t"] == pytest.approx(first + 4)
    assert res["median_latency_after_eeg_s"] == pytest.approx(first + 4 - 50)
    assert res["median_advance_before_clinical_s"] == pytest.approx(60 - (first + 4))
    assert res["sensitivity"] == 1.0
    assert res["false_alarms"] == 1
    assert res["false_alarm_list"][0]["t"] == pytest.approx(29 / 6 + 296 + 4)
    non_seizure_s = (120 - (120 - 50)) + 600  # window [50, 80 + 60] clipped to the 120 s recording
    assert res["hours_non_seizure"] == pytest.approx(non_seizure_s / 3600)
    assert res["false_alarms_per_24h"] == pytest.approx(86400 / non_seizure_s)


def test_eval_seeds_are_held_out_and_seed_option_changes_them():
    cfg = EvalConfig(hours=0.05, seizures_per_type=1, chunk_s=90)
    default = [s.seed for s in eval_scenarios(cfg)]
    assert min(default) > EVAL_SEED and len(default) == 5 + 2
    other = [s.seed for s in eval_scenarios(EvalConfig(seed=7, hours=0.05, seizures_per_type=1, chunk_s=90))]
    assert not set(default) & set(other)
    assert all(s < 1000 or s >= 4000 for s in other)  # never a training seed
    sc = eval_scenarios(cfg)
    assert [len(s.seizures) for s in sc] == [1] * 5 + [0, 0]
    assert sum(s.duration_s for s in sc[5:]) == pytest.approx(180)


class _Constant(torch.nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, patches: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        assert patches.shape[1:] == (30, 15, 3, 32, 32) and kpts.shape[1:] == (30, 15, 3)
        return torch.full((patches.shape[0],), self.p)


def test_run_eval_end_to_end_with_known_alarm_times(tmp_path):
    cfg = EvalConfig(hours=20 / 3600, seizures_per_type=1, seizure_types=("myoclonic",), width=256, height=144,
                     threads=2)
    js, png = tmp_path / "eval.json", tmp_path / "traces.png"
    lines: list[str] = []
    res = run_eval(cfg, json_path=js, png_path=png, log=lines.append, model=_Constant(0.9), progress=False)
    assert any(f"evaluation seed {EVAL_SEED}" in s for s in lines)
    data = json.loads(js.read_text())
    for key in ("sensitivity", "median_latency_after_eeg_s", "median_advance_before_clinical_s",
                "false_alarms_per_24h", "hours_non_seizure", "per_type", "baseline", "eval_seed", "scenario_seeds"):
        assert key in data
    # p = 0.9 from the first clip: the first sample (29/6 s) sets the reference, A crosses 0.55 four
    # samples later and the alarm starts one more second later, at 29/6 + 5 s, in both recordings:
    # before the seizure's EEG onset (>= 30 s), so a false alarm there too; it never ends, so the
    # seizure itself is missed.
    assert [a["t"] for a in res["false_alarm_list"]] == pytest.approx([29 / 6 + 5] * 2)
    assert res["sensitivity"] == 0.0 and res["per_type"]["myoclonic"]["n_seizures"] == 1
    assert res["false_alarms_per_24h"] == pytest.approx(2 / (res["hours_non_seizure"] * 3600) * 86400)
    assert res["clip_rmse"] > 0 and res["baseline"]["n_seizures"] == 1
    assert res["baseline"]["at_default_threshold"]["n_seizures"] == 1
    assert png.stat().st_size > 1000


def _two_recordings():
    scenarios, t1, p1, t2, p2 = _tonic_and_quiet((800001, 810000))  # validation-range seeds
    p2[(t2 >= 300) & (t2 < 305)] = 0.75  # 5 s of moderate risk: an alarm only for a permissive rule
    return scenarios, [_scored(t1, p1), _scored(t2, p2)]


def test_saved_streams_replay_to_the_same_metrics_and_tuning_ranks_false_alarms_first(tmp_path):
    from ward.evaluation.run import evaluate_streams, load_streams, save_streams
    from ward.evaluation.tune import tune_rule

    scenarios, scored = _two_recordings()
    path = tmp_path / "val.npz"
    save_streams(path, scored, scenarios, 800000)
    streams = load_streams(path)
    assert [m["seed"] for m, _ in streams] == [800001, 810000]
    assert streams[0][0]["seizures"] == [["tonic", 50.0, 60.0, 80.0]]
    permissive = RuleConfig(p_floor=0.2, alarm_threshold=0.4, release_threshold=0.2, min_duration_s=0.0)
    for rule in (RuleConfig(), permissive):
        direct = evaluate(recordings_for(scored, scenarios, "p", rule))
        replay = evaluate_streams(streams, rule)
        for k in ("sensitivity", "false_alarms", "median_latency_after_eeg_s"):
            assert replay[k] == direct[k]
    assert evaluate_streams(streams, permissive)["false_alarms"] == 1  # the 5 s bump fires it
    rows = tune_rule(streams, grid={"p_floor": (0.2, 0.4), "alarm_threshold": (0.4, 0.55),
                                    "min_duration_s": (0.0, 1.0)})
    assert len(rows) == 8
    best = rows[0]
    assert best["false_alarms_per_24h"] == 0 and best["sensitivity"] == 1.0
    # among the rules without false alarms that detect the seizure, the fastest comes first
    clean = [r for r in rows if r["false_alarms_per_24h"] == 0 and r["sensitivity"] == 1.0]
    assert best["median_latency_after_eeg_s"] == min(r["median_latency_after_eeg_s"] for r in clean)
    assert any(r["false_alarms_per_24h"] > 0 for r in rows)  # the grid did contain worse rules


def test_eval_tune_cli_refuses_evaluation_seeds_and_writes_the_best_rule(tmp_path):
    import typer
    from typer.testing import CliRunner

    from ward.evaluation.run import save_streams
    from ward.evaluation.cli import register

    app = typer.Typer()
    register(app)

    scenarios, scored = _two_recordings()
    val = tmp_path / "val.npz"
    save_streams(val, scored, scenarios, 800000)
    out = tmp_path / "rule.yaml"
    r = CliRunner().invoke(app, ["eval-tune", str(val), "--out", str(out), "--top", "3"])
    assert r.exit_code == 0, r.output
    chosen = RuleConfig.model_validate(__import__("yaml").safe_load(out.read_text()))
    assert evaluate_streams_from(val, chosen)["false_alarms"] == 0
    test = tmp_path / "test.npz"
    bad = [Scenario(seed=EVAL_SEED + 1, duration_s=120, fps=6, seizures=scenarios[0].seizures), scenarios[1]]
    save_streams(test, scored, bad, EVAL_SEED)
    r = CliRunner().invoke(app, ["eval-tune", str(test)])
    assert r.exit_code != 0 and "never on the test seeds" in r.output


def evaluate_streams_from(path, rule):
    from ward.evaluation.run import evaluate_streams, load_streams

    return evaluate_streams(load_streams(path), rule)


def test_replay_of_saved_streams_reproduces_the_run_and_applies_another_rule(tmp_path):
    from ward.evaluation.run import replay_eval

    cfg = EvalConfig(hours=20 / 3600, seizures_per_type=1, seizure_types=("myoclonic",), width=256, height=144,
                     threads=2)
    streams = tmp_path / "s.npz"
    res = run_eval(cfg, log=lambda s: None, model=_Constant(0.9), progress=False, streams_path=streams)
    again = replay_eval(streams, cfg, json_path=tmp_path / "r.json", log=lambda s: None)
    for k in ("sensitivity", "false_alarms", "false_alarms_per_24h", "hours_non_seizure", "clip_rmse", "n_clips"):
        assert again[k] == pytest.approx(res[k]), k
    assert again["baseline"]["threshold_power"] == res["baseline"]["threshold_power"]
    assert again["replayed_from"] == [str(streams)] and again["eval_seed"] == EVAL_SEED
    # the SzCORE cross-check (issue 16 item 5) travels with both paths; mirrored, it counts what ward counts
    for r in (res, again):
        cc = r["szcore"]
        assert set(cc) >= {"ward", "szcore_default", "szcore_mirrored", "mirrored_agrees", "conventions"}
        assert cc["ward"]["false_alarms"] == res["false_alarms"] == cc["szcore_mirrored"]["false_alarms"]
    assert again["szcore"] == res["szcore"] and res["szcore"]["mirrored_agrees"]
    assert json.loads((tmp_path / "r.json").read_text())["false_alarms"] == res["false_alarms"]
    # a rule that cannot fire on p = 0.9 (floor above it): the two false alarms disappear
    deaf = replay_eval(streams, EvalConfig(rule=RuleConfig(p_floor=0.95)), log=lambda s: None)
    assert res["false_alarms"] == 2 and deaf["false_alarms"] == 0
    assert deaf["rule"]["p_floor"] == 0.95 and deaf["path"] == "fast"


def test_sharded_runs_merge_into_the_unsharded_result(tmp_path):
    from ward.evaluation.run import replay_eval

    cfg = EvalConfig(hours=20 / 3600, seizures_per_type=1, seizure_types=("myoclonic", "tonic"), width=256,
                     height=144, threads=1)
    whole = run_eval(cfg, log=lambda s: None, model=_Constant(0.9), progress=False, streams_path=tmp_path / "w.npz")
    parts = []
    for k in range(2):
        path = tmp_path / f"s{k}.npz"
        run_eval(replace(cfg, shard=(k, 2)), log=lambda s: None, model=_Constant(0.9), progress=False,
                 streams_path=path)
        parts.append(path)
    merged = replay_eval(parts, cfg, log=lambda s: None)
    assert merged["scenario_seeds"] == sorted(whole["scenario_seeds"])
    for key in ("false_alarms", "n_clips", "hours_non_seizure", "clip_rmse", "sensitivity"):
        assert merged[key] == pytest.approx(whole[key]), key
    with pytest.raises(ValueError, match="appears in two streams files"):
        replay_eval([parts[0], parts[0]], cfg, log=lambda s: None)
    with pytest.raises(ValueError, match="0 <= K < N"):
        run_eval(replace(cfg, shard=(2, 2)), log=lambda s: None, model=_Constant(0.9), progress=False)


def test_eval_cli_uses_the_shipped_rule_by_default_and_says_so(tmp_path, monkeypatch):
    """Without --rule, `ward eval` judges the rule the ward serves (serve_configs/ward.yaml), not RuleConfig()."""
    import typer
    import yaml
    from typer.testing import CliRunner

    from ward.evaluation.cli import register

    shipped_yaml = yaml.safe_load((ROOT / "serve_configs" / "ward.yaml").read_text())
    shipped = RuleConfig.model_validate(shipped_yaml["applications"][0]["args"]["rules"])
    assert shipped != RuleConfig()  # otherwise this test could not tell the two apart
    cfg = EvalConfig(hours=20 / 3600, seizures_per_type=1, seizure_types=("myoclonic",), width=256, height=144,
                     threads=1)
    streams = tmp_path / "s.npz"
    run_eval(cfg, log=lambda s: None, model=_Constant(0.9), progress=False, streams_path=streams)
    app = typer.Typer()
    register(app)
    monkeypatch.chdir(tmp_path)  # not the repository root: the shipped rule is still found
    r = CliRunner().invoke(app, ["eval", "--replay", str(streams), "--json", "default.json"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "default.json").read_text())
    assert RuleConfig.model_validate(got["rule"]) == shipped
    assert "serve_configs/ward.yaml" in got["rule_source"] and "serve_configs/ward.yaml" in r.output
    r = CliRunner().invoke(app, ["eval", "--replay", str(streams), "--json", "builtin.json", "--rule", "defaults"])
    assert r.exit_code == 0, r.output
    got = json.loads((tmp_path / "builtin.json").read_text())
    assert RuleConfig.model_validate(got["rule"]) == RuleConfig() and "built-in" in got["rule_source"]
    r = CliRunner().invoke(app, ["eval", "--replay", str(streams), "--rule", "no-such-rule.yaml"])
    assert r.exit_code != 0 and "rule file not found: no-such-rule.yaml" in r.output


def test_run_eval_on_an_engine_scores_as_before_and_says_which_ran(tmp_path):
    """backend torch fp32 (the scorer, BN folded) gives the metrics of the plain torch VSViG the
    benchmark ran before the engines; the result (and JSON) names the engine."""
    from ward.vision.vsvig import load_vsvig

    weights = str(ROOT / "models" / "ward-vsvig-light.pt")
    cfg = EvalConfig(hours=20 / 3600, seizures_per_type=1, seizure_types=("myoclonic",), width=256, height=144,
                     threads=1, vsvig=weights, vsvig_engine=("torch", "fp32"))
    lines: list[str] = []
    res = run_eval(cfg, json_path=tmp_path / "e.json", log=lines.append, progress=False)
    before = run_eval(cfg, log=lambda s: None, model=load_vsvig(weights), progress=False)
    assert res["engine"]["vsvig"]["backend"] == "torch" and res["engine"]["vsvig"]["precision"] == "fp32"
    assert res["engine"]["pose"] is None and before["engine"]["vsvig"] is None  # fast path; a given model
    assert json.loads((tmp_path / "e.json").read_text())["engine"] == res["engine"]
    assert any(s.startswith("engines: vsvig torch fp32 on cpu") for s in lines), lines
    for key in set(res) - {"engine", "seconds", "clip_rmse", "throughput"}:
        assert res[key] == before[key], key
    assert res["clip_rmse"] == pytest.approx(before["clip_rmse"], abs=1e-6)  # BN folding: float rounding only


def test_eval_cli_refuses_an_engine_that_cannot_run(tmp_path):
    import typer
    from typer.testing import CliRunner

    from ward.evaluation.cli import register

    app = typer.Typer()
    register(app)
    weights = str(ROOT / "models" / "ward-vsvig-light.pt")
    for opts, msg in ((["--backend", "onnx"], "unknown backend 'onnx'"),
                      (["--backend", "torch", "--precision", "int8"], "precision int8 needs the openvino backend")):
        r = CliRunner().invoke(app, ["eval", "--fast", "--vsvig", weights, "--hours", "0", *opts])
        assert r.exit_code == 2 and msg in " ".join(r.output.split()), r.output
