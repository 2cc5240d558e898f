"""Training VSViG on clips from the dataset builder (format ``ward.clips/1``).

Loss: MSE between the predicted probability and the clip's soft label (as the official script).
Optimiser defaults follow the official script (Adam lr 1e-4, weight decay 1e-5, StepLR(40, 0.1),
batch 32); only the epoch count is lowered to something a CPU finishes.

Sampling: seizure clips are rare in continuous footage, so each epoch draws clips with replacement
so that about ``pos_fraction`` of them have a label > 0 (``pos_fraction=None`` keeps the natural mix).

Augmentation (cheap, keeps the part structure: no left/right flips that would swap parts): per-clip
brightness gain, small keypoint jitter, and dropped joints (patch and keypoint zeroed for the whole
clip or single frames: exactly what ``extract_patches``/``normalise_keypoints`` produce for a joint the
pose estimator missed).

Checkpoints in ``out``: ``last.ckpt`` (every epoch: model, optimiser, scheduler, RNG state, history,
so ``resume=True`` continues bit-compatible where it stopped) and ``best.pt`` (best validation MSE,
exported with ``save_vsvig_checkpoint`` and the training metadata, loadable with ``load_vsvig``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ward.core.keypoints import VSVIG_15
from ward.core.numerics import flush_denormals
from ward.train.precision import choose_precision

TRAINED_ON = "simulated data (ward.sim), not for clinical use"
CLIP_FORMAT = "ward.clips/1"
FRAMES_FORMAT = "ward.frames/1"
_VOLATILE = ("created_utc", "command")


# ------------------------------------------------------------------------------------------------ data

@dataclass
class ClipSet:
    """All clips of one split in memory: patches uint8 (N,30,15,3,32,32), kpts f32 (N,30,15,3), label (N,)."""

    patches: np.ndarray
    kpts: np.ndarray
    label: np.ndarray
    seizure_type: np.ndarray
    video: np.ndarray
    t_end: np.ndarray

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.patches[idx], self.kpts[idx], self.label[idx]


def manifest_hash(data_dir: str | Path) -> str:
    """sha256 of manifest.json: identifies the data a model was trained on. For ward.frames/1 the
    manifest is rewritten after every generation run: its time and command line are left out."""
    raw = (Path(data_dir) / "manifest.json").read_bytes()
    man = json.loads(raw)
    if man.get("format") == FRAMES_FORMAT:
        raw = json.dumps({k: v for k, v in man.items() if k not in _VOLATILE}, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    """The dataset's manifest, checked for the clip format training understands."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{data_dir}: no manifest.json; build one with `ward dataset build --sim DIR --out {data_dir}`")
    man = json.loads(path.read_text())
    if man.get("format") not in (CLIP_FORMAT, FRAMES_FORMAT):
        raise ValueError(f"{path}: format {man.get('format')!r}, expected {CLIP_FORMAT!r} or {FRAMES_FORMAT!r}; "
                         "rebuild the dataset")
    if list(man.get("joint_layout", VSVIG_15)) != list(VSVIG_15):
        raise ValueError(f"{path}: joint layout differs from ward.core.keypoints.VSVIG_15; rebuild the dataset")
    return man


def load_split(data_dir: str | Path, split: str, max_clips: int | None = None, seed: int = 0) -> ClipSet:
    """Load every shard of one split (train/val/test); `max_clips` keeps a random subset (deterministic)."""
    man = read_manifest(data_dir)
    names = man.get("splits", {}).get(split)
    if names is None:
        raise ValueError(f"{data_dir}: manifest has no split {split!r} (has {sorted(man.get('splits', {}))})")
    keys = ("patches", "kpts", "label", "seizure_type", "video", "t_end")
    if not names:
        return ClipSet(np.zeros((0, 30, 15, 3, 32, 32), np.uint8), np.zeros((0, 30, 15, 3), np.float32),
                       np.zeros(0, np.float32), np.zeros(0, str), np.zeros(0, str), np.zeros(0, np.float32))
    # two passes: sizes first, then fill preallocated arrays (a concatenate would need twice the memory)
    sizes = []
    for n in names:
        with np.load(Path(data_dir) / n) as z:
            sizes.append(int(z["label"].shape[0]))
    total = sum(sizes)
    arrays: dict[str, np.ndarray] = {}
    i = 0
    for n, size in zip(names, sizes):
        with np.load(Path(data_dir) / n) as z:
            for k in keys:
                a = z[k]
                if k not in arrays:
                    dtype = a.dtype if a.dtype.kind != "U" else np.dtype("U256")
                    arrays[k] = np.empty((total, *a.shape[1:]), dtype)
                arrays[k][i:i + size] = a
        i += size
    cs = ClipSet(**arrays)
    if max_clips is not None and len(cs) > max_clips:
        idx = np.sort(np.random.default_rng(seed).choice(len(cs), max_clips, replace=False))
        cs = ClipSet(**{k: getattr(cs, k)[idx] for k in keys})
    return cs


def epoch_indices(labels: np.ndarray, n: int, pos_fraction: float | None, rng: np.random.Generator) -> np.ndarray:
    """Clip indices for one epoch: n draws, about pos_fraction of them with label > 0 (None: a permutation)."""
    if pos_fraction is None or not (labels > 0).any() or (labels > 0).all():
        return rng.permutation(len(labels))[:n] if n <= len(labels) else rng.integers(0, len(labels), n)
    pos = np.flatnonzero(labels > 0)
    neg = np.flatnonzero(labels <= 0)
    n_pos = int(round(n * pos_fraction))
    out = np.concatenate([rng.choice(pos, n_pos, replace=True), rng.choice(neg, n - n_pos, replace=True)])
    return rng.permutation(out)


def augment(patches: torch.Tensor, kpts: torch.Tensor, gen: torch.Generator, *, gain: float = 0.2,
            jitter: float = 0.004, p_drop_joint: float = 0.05, p_drop_frame: float = 0.02
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch augmentation (float patches 0..255, kpts (x/W, y/H, c)); vectorised, parts never swapped."""
    b, t, p = kpts.shape[:3]
    dev = patches.device
    g = 1.0 + gain * (2 * torch.rand(b, 1, 1, 1, 1, 1, generator=gen) - 1)
    patches = (patches * g.to(dev)).clamp_(0, 255)
    xy = kpts[..., :2] + jitter * torch.randn(b, t, p, 2, generator=gen).to(dev)
    keep = (torch.rand(b, 1, p, generator=gen) >= p_drop_joint) & (torch.rand(b, t, p, generator=gen) >= p_drop_frame)
    keep = keep.to(dev) & (kpts[..., 2] > 0)
    kf = keep.to(kpts.dtype)
    kpts = torch.cat([xy, kpts[..., 2:]], -1) * kf[..., None]
    patches = patches * kf[..., None, None, None]
    return patches, kpts


# ---------------------------------------------------------------------------------------------- config

@dataclass
class VSViGTrainConfig:
    """Everything a run depends on (stored in checkpoints)."""

    data: str
    out: str = "runs/vsvig"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-5
    step_size: int = 40
    gamma: float = 0.1
    device: str = "auto"
    seed: int = 0
    clips_per_epoch: int | None = None
    pos_fraction: float | None = 0.4
    max_val_clips: int | None = 2000
    augment: bool = True
    variant: str = "light"
    partition_order: str | None = None
    init: str | None = None
    threads: int | None = None
    precision: str = "fp32"
    """fp32, bf16 (autocast on the forward pass) or auto (bf16 only where the CPU has native bf16 and
    a measured training step is faster; CUDA: bf16 when supported)."""
    preclinical_weight: float = 3.0
    """ward.frames/1: sampling weight of pre-clinical clips among a seizure type's positive clips."""
    mine_fraction: float = 0.0
    """Share of each epoch's label-0 draws chosen by the model itself (:func:`mine_negatives`): drawn
    from a pool of ``mine_pool`` label-0 clips with probability proportional to their current loss p^2,
    so the clips it would raise a false alarm on come back until it stops doing so. 0: off."""
    mine_pool: int = 6000
    """label-0 clips scored before each epoch when ``mine_fraction`` > 0."""
    hard_negative_weight: float = 1.0
    """ward.frames/1: sampling weight of label-0 clips in or just after a behaviour or scene event
    (``ward.train.frames``), relative to calm label-0 clips."""
    hard_negative_kinds: tuple[str, ...] | None = None
    """Which behaviours and scene events make a label-0 clip hard (None: every behaviour and
    ``ward.train.frames.HARD_EVENTS``), e.g. ("turning_over", "sitting_up")."""
    max_minutes: float | None = None
    """Stop cleanly (last.ckpt mid-epoch) after this long; ``resume`` continues where it stopped."""
    command: str = field(default_factory=lambda: " ".join(sys.argv))


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA when present, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from exc


def _batches(cs: Any, idx: np.ndarray, bs: int, dev: torch.device, start: int = 0):
    """Batches of ``idx`` from batch number ``start`` on (a ClipSet or a FrameSet: ``take``)."""
    for i in range(start * bs, len(idx), bs):
        p, k, y = cs.take(np.sort(idx[i:i + bs]))
        yield (torch.from_numpy(p).to(dev, torch.float32), torch.from_numpy(np.ascontiguousarray(k)).to(dev),
               torch.from_numpy(np.ascontiguousarray(y)).to(dev))


@torch.no_grad()
def predict(model: torch.nn.Module, cs: Any, batch_size: int = 64, device: torch.device | str = "cpu") -> np.ndarray:
    """Probabilities of every clip of a ClipSet or FrameSet (eval mode)."""
    return predict_indices(model, cs, np.arange(len(cs)), batch_size, device)


def _val_metrics(pred: np.ndarray, cs: Any) -> dict[str, Any]:
    """Validation figures of one epoch. Besides the MSE, how well p separates clips (ROC AUC against every
    label-0 clip): clinical clips (label 1) overall and per seizure type, and pre-clinical clips (EEG
    onset -> clinical onset, where the split knows phases); plus the spread of p on label-0 clips, whose
    upper tail is what raises false alarms."""
    from ward.evaluation.metrics import roc_auc

    y = cs.label
    mse = float(np.mean((pred - y) ** 2))
    pos, neg = y >= 0.999, y <= 0
    out: dict[str, Any] = {
        "val_mse": mse, "val_rmse": math.sqrt(mse),
        "val_mean_p_seizure": float(pred[pos].mean()) if pos.any() else float("nan"),
        "val_mean_p_none": float(pred[neg].mean()) if neg.any() else float("nan"),
        "val_p95_none": float(np.percentile(pred[neg], 95)) if neg.any() else float("nan"),
        "val_auc_clinical": roc_auc(pred[pos], pred[neg]),
        "val_clips": int(len(y))}
    phase = getattr(cs, "phase", None)
    if phase is not None:
        out["val_auc_preclinical"] = roc_auc(pred[(phase == 1) & (y > 0)], pred[neg])
    types = np.asarray(cs.seizure_type).astype(str)
    out["val_auc_clinical_by_type"] = {t: roc_auc(pred[pos & (types == t)], pred[neg])
                                       for t in sorted(set(types[pos].tolist()))}
    return out


# ------------------------------------------------------------------------------------------- training

def init_lineage(init: str | None) -> list[str]:
    """Commands that produced the --init weights, oldest first, so a model card can reproduce the chain.

    A weight average (``ward train average``) is expanded: each ingredient's own chain under a ``# ingredient
    i of n`` comment line, then the average's command. (An average's ``lineage`` holds only its ingredients'
    last commands, which read as one sequential chain when copied flat.)"""
    if not init:
        return []
    md = torch.load(init, map_location="cpu", weights_only=True).get("metadata") or {}
    return [*lineage_of(md), str(md.get("command", f"(weights {init}, command not recorded)"))]


def lineage_of(md: dict[str, Any]) -> list[str]:
    """The commands before a checkpoint's own (its metadata), oldest first; averages expanded (init_lineage)."""
    soup = md.get("averaged_from") or []
    if not soup:
        return [str(c) for c in md.get("lineage", [])]
    out: list[str] = []
    for i, g in enumerate(soup, 1):
        w = g.get("weight")
        weight = f"{float(w):.3g}" if isinstance(w, (int, float)) else "?"
        out.append(f"# ingredient {i} of {len(soup)}, weight {weight}, sha256 {str(g.get('sha256'))[:12]}...:")
        out += [*(str(c) for c in g.get("lineage", [])), str(g.get("command") or f"(weights {g.get('path')}, command not recorded)")]
    out.append(f"# the weight average of the {len(soup)} ingredients above:")
    return out


def describe_data(man: dict[str, Any]) -> dict[str, Any]:
    """What a model card needs to know about the training data, from the dataset's manifest: format,
    patients, keypoint sources and, for ward.frames/1, the seeds and the generation settings (so the
    data can be made again: `ward dataset generate` is deterministic per seed)."""
    frames = man["format"] == FRAMES_FORMAT
    pose = man.get("pose_model")
    info = {"format": man["format"],
            "patients": (man.get("counts", {}).get("total", {}).get("patients") if frames
                         else len(man.get("patients", {}))),
            "keypoints": man.get("keypoints"),
            "train_clips_by_keypoints": man.get("counts", {}).get("train", {}).get("clips_by_keypoints"),
            "pose_model_sha256": pose.get("sha256") if isinstance(pose, dict) else None}
    if frames:
        info.update(seeds=man.get("seeds"), complete=man.get("complete"), generate_config=man.get("config"),
                    train_patients=man.get("counts", {}).get("train", {}).get("patients"))
    return info


def load_data(data: str | Path, split: str, max_clips: int | None = None, seed: int = 0,
              hard_kinds: tuple[str, ...] | None = None) -> Any:
    """A split of either format: ward.frames/1 (memory-mapped FrameSet) or ward.clips/1 (ClipSet in RAM)."""
    man = read_manifest(data)
    if man["format"] == FRAMES_FORMAT:
        from ward.train.frames import FrameSet

        return FrameSet(data, split, max_clips, seed, hard_kinds=hard_kinds)
    return load_split(data, split, max_clips, seed)


def _epoch(cfg: VSViGTrainConfig, train: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if hasattr(train, "phase"):
        from ward.train.frames import frames_epoch_indices

        return frames_epoch_indices(train, n, cfg.pos_fraction, cfg.preclinical_weight, rng, cfg.hard_negative_weight)
    return epoch_indices(train.label, n, cfg.pos_fraction, rng)


@torch.no_grad()
def predict_indices(model: torch.nn.Module, cs: Any, idx: np.ndarray, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """Probabilities of the clips ``idx`` (sorted ascending) of a ClipSet or FrameSet, in eval mode."""
    idx = np.asarray(idx)
    if np.any(np.diff(idx) < 0):
        raise ValueError("predict_indices needs ascending indices")
    model.eval()
    out = [model(p, k).float().cpu().numpy() for p, k, _ in _batches(cs, idx, batch_size, torch.device(device))]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def mine_negatives(idx: np.ndarray, labels: np.ndarray, fraction: float, pool: np.ndarray, p_pool: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Replace ``fraction`` of the label-0 draws in ``idx`` by clips of ``pool`` (label 0, scored ``p_pool``
    by the model), drawn with probability proportional to their loss p^2 (uniform if all are 0)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"mine_fraction must be in [0, 1], got {fraction}")
    out = np.array(idx, copy=True)
    slots = np.flatnonzero(labels[out] <= 0)
    k = int(round(fraction * len(slots)))
    if k == 0 or len(pool) == 0:
        return out
    w = np.asarray(p_pool, np.float64) ** 2
    w = w / w.sum() if w.sum() > 0 else None
    out[rng.choice(slots, k, replace=False)] = rng.choice(pool, k, replace=True, p=w)
    return out


@flush_denormals()
def train_vsvig(cfg: VSViGTrainConfig, *, resume: bool = False, max_steps: int | None = None,
                progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) VSViG; returns {"best": path, "last": path, "history": [...], "stopped": bool}.

    ``max_steps`` stops after that many optimiser steps in total (tests, smoke runs) and
    ``cfg.max_minutes`` after that long: both save last.ckpt mid-epoch (the epoch's draws, the batch
    reached, every RNG), so ``resume=True`` continues exactly where the run stopped.
    """
    from tqdm import tqdm

    from ward.vision.partition_order import (
        generate_partition_orders,
        load_partition_orders,
    )
    from ward.vision.vsvig import build_vsvig, load_vsvig, save_vsvig_checkpoint

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    for name in ("epochs", "batch_size", "step_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if cfg.pos_fraction is not None and not 0 < cfg.pos_fraction < 1:
        raise ValueError(f"pos_fraction must be in (0, 1) or None, got {cfg.pos_fraction}")
    if not 0 <= cfg.mine_fraction <= 1 or cfg.mine_pool < 1:
        raise ValueError(f"mine_fraction must be in [0, 1] and mine_pool >= 1, got {cfg.mine_fraction}, {cfg.mine_pool}")
    if cfg.max_minutes is not None and cfg.max_minutes <= 0:
        raise ValueError(f"max_minutes must be > 0, got {cfg.max_minutes}")
    from ward.train.frames import check_hard_kinds

    check_hard_kinds(cfg.hard_negative_kinds)
    t_start = time.time()
    dev = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    man = read_manifest(cfg.data)
    man_hash = manifest_hash(cfg.data)
    train = load_data(cfg.data, "train", hard_kinds=cfg.hard_negative_kinds)
    if len(train) == 0:
        raise ValueError(f"{cfg.data}: the train split has no clips")
    val = load_data(cfg.data, "val", cfg.max_val_clips, cfg.seed)
    if len(val) == 0:
        log("warning: no validation clips; the best checkpoint is chosen on training loss")

    torch.manual_seed(cfg.seed)
    if cfg.init:
        # fine-tune: the strict loader refuses a mismatched file; its partition orders come along
        model = load_vsvig(cfg.init, variant=cfg.variant, graph_mode="paper",  # type: ignore[arg-type]
                           partition_order=cfg.partition_order).to(dev)
        # the init file's record (its metrics, history, hand-written notes) describes another run: the
        # new checkpoint must not inherit it; the chain is kept in `lineage` instead
        model.metadata = {}
    else:
        orders = load_partition_orders(cfg.partition_order) if cfg.partition_order else generate_partition_orders(0)
        model = build_vsvig(cfg.variant, "paper", orders).to(dev)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, Any]] = []
    start_epoch, step, best = 0, 0, float("inf")
    partial: dict[str, Any] | None = None
    clips_done, train_seconds = 0, 0.0
    last_path, best_path = out / "last.ckpt", out / "best.pt"
    st: dict[str, Any] | None = None
    if resume and last_path.is_file():
        st = torch.load(last_path, map_location="cpu", weights_only=False)
        if st.get("manifest_sha256") != man_hash:
            raise ValueError(f"{last_path} was trained on other data (manifest hash differs); use a new --out "
                             "or the dataset it was trained on")
        if st.get("config", {}).get("variant", cfg.variant) != cfg.variant:
            raise ValueError(f"{last_path} is VSViG-{st['config']['variant']}, not {cfg.variant}; use a new --out")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        rng.bit_generator.state = st["np_rng"]
        gen.set_state(st["torch_gen"])
        if "torch_rng" in st:
            torch.set_rng_state(st["torch_rng"])
        start_epoch, step, best, history = st["epoch"], st["step"], st["best"], st["history"]
        partial = st.get("partial")
        clips_done, train_seconds = st.get("clips_done", 0), st.get("train_seconds", 0.0)
        log(f"resumed from {last_path} at epoch {start_epoch}" + (f" batch {partial['batch']}" if partial else "")
            + f" (step {step}, best val_mse {best:.4g})")
    if st is not None and st.get("precision"):
        precision = st["precision"]
        why = {**st.get("precision_choice", {}), "resumed": True}
        why.setdefault("reason", "the resumed run's precision")
    else:
        pp, pk, py = next(_batches(train, np.arange(min(len(train), cfg.batch_size)), cfg.batch_size, dev))

        def probe_loss(bf: bool) -> torch.Tensor:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf):
                out = model(pp, pk)
            return torch.mean((out.float() - py) ** 2)

        precision, why = choose_precision(cfg.precision, model, probe_loss, dev, what=f"step of {len(py)} clips")
    log(f"precision: {precision} ({why['reason']})")
    bf16 = precision == "bf16"
    n_epoch = cfg.clips_per_epoch or len(train)
    data_info = describe_data(man)
    meta = {"trained_on": TRAINED_ON, "data_manifest_sha256": man_hash, "data": str(cfg.data),
            "command": cfg.command, "train_config": {k: v for k, v in asdict(cfg).items() if k != "command"},
            "n_train_clips": len(train), "n_val_clips": len(val), "lineage": init_lineage(cfg.init),
            "data_info": data_info, "precision": precision, "precision_choice": why, "device": str(dev),
            "threads": torch.get_num_threads()}

    def save_last(epoch_done: int, part: dict[str, Any] | None) -> None:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "np_rng": rng.bit_generator.state, "torch_gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "epoch": epoch_done, "step": step, "best": best,
                    "history": history, "config": asdict(cfg), "manifest_sha256": man_hash, "partial": part,
                    "precision": precision, "precision_choice": why, "clips_done": clips_done, "train_seconds": train_seconds},
                   last_path.with_suffix(".tmp"))
        last_path.with_suffix(".tmp").replace(last_path)

    stopped = False
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        if partial is not None:
            idx, b0, losses = np.asarray(partial["idx"]), int(partial["batch"]), list(partial["losses"])
            mined = dict(partial.get("mined", {}))
            partial = None
        else:
            idx, b0, losses, mined = _epoch(cfg, train, n_epoch, rng), 0, [], {}
            if cfg.mine_fraction > 0:
                neg = np.flatnonzero(train.label <= 0)
                pool = np.sort(rng.choice(neg, min(cfg.mine_pool, len(neg)), replace=False))
                p_pool = predict_indices(model, train, pool, 64, dev)
                idx = mine_negatives(idx, train.label, cfg.mine_fraction, pool, p_pool, rng)
                mined = {"mine_pool_mean_p": float(p_pool.mean()), "mine_pool_p95": float(np.percentile(p_pool, 95)),
                         "mine_pool_share_above_0.5": float((p_pool > 0.5).mean())}
                log(f"epoch {epoch + 1}: mined {cfg.mine_fraction:.0%} of the label-0 draws from {len(pool)} scored "
                    f"clips (mean p {mined['mine_pool_mean_p']:.3f}, p95 {mined['mine_pool_p95']:.3f})")
                model.train()
        t0 = time.time()
        n_batches = math.ceil(len(idx) / cfg.batch_size)
        bar = tqdm(_batches(train, idx, cfg.batch_size, dev, b0), total=n_batches - b0,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        b = b0
        for patches, kpts, y in bar:
            ts = time.time()
            if cfg.augment:
                patches, kpts = augment(patches, kpts, gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(patches, kpts)
            loss = torch.mean((pred.float() - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            train_seconds += time.time() - ts
            clips_done += int(y.shape[0])
            step += 1
            b += 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            out_of_time = cfg.max_minutes is not None and time.time() - t_start >= 60 * cfg.max_minutes
            if b < n_batches and ((max_steps is not None and step >= max_steps) or out_of_time):
                stopped = True
                break
        if stopped:
            save_last(epoch, {"idx": idx, "batch": b, "losses": losses, "mined": mined})
            log(f"stopped at epoch {epoch + 1} batch {b}/{n_batches} (step {step}); continue with --resume")
            break
        sched.step()
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train_mse": float(np.mean(losses)),
                               "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 1),
                               "train_clips_per_s": round(clips_done / max(train_seconds, 1e-9), 2), **mined}
        if len(val):
            rec.update(_val_metrics(predict(model, val, 64, dev), val))
        history.append(rec)
        score = rec.get("val_mse", rec["train_mse"])
        if score < best:
            best = score
            model.eval()
            save_vsvig_checkpoint(model, best_path, **meta, epoch=epoch + 1, metrics=rec, history=list(history),
                                  train_clips_per_s=rec["train_clips_per_s"],
                                  train_wall_s=round(train_seconds, 1),
                                  created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        save_last(epoch + 1, None)
        log(json.dumps(rec))
        if (max_steps is not None and step >= max_steps) or \
                (cfg.max_minutes is not None and time.time() - t_start >= 60 * cfg.max_minutes):
            stopped = epoch + 1 < cfg.epochs
            break
    (out / "history.json").write_text(json.dumps(history, indent=2))
    return {"best": best_path, "last": last_path, "history": history, "stopped": stopped, "precision": precision,
            "train_clips_per_s": clips_done / max(train_seconds, 1e-9), "clips": clips_done}
