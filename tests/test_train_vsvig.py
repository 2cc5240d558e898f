"""VSViG training: it learns a trivially separable set, checkpoints round-trip and resume, augmentation keeps parts.

ward's training has no mixed-precision (bf16 autocast) option, so training is tested in fp32 only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ward.core.keypoints import VSVIG_15
from ward.train.vsvig import (VSViGTrainConfig, augment, epoch_indices, load_split, manifest_hash, train_vsvig)
from ward.vision.vsvig import build_vsvig, load_vsvig


Clips = tuple[np.ndarray, np.ndarray, np.ndarray]  # patches uint8 (N,30,15,3,32,32), kpts (N,30,15,3), label


def _write_dataset(d: Path, splits: dict[str, Clips]) -> Path:
    """A ``ward.clips/1`` dataset directory: one shard per split (odd clips are seizure clips)."""
    d.mkdir(parents=True, exist_ok=True)
    names: dict[str, list[str]] = {"test": []}
    for k, (split, (patches, kpts, label)) in enumerate(splits.items()):
        n = len(label)
        name = f"shard_{k:04d}.npz"
        np.savez_compressed(d / name, patches=patches, kpts=kpts, label=label, t_end=np.arange(n, dtype=np.float32),
                            video=np.array(["v"] * n), patient=np.array([split] * n),
                            seizure_type=np.where(label > 0, "tonic", "none"))
        names[split] = [name]
    (d / "manifest.json").write_text(json.dumps({"format": "ward.clips/1", "joint_layout": list(VSVIG_15),
                                                 "splits": names, "clip_length": 30, "fps": 6,
                                                 "source": str(d)}))
    return d


def _labels(n: int) -> np.ndarray:
    return (np.arange(n) % 2).astype(np.float32)


def _tiny_dataset(d: Path, n_train: int = 8, n_val: int = 4, seed: int = 0) -> Path:
    """Separable toy clips: seizure clips have bright, flickering patches; others dim and still."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        label = _labels(n)
        base = np.where(label[:, None, None, None, None, None] > 0, 200, 40)
        flicker = rng.integers(0, 50, size=(n, 30, 15, 3, 1, 1)) * label[:, None, None, None, None, None]
        patches = np.clip(base + flicker + rng.integers(0, 10, (n, 30, 15, 3, 32, 32)), 0, 255).astype(np.uint8)
        kpts = np.concatenate([rng.uniform(0.3, 0.7, (n, 30, 15, 2)), np.ones((n, 30, 15, 1))], -1).astype(np.float32)
        splits[split] = (patches, kpts, label)
    return _write_dataset(d, splits)


def _separable_dataset(d: Path) -> Path:
    """Trivially separable: every seizure clip is one bright clip, every other clip one dark clip,
    with the same keypoints (no variation within a class). Training batches of 2 at pos_fraction 0.5
    then hold one clip of each class, so every step sees the same two-class problem."""
    kp = np.concatenate([np.random.default_rng(0).uniform(0.3, 0.7, (1, 30, 15, 2)), np.ones((1, 30, 15, 1))], -1)

    def clips(n: int) -> Clips:
        label = _labels(n)
        patches = np.where(label[:, None, None, None, None, None] > 0, 230, 25) * np.ones((n, 30, 15, 3, 32, 32))
        return patches.astype(np.uint8), np.repeat(kp, n, 0).astype(np.float32), label

    return _write_dataset(d, {"train": clips(4), "val": clips(2)})


def _cfg(data: Path, out: Path, **kw) -> VSViGTrainConfig:
    base = dict(data=str(data), out=str(out), epochs=3, batch_size=4, lr=3e-3, device="cpu", seed=0,
                clips_per_epoch=8, pos_fraction=0.5, max_val_clips=None, augment=False, threads=2,
                command="pytest")
    base.update(kw)
    return VSViGTrainConfig(**base)


def _fit(model: torch.nn.Module, data: Path) -> tuple[float, float]:
    """MSE and separation (mean p on seizure clips minus mean p on the others) on the whole train split.

    BatchNorm uses the batch's statistics, i.e. the function training minimises. The running
    statistics of an exported model lag its weights for ~200 steps (momentum 0.1), so a run of a few
    dozen steps says nothing yet in eval mode; long runs (the shipped models) are evaluated there.
    """
    cs = load_split(data, "train")
    model.train()
    with torch.no_grad():
        p = model(torch.from_numpy(cs.patches).float(), torch.from_numpy(cs.kpts)).numpy()
    y = cs.label
    return float(np.mean((p - y) ** 2)), float(p[y > 0].mean() - p[y <= 0].mean())


@pytest.mark.parametrize("threads", [1, 2])  # different float kernels, different rounding: same guarantee
def test_training_learns_a_separable_set_and_best_checkpoint_has_metadata(tmp_path, threads):
    """Not the loss of a few steps, which depends on the CPU's float kernels (0.196 -> 0.318 over 3
    epochs on one Xeon), but where 30 steps of one clip per class must get on a trivially separable
    set, with wide margins. The learning rate is annealed (x0.3 every 10 steps): at a constant rate,
    Adam's steps near the optimum of this BatchNorm network jump about (a run that was at MSE 0.04 could
    be back at 0.3 five steps later), whereas annealed runs end close to the optimum: measured MSE
    0.001-0.022 and separation 0.71-0.94 over seeds 0-3 x 1/2 threads (untrained: 0.21-0.28, -0.06-0.09).
    """
    data = _separable_dataset(tmp_path / "data")
    cfg = _cfg(data, tmp_path / "run", epochs=30, batch_size=2, clips_per_epoch=2, lr=1e-3, step_size=10,
               gamma=0.3, threads=threads)
    before = torch.get_num_threads()
    try:
        res = train_vsvig(cfg, progress=False, log=lambda s: None)
        torch.manual_seed(cfg.seed)  # train_vsvig's initialisation
        mse0, sep0 = _fit(build_vsvig("light", "paper"), data)
        trained = build_vsvig("light", "paper")
        trained.load_state_dict(torch.load(res["last"], map_location="cpu", weights_only=False)["model"])
        mse, sep = _fit(trained, data)
    finally:
        torch.set_num_threads(before)
    assert len(res["history"]) == 30 and res["history"][-1]["step"] == 30
    assert sep > 0.5, f"trained model separates the classes by only {sep:.3f} (untrained {sep0:.3f})"
    assert mse < 0.08 and mse < mse0 - 0.1, f"train MSE {mse:.4f} after training, {mse0:.4f} untrained"
    ck = torch.load(res["best"], map_location="cpu", weights_only=True)
    meta = ck["metadata"]
    assert meta["variant"] == "light" and meta["graph_mode"] == "paper"
    assert meta["trained_on"] == "simulated data (ward.sim), not for clinical use"
    assert meta["data_manifest_sha256"] == manifest_hash(data)
    assert meta["command"] == "pytest" and "val_mse" in meta["metrics"]
    assert meta["train_config"]["threads"] == threads and meta["n_train_clips"] == 4


def test_exported_checkpoint_round_trips_and_resume_continues(tmp_path):
    data = _tiny_dataset(tmp_path / "data")
    out = tmp_path / "run"
    r1 = train_vsvig(_cfg(data, out, epochs=1), progress=False, log=lambda s: None)
    # one epoch: the best export and the resumable state hold the same weights
    st = torch.load(r1["last"], map_location="cpu", weights_only=False)
    ref = build_vsvig("light", "paper")
    ref.load_state_dict(st["model"])
    ref.eval()
    loaded = load_vsvig(r1["best"])
    val = load_split(data, "val")
    p = torch.from_numpy(val.patches[:4]).float()
    k = torch.from_numpy(val.kpts[:4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(p, k), ref(p, k), rtol=0, atol=1e-6)
    r2 = train_vsvig(_cfg(data, out, epochs=2), resume=True, progress=False, log=lambda s: None)
    assert [h["epoch"] for h in r2["history"]] == [1, 2]
    assert r2["history"][1]["step"] == 4  # 2 steps per epoch, counted on from the resumed state


def test_init_fine_tunes_from_a_checkpoint_and_refuses_a_foreign_file(tmp_path):
    data = _tiny_dataset(tmp_path / "data")
    first = train_vsvig(_cfg(data, tmp_path / "a", epochs=1), progress=False, log=lambda s: None)
    ck = torch.load(first["best"], map_location="cpu", weights_only=False)
    ck["metadata"]["selection"] = "a note written by hand about the init run"
    torch.save(ck, first["best"])
    # lr ~0: the fine-tuned weights must still be the init weights (BatchNorm statistics do move) and
    # the partition orders came along
    tuned = train_vsvig(_cfg(data, tmp_path / "b", epochs=1, lr=1e-12, init=str(first["best"])),
                        progress=False, log=lambda s: None)
    a, b = load_vsvig(first["best"]), load_vsvig(tuned["best"])
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        torch.testing.assert_close(pb[name], pa[name], rtol=0, atol=1e-7)
    torch.testing.assert_close(b.partition_order, a.partition_order)
    lineage = torch.load(tuned["best"], map_location="cpu", weights_only=True)["metadata"]["lineage"]
    assert lineage == ["pytest"]  # the init run's command, so the chain can be reproduced
    meta = torch.load(tuned["best"], map_location="cpu", weights_only=True)["metadata"]
    assert "selection" not in meta  # the init run's hand-written note is not the fine-tuned run's
    assert meta["history"] == tuned["history"][:meta["epoch"]]  # this run's epochs, not the init run's
    assert meta["train_config"]["init"] == str(first["best"])
    fresh = train_vsvig(_cfg(data, tmp_path / "c", epochs=1, lr=1e-12, seed=5), progress=False, log=lambda s: None)
    pf = dict(load_vsvig(fresh["best"]).named_parameters())
    assert any(not torch.allclose(pf[n], pa[n]) for n in pa)  # without --init the start differs: init mattered
    foreign = tmp_path / "foreign.pt"  # a truncated download
    foreign.write_bytes(Path(first["best"]).read_bytes()[:5000])
    with pytest.raises(Exception, match="cannot read VSViG weights .*foreign.pt"):
        train_vsvig(_cfg(data, tmp_path / "d", epochs=1, init=str(foreign)), progress=False, log=lambda s: None)


def test_resume_refuses_other_data(tmp_path):
    out = tmp_path / "run"
    train_vsvig(_cfg(_tiny_dataset(tmp_path / "a"), out, epochs=1), progress=False, log=lambda s: None)
    other = _tiny_dataset(tmp_path / "b", n_train=6)
    with pytest.raises(ValueError, match="other data"):
        train_vsvig(_cfg(other, out, epochs=2), resume=True, progress=False, log=lambda s: None)


def test_bad_dataset_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="ward dataset build"):
        train_vsvig(_cfg(tmp_path, tmp_path / "run"), progress=False, log=lambda s: None)


def test_epoch_indices_balance():
    labels = np.r_[np.zeros(95), np.ones(5)].astype(np.float32)
    idx = epoch_indices(labels, 1000, 0.4, np.random.default_rng(0))
    frac = (labels[idx] > 0).mean()
    assert frac == pytest.approx(0.4, abs=1e-9)
    nat = epoch_indices(labels, 100, None, np.random.default_rng(0))
    assert sorted(nat.tolist()) == list(range(100))


def test_augment_drops_joint_patch_and_keypoint_together():
    g = torch.Generator().manual_seed(0)
    patches = torch.full((4, 30, 15, 3, 32, 32), 100.0)
    kpts = torch.rand(4, 30, 15, 3) * 0.5 + 0.25
    kpts[..., 2] = 1.0
    p2, k2 = augment(patches, kpts, g, p_drop_joint=0.3, p_drop_frame=0.1)
    dropped = k2[..., 2] == 0
    assert dropped.any() and (~dropped).any()
    assert torch.all(p2[dropped] == 0)
    assert torch.all(p2[~dropped] > 0)
    # parts never move: kept joints stay close to where they were (jitter only)
    assert torch.all((k2[~dropped][:, :2] - kpts[~dropped][:, :2]).abs() < 0.05)


def test_validation_metrics_report_separation_per_type_and_phase():
    from types import SimpleNamespace

    from ward.train.vsvig import _val_metrics

    label = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0.5, 0.5], np.float32)
    types = np.array(["none", "none", "tonic", "tonic", "tonic", "tonic", "myoclonic", "myoclonic", "tonic", "tonic"])
    phase = np.array([0, 0, 0, 3, 2, 2, 2, 2, 1, 1], np.int8)
    pred = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.25, 0.15, 0.35, 0.05], np.float32)
    m = _val_metrics(pred, SimpleNamespace(label=label, seizure_type=types, phase=phase))
    assert m["val_auc_clinical_by_type"]["tonic"] == 1.0           # both above every label-0 clip
    assert m["val_auc_clinical_by_type"]["myoclonic"] == pytest.approx(3 / 8)  # 0.25 beats two, 0.15 one
    assert m["val_auc_clinical"] == pytest.approx((8 + 3) / 16)
    assert m["val_auc_preclinical"] == pytest.approx(3 / 8)       # 0.35 beats three, 0.05 none
    assert m["val_p95_none"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4], 95))
    assert m["val_clips"] == 10 and set(m["val_auc_clinical_by_type"]) == {"tonic", "myoclonic"}
    # a ClipSet has no phases: the pre-clinical figure is left out, the rest stays
    m2 = _val_metrics(pred, SimpleNamespace(label=label, seizure_type=types))
    assert "val_auc_preclinical" not in m2 and m2["val_auc_clinical"] == m["val_auc_clinical"]
