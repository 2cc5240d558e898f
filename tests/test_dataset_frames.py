"""ward.frames/1: generation plan, on-disk round trip, resume/shards, manifest, and training on it.

Tiny: 3-4 scenarios of 20-60 s at 6 fps with ground-truth keypoints + pose noise (--gt-fraction 1;
the pose model path is the eval full path's, tested there), VSViG-light for a few steps."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ward.core.clip import CLIP_FRAMES
from ward.dataset.generate import (ARRAYS, FRAMES_FORMAT, GenerateConfig, generate, load_scenario_arrays, make_scenario,
                                   plan_scenarios)
from ward.sim.behaviours import BEHAVIOURS, SCENE_EVENTS
from ward.sim.seizures import SEIZURE_TYPES


def _cfg(out: Path, **kw) -> GenerateConfig:
    base = dict(out=str(out), patients=3, seed_start=1000, seizure_seconds=60, free_seconds=20, gt_fraction=1.0,
                threads=1, command="test")
    return GenerateConfig(**{**base, **kw})


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frames")
    generate(_cfg(out), log=_quiet)
    return out


def test_plan_balances_types_and_forces_every_hard_negative():
    plan = plan_scenarios(GenerateConfig(out="x", patients=1000))
    types = Counter(p.seizure_type for p in plan)
    assert types["none"] == 400 and all(types[t] == 120 for t in SEIZURE_TYPES)
    free = [p for p in plan if p.seizure_type == "none"]
    assert set(p.forced_behaviour for p in free) == set(BEHAVIOURS)
    assert set(p.forced_event for p in free) == set(SCENE_EVENTS)
    assert all(1000 <= p.seed <= 2999 for p in plan)
    # any shard keeps the mix: types balanced to within one per type
    shard = Counter(p.seizure_type for p in plan[1::4])
    assert max(shard[t] for t in SEIZURE_TYPES) - min(shard[t] for t in SEIZURE_TYPES) <= 1


@pytest.mark.parametrize("start,n", [(999, 2), (2998, 3), (900000, 1), (3000, 1)])
def test_seeds_outside_the_training_range_are_refused(start, n):
    with pytest.raises(ValueError, match="training range 1000-2999"):
        plan_scenarios(GenerateConfig(out="x", patients=n, seed_start=start))


def test_round_trip_mmap_windows_match_the_pipeline_clips(small):
    man = json.loads((small / "manifest.json").read_text())
    assert man["format"] == FRAMES_FORMAT and man["complete"] and man["planned_scenarios"] == 3
    names = [n for v in man["scenarios"].values() for n in v]
    assert len(names) == 3
    total_clips = 0
    for name in names:
        d = small / "scenarios" / name
        a = load_scenario_arrays(d)
        meta = json.loads((d / "meta.json").read_text())
        f = meta["frames"]
        assert all(isinstance(a[k], np.memmap) for k in ARRAYS)
        assert a["patches"].shape == (f, 15, 3, 32, 32) and a["patches"].dtype == np.uint8
        assert a["kpts"].shape == (f, 15, 3) and a["kpts"].dtype == np.float32
        assert a["label"].shape == (f,) and a["phase"].dtype == np.int8 and a["clip_end"].dtype == bool
        ends = np.flatnonzero(a["clip_end"])
        assert len(ends) == meta["clips"] and ends[0] == CLIP_FRAMES - 1 and (np.diff(ends) == 6).all()
        total_clips += len(ends)
        # every frame of every clip holds a patient (ground truth: the patient is always in view)
        assert (np.asarray(a["kpts"][: ends[-1] + 1, :, 2]).sum(-1) > 0).mean() > 0.9
        assert 0 <= float(a["label"].min()) and float(a["label"].max()) <= 1
        if meta["seizure"]:
            s = meta["seizure"]
            t = np.arange(f) / 6.0
            assert (a["phase"][(t >= s["eeg_onset_s"]) & (t < s["clinical_onset_s"])] == 1).all()
            assert float(np.asarray(a["label"])[(t >= s["clinical_onset_s"]) & (t < s["end_s"])].min()) == 1.0
    assert man["counts"]["total"]["clips"] == total_clips
    assert sum(man["counts"][s]["patients"] for s in ("train", "val", "test")) == 3


def test_resume_skips_complete_and_redoes_an_interrupted_scenario(small, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(small, out)
    root = out / "scenarios"
    victim = sorted(p.name for p in root.iterdir())[1]
    before = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    ref = np.load(root / victim / "patches.npy")
    (root / victim).rename(root / f".tmp-{victim}-12345")  # an interrupted run left only a tmp dir
    stats = generate(_cfg(out), log=_quiet)
    assert stats["scenarios"] == 1
    assert not list(root.glob(".tmp-*"))
    assert np.array_equal(np.load(root / victim / "patches.npy"), ref)  # deterministic from the seed
    for name, m in before.items():
        if name != victim:
            assert (root / name).stat().st_mtime_ns == m  # untouched
    assert generate(_cfg(out), log=_quiet)["scenarios"] == 0


def test_shards_union_is_the_whole_and_the_manifest_ends_consistent(small, tmp_path):
    out = tmp_path / "sharded"
    generate(_cfg(out), shard=(1, 2), log=_quiet)
    part = json.loads((out / "manifest.json").read_text())
    assert not part["complete"] and part["counts"]["total"]["patients"] == 1
    generate(_cfg(out), shard=(0, 2), log=_quiet)
    whole, ref = (json.loads((d / "manifest.json").read_text()) for d in (out, small))
    assert whole["complete"] and whole["scenarios"] == ref["scenarios"] and whole["counts"] == ref["counts"]
    assert whole["hard_negative_clips"] == ref["hard_negative_clips"]
    for name in (p.name for p in (small / "scenarios").iterdir()):
        assert np.array_equal(np.load(out / "scenarios" / name / "kpts.npy"),
                              np.load(small / "scenarios" / name / "kpts.npy"))


def test_train_on_frames_resume_restores_identical_state(small, tmp_path):
    from ward.train.frames import FrameSet, frames_epoch_indices
    from ward.train.vsvig import VSViGTrainConfig, train_vsvig

    fs = FrameSet(small, "train")
    p, k, y = fs.take(np.arange(min(3, len(fs))))
    assert p.shape[1:] == (30, 15, 3, 32, 32) and k.shape[1:] == (30, 15, 3) and np.isfinite(k).all()
    if (fs.label > 0).any() and not (fs.label > 0).all():
        idx = frames_epoch_indices(fs, 400, 0.5, 3.0, np.random.default_rng(0))
        assert 0.4 < (fs.label[idx] > 0).mean() < 0.6

    def cfg(out):
        return VSViGTrainConfig(data=str(small), out=str(out), epochs=2, batch_size=4, clips_per_epoch=12, seed=3,
                                threads=1, max_val_clips=8, precision="fp32", command="test")

    straight = train_vsvig(cfg(tmp_path / "a"), max_steps=5, progress=False, log=_quiet)
    assert all(np.isfinite(h["train_mse"]) for h in straight["history"])
    first = train_vsvig(cfg(tmp_path / "b"), max_steps=2, progress=False, log=_quiet)  # stops mid-epoch 1
    assert first["stopped"]
    train_vsvig(cfg(tmp_path / "b"), resume=True, max_steps=5, progress=False, log=_quiet)
    sa = torch.load(tmp_path / "a" / "last.ckpt", weights_only=False)
    sb = torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)
    assert sa["step"] == sb["step"] == 5
    for key, v in sa["model"].items():
        assert torch.equal(v, sb["model"][key]), key
    md = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["metadata"]
    assert md["precision"] == "fp32" and md["data_info"]["format"] == FRAMES_FORMAT and md["train_clips_per_s"] > 0


def test_hard_negative_frames_cover_behaviours_events_and_the_time_after():
    from ward.train.frames import hard_negative_frames

    meta = {"fps": 2.0, "behaviours": [{"kind": "turning_over", "start_s": 2.0, "duration_s": 1.0}],
            "events": [{"kind": "compression", "start_s": 0.0, "duration_s": 30.0},
                       {"kind": "camera_shake", "start_s": 20.0, "duration_s": 1.0}]}
    hard = hard_negative_frames(meta, 60, after_s=3.0)  # 30 s at 2 fps
    t = np.arange(60) / 2.0
    expect = ((t >= 2.0) & (t < 6.0)) | ((t >= 20.0) & (t < 24.0))  # compression ignored
    assert np.array_equal(hard, expect)


def test_hard_kinds_narrow_the_hard_set_and_unknown_kinds_are_refused():
    from ward.train.frames import check_hard_kinds, hard_negative_frames

    meta = {"fps": 2.0, "behaviours": [{"kind": "turning_over", "start_s": 2.0, "duration_s": 1.0},
                                       {"kind": "scratching", "start_s": 10.0, "duration_s": 1.0}],
            "events": [{"kind": "camera_shake", "start_s": 20.0, "duration_s": 1.0}]}
    t = np.arange(60) / 2.0
    only = hard_negative_frames(meta, 60, after_s=3.0, kinds=("turning_over",))
    assert np.array_equal(only, (t >= 2.0) & (t < 6.0))
    shake = hard_negative_frames(meta, 60, after_s=3.0, kinds=("camera_shake", "sitting_up"))
    assert np.array_equal(shake, (t >= 20.0) & (t < 24.0))
    every = hard_negative_frames(meta, 60, after_s=3.0)
    assert np.array_equal(every, only | shake | ((t >= 10.0) & (t < 14.0)))
    with pytest.raises(ValueError, match="turning_ovr.*turning_over"):
        check_hard_kinds(["turning_ovr"])
    with pytest.raises(ValueError, match="compression"):  # not an event to learn: refused, named
        check_hard_kinds(["compression"])
    assert check_hard_kinds(None) is None and check_hard_kinds(["sitting_up"]) == ("sitting_up",)


def test_hard_negative_weight_draws_hard_clips_more_often(small):
    from types import SimpleNamespace

    from ward.train.frames import FrameSet, frames_epoch_indices

    for split in ("train", "val", "test"):
        fs = FrameSet(small, split)
        assert fs.hard.shape == fs.label.shape and not (fs.hard & (fs.label > 0)).any()  # only label-0 clips
    # the sampler alone, on windows with known labels: 300 seizure, 300 hard and 1400 calm label-0 windows
    label = np.r_[np.ones(300), np.zeros(1700)].astype(np.float32)
    hard = np.r_[np.zeros(300, bool), np.ones(300, bool), np.zeros(1400, bool)]
    sets = SimpleNamespace(label=label, hard=hard, phase=np.where(label > 0, 2, 0).astype(np.int8),
                           seizure_type=np.where(label > 0, "tonic", "none"))
    share = {}
    for w in (1.0, 8.0):
        idx = frames_epoch_indices(_Sized(sets), 6000, 0.4, 3.0, np.random.default_rng(1), hard_negative_weight=w)
        assert 0.37 < (label[idx] > 0).mean() < 0.43  # the seizure share is untouched
        share[w] = hard[idx[label[idx] <= 0]].mean()
    assert abs(share[1.0] - 300 / 1700) < 0.03  # weight 1: the natural mix
    assert abs(share[8.0] - 2400 / 3800) < 0.03  # weight 8: 8 x 300 against 1400
    with pytest.raises(ValueError, match="hard_negative_weight"):
        frames_epoch_indices(_Sized(sets), 10, 0.4, 3.0, np.random.default_rng(0), hard_negative_weight=0)


def test_mined_negatives_replace_only_label0_draws_and_follow_the_loss():
    from ward.train.vsvig import mine_negatives

    labels = np.r_[np.ones(100), np.zeros(900)].astype(np.float32)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 1000, 5000)
    pool = np.arange(100, 1000)
    p_pool = np.where(pool < 150, 0.9, 0.03)  # 50 clips the model would alarm on
    out = mine_negatives(idx, labels, 0.5, pool, p_pool, rng)
    pos = labels[idx] > 0
    assert np.array_equal(out[pos], idx[pos])  # seizure draws untouched
    changed = out != idx
    assert abs(changed.sum() - 0.5 * (~pos).sum()) <= 0.02 * (~pos).sum()  # half the label-0 draws (a few redrawn alike)
    assert (labels[out] <= 0).sum() == (~pos).sum()
    # weights p^2: 50 x 0.81 against 850 x 0.0009, so about 98 % of the mined draws are the 50 loud clips
    assert ((out[changed] >= 100) & (out[changed] < 150)).mean() > 0.95
    assert np.array_equal(mine_negatives(idx, labels, 0.0, pool, p_pool, rng), idx)
    with pytest.raises(ValueError, match="mine_fraction"):
        mine_negatives(idx, labels, 1.5, pool, p_pool, rng)


def test_training_with_mining_resumes_to_the_same_weights(small, tmp_path):
    from ward.train.vsvig import VSViGTrainConfig, train_vsvig

    def cfg(out):
        return VSViGTrainConfig(data=str(small), out=str(out), epochs=2, batch_size=4, clips_per_epoch=12, seed=5,
                                threads=1, max_val_clips=8, precision="fp32", command="test", mine_fraction=0.5,
                                mine_pool=16, hard_negative_weight=3.0)

    straight = train_vsvig(cfg(tmp_path / "a"), max_steps=5, progress=False, log=_quiet)
    assert "mine_pool_mean_p" in straight["history"][0]
    train_vsvig(cfg(tmp_path / "b"), max_steps=4, progress=False, log=_quiet)  # stops in epoch 2
    train_vsvig(cfg(tmp_path / "b"), resume=True, max_steps=5, progress=False, log=_quiet)
    sa, sb = (torch.load(tmp_path / d / "last.ckpt", weights_only=False) for d in ("a", "b"))
    for key, v in sa["model"].items():
        assert torch.equal(v, sb["model"][key]), key


def test_hard_kinds_reach_the_frame_set_and_a_bad_kind_stops_training_before_it_starts(small, tmp_path):
    from ward.train.frames import FrameSet
    from ward.train.vsvig import VSViGTrainConfig, train_vsvig

    # the seizure-free patient (val split) turns over while a caregiver is at the bed
    every = FrameSet(small, "val").hard
    turning = FrameSet(small, "val", hard_kinds=("turning_over",)).hard
    caregiver = FrameSet(small, "val", hard_kinds=("caregiver",)).hard
    assert every.any() and np.array_equal(turning | caregiver, every)
    assert not FrameSet(small, "val", hard_kinds=("sitting_up",)).hard.any()
    cfg = VSViGTrainConfig(data=str(small), out=str(tmp_path / "x"), epochs=1, batch_size=4, clips_per_epoch=8,
                           threads=1, precision="fp32", command="test", hard_negative_kinds=("tossing",))
    with pytest.raises(ValueError, match="tossing"):
        train_vsvig(cfg, progress=False, log=_quiet)
    assert not (tmp_path / "x").exists()


class _Sized:
    """A stand-in FrameSet for the sampler: its per-window arrays, and len()."""

    def __init__(self, ns) -> None:
        self.label, self.hard, self.phase, self.seizure_type = ns.label, ns.hard, ns.phase, ns.seizure_type

    def __len__(self) -> int:
        return len(self.label)


def test_resume_refuses_other_data(small, tmp_path):
    from ward.train.vsvig import VSViGTrainConfig, train_vsvig

    c = VSViGTrainConfig(data=str(small), out=str(tmp_path / "r"), epochs=1, batch_size=4, clips_per_epoch=4,
                         threads=1, max_val_clips=4, precision="fp32", command="test")
    train_vsvig(c, max_steps=1, progress=False, log=_quiet)
    other = tmp_path / "other"
    shutil.copytree(small, other)
    man = json.loads((other / "manifest.json").read_text())
    man["counts"]["total"]["clips"] += 1
    (other / "manifest.json").write_text(json.dumps(man))
    c.data = str(other)
    with pytest.raises(ValueError, match="other data"):
        train_vsvig(c, resume=True, max_steps=2, progress=False, log=_quiet)


def test_uncovered_patients_show_their_legs_to_the_simulator_ground_truth():
    from ward.sim.render import SimCamera

    cfg = GenerateConfig(out="x", patients=1000, free_seconds=20)
    plan = plan_scenarios(cfg)
    share = np.mean([p.uncovered for p in plan])
    assert 0.25 < share < 0.35
    legs = slice(8, 14)  # OpenPose-18 hips, knees, ankles
    covered = next(p for p in plan if not p.uncovered and p.seizure_type == "none")
    uncovered = next(p for p in plan if p.uncovered and p.seizure_type == "none")
    vis = {p.uncovered: (SimCamera(make_scenario(p, cfg)).track()["kpts"][:, legs, 2] > 0).mean()
           for p in (covered, uncovered)}
    assert vis[True] > 0.8 and vis[False] < 0.2


def test_contact_sheet_draws_every_seizure_type_and_kind_present(small, tmp_path):
    from ward.dataset.sheet import _pick_rows, contact_sheet

    rows = _pick_rows(small, per_kind=1)
    man = json.loads((small / "manifest.json").read_text())
    types = {t for s in ("train", "val", "test") for t in man["counts"][s]["clips_by_type"]} - {"none"}
    assert {r[0].split(" (")[0] for r in rows} >= types
    out = contact_sheet(small, tmp_path / "sheet.png", per_kind=1, n_frames=4)
    assert out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no manifest"):
        contact_sheet(tmp_path, tmp_path / "x.png")


def test_precision_choice_is_explicit_or_measured():
    from ward.train.precision import choose_precision

    dev = torch.device("cpu")
    assert choose_precision("fp32", None, (), dev)[0] == "fp32"  # type: ignore[arg-type]
    assert choose_precision("bf16", None, (), dev)[0] == "bf16"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        choose_precision("fp16", None, (), dev)  # type: ignore[arg-type]
