"""Training the Lightweight OpenPose network on simulator frames.

Targets on the stride-8 output grid (cell (gy, gx) centred at input pixel (8 gx + 3.5, 8 gy + 3.5)):

* heatmaps 0..17: ``exp(-d^2 / (2 sigma^2))`` around each visible joint of every person in view
  (patient and caregivers), max over people, ``sigma`` in network-input pixels (default 7);
  channel 18 = background = ``1 - max_j heatmap_j``;
* PAFs: for limb l (``pose_decode.LIMB_JOINTS[l] = (a, b)``) channels ``LIMB_PAFS[l]`` hold the unit
  vector a -> b on the cells within ``paf_width`` input pixels of the segment, averaged over the
  people covering a cell. Training and decoding therefore share one limb table.

Input frames go through :func:`ward.vision.pose.preprocess` (the inference preprocessing), so
training and inference see identical tensors. Loss: MSE summed over the stages (initial + refinement).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ward.core.numerics import flush_denormals
from ward.sim.frames import sim_frames
from ward.train.precision import choose_precision
from ward.vision.patient import match_patient
from ward.vision.pose_decode import LIMB_JOINTS, LIMB_PAFS

TRAIN_SEED_BASE = 3000   # pose training scenarios: 3000 + 100 * seed + k
HELDOUT_SEED_BASE = 3900  # pose validation frames (disjoint from training and from evaluation seeds)
TRAINED_ON = "simulated data (ward.sim), not for clinical use"


@dataclass
class PoseTrainConfig:
    config: str = "small"
    sim_frames: int = 2000
    steps: int = 1500
    batch_size: int = 4
    lr: float = 1e-3
    height: int = 256
    sigma: float = 7.0
    paf_width: float = 8.0
    init: str | None = None
    out: str = "runs/pose"
    device: str = "auto"
    seed: int = 0
    eval_frames: int = 60
    seizure_share: float = 0.0
    """Share of the training frames drawn inside seizures (``ward.sim.frames.sim_frames``)."""
    uncovered_share: float = 0.0
    """Share of the training scenarios with the legs uncovered (blanket folded at the foot end)."""
    precision: str = "fp32"
    """fp32, bf16 (autocast on the forward pass) or auto (measured: ``ward.train.precision``)."""
    refinement_stages: int = 1
    threads: int | None = None
    max_minutes: float | None = None
    frame_size: tuple[int, int] = (640, 360)
    command: str = field(default_factory=lambda: " ".join(sys.argv))


def make_targets(people: Sequence[np.ndarray], grid_hw: tuple[int, int], sigma: float = 7.0,
                 paf_width: float = 8.0, stride: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (19, gh, gw) and PAFs (38, gh, gw) for people given as (18, 3) in network-input pixels
    (x, y, visibility > 0). Vectorised over people, joints and limbs."""
    gh, gw = grid_hw
    ys = np.arange(gh, dtype=np.float32) * stride + (stride / 2 - 0.5)
    xs = np.arange(gw, dtype=np.float32) * stride + (stride / 2 - 0.5)
    heat = np.zeros((19, gh, gw), np.float32)
    pafs = np.zeros((38, gh, gw), np.float32)
    if len(people) == 0:
        heat[18] = 1.0
        return heat, pafs
    k = np.stack([np.asarray(p, np.float32) for p in people])  # (M, 18, 3)
    vis = k[..., 2] > 0
    dx = xs[None, None, None, :] - k[..., 0, None, None]  # (M, 18, 1, gw)
    dy = ys[None, None, :, None] - k[..., 1, None, None]  # (M, 18, gh, 1)
    g = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)) * vis[..., None, None]
    heat[:18] = g.max(0)
    heat[18] = 1.0 - heat[:18].max(0)
    a, b = k[:, LIMB_JOINTS[:, 0]], k[:, LIMB_JOINTS[:, 1]]  # (M, 19, 3)
    ok = (a[..., 2] > 0) & (b[..., 2] > 0)
    v = b[..., :2] - a[..., :2]
    length = np.linalg.norm(v, axis=-1)
    ok &= length > 1e-3
    u = v / np.maximum(length, 1e-3)[..., None]  # (M, 19, 2)
    px = xs[None, None, None, :] - a[..., 0, None, None]  # (M, 19, 1, gw)
    py = ys[None, None, :, None] - a[..., 1, None, None]  # (M, 19, gh, 1)
    along = px * u[..., 0, None, None] + py * u[..., 1, None, None]
    across = np.abs(px * u[..., 1, None, None] - py * u[..., 0, None, None])
    on = (along >= -paf_width / 2) & (along <= length[..., None, None] + paf_width / 2) & (across <= paf_width / 2)
    on &= ok[..., None, None]
    cnt = on.sum(0)  # (19, gh, gw)
    fx = (on * u[..., 0, None, None]).sum(0) / np.maximum(cnt, 1)
    fy = (on * u[..., 1, None, None]).sum(0) / np.maximum(cnt, 1)
    pafs[LIMB_PAFS[:, 0]] = fx
    pafs[LIMB_PAFS[:, 1]] = fy
    return heat, pafs


def _to_input(people: list[np.ndarray], scale: float, pad: tuple[int, int, int, int]) -> list[np.ndarray]:
    out = []
    for p in people:
        q = np.array(p, np.float32, copy=True)
        q[:, 0] = q[:, 0] * scale + pad[1]
        q[:, 1] = q[:, 1] * scale + pad[0]
        out.append(q)
    return out


def pose_accuracy(estimator: Any, frames: np.ndarray, people: Sequence[Sequence[np.ndarray]],
                  threshold: float = 0.1) -> dict[str, float]:
    """PCK@threshold (of the patient's bounding-box diagonal), mean error (px) and patient detection rate.

    The detected person nearest to the patient's ground truth (mean distance over shared joints) is
    matched; visible ground-truth joints count, a joint the estimator missed counts as wrong."""
    hits = total = 0
    errs: list[float] = []
    found = 0
    for i in range(0, len(frames), 8):
        dets = estimator(frames[i:i + 8])
        for r, cands in enumerate(dets):
            gt = people[i + r][0]
            vis = gt[:, 2] > 0
            if not vis.any():
                continue
            xy = gt[vis, :2]
            size = float(np.linalg.norm(xy.max(0) - xy.min(0))) or 1.0
            total += int(vis.sum())
            best, best_d = match_patient(cands, gt)
            if best is None or best_d > 0.5 * size:
                continue
            found += 1
            ok = vis & (best[:, 2] >= 0)
            d = np.linalg.norm(best[ok, :2] - gt[ok, :2], axis=1)
            errs += d.tolist()
            hits += int((d <= threshold * size).sum())
    n_frames = sum(1 for p in people if (p[0][:, 2] > 0).any())
    return {f"pck@{threshold}": hits / total if total else float("nan"),
            "mean_error_px": float(np.mean(errs)) if errs else float("nan"),
            "detection_rate": found / n_frames if n_frames else float("nan"), "eval_frames": int(len(frames))}


@flush_denormals()
def train_pose(cfg: PoseTrainConfig, *, resume: bool = False, log: Callable[[str], None] = print,
               progress: bool = True) -> dict[str, Any]:
    """Train; writes OUT/last.ckpt (resumable) and OUT/best.pt (save_openpose_checkpoint + metadata)."""
    from tqdm import tqdm

    from ward.train.vsvig import init_lineage, resolve_device
    from ward.vision.openpose import (
        build_openpose,
        load_openpose,
        save_openpose_checkpoint,
    )
    from ward.vision.pose import PoseEstimator, preprocess

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.sim_frames < cfg.batch_size:
        raise ValueError(f"need steps >= 1 and sim_frames >= batch_size >= 1 (got {cfg.steps}, {cfg.sim_frames}, "
                         f"{cfg.batch_size})")
    if cfg.height % 8:
        raise ValueError(f"height must be a multiple of 8, got {cfg.height}")
    dev = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = (load_openpose(cfg.init, cfg.config) if cfg.init else build_openpose(cfg.config, cfg.refinement_stages))
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    step, history = 0, []
    last = out / "last.ckpt"
    st: dict[str, Any] = {}
    if resume and last.is_file():
        st = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        step, history = st["step"], st["history"]
        log(f"resumed from {last} at step {step}")

    log(f"rendering {cfg.sim_frames} training frames (scenario seeds {TRAIN_SEED_BASE + 100 * cfg.seed}+, "
        f"{cfg.seizure_share:.0%} inside seizures, {cfg.uncovered_share:.0%} of scenarios with the legs uncovered)")
    frames, people = sim_frames(cfg.sim_frames, TRAIN_SEED_BASE, cfg.frame_size, cfg.seed,
                                seizure_share=cfg.seizure_share, uncovered_share=cfg.uncovered_share)
    x_all, scale, pad = preprocess(frames, cfg.height)
    gh, gw = x_all.shape[2] // 8, x_all.shape[3] // 8
    tgt = [make_targets(_to_input(p, scale, pad), (gh, gw), cfg.sigma, cfg.paf_width) for p in people]
    heat_all = torch.from_numpy(np.stack([t[0] for t in tgt]))
    paf_all = torch.from_numpy(np.stack([t[1] for t in tgt]))
    rng = np.random.default_rng(cfg.seed + 1)

    def stages_loss(x: torch.Tensor, h: torch.Tensor, p: torch.Tensor, bf16: bool) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            outs = model.forward_stages(x)
        return sum(torch.mean((sh.float() - h) ** 2) + torch.mean((sp.float() - p) ** 2) for sh, sp in outs)

    if st.get("precision"):
        precision, why = st["precision"], {**st.get("precision_choice", {}), "resumed": True}
    else:
        j0 = np.arange(cfg.batch_size)
        probe = x_all[j0].to(dev), heat_all[j0].to(dev), paf_all[j0].to(dev)
        precision, why = choose_precision(cfg.precision, model, lambda bf: stages_loss(*probe, bf), dev,
                                          what=f"step of {cfg.batch_size} frames")
    log(f"precision: {precision} ({why['reason']})")
    bf16 = precision == "bf16"
    t0 = time.time() - (history[-1]["seconds"] if history else 0.0)  # seconds in history add up over resumes
    losses: list[float] = []
    t_start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc="pose", disable=not progress)

    def save_last() -> None:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "step": step, "history": history, "config": asdict(cfg), "precision": precision,
                    "precision_choice": why}, last)

    while step < cfg.steps:
        if cfg.max_minutes is not None and time.time() - t_start > 60 * cfg.max_minutes:
            log(f"time budget of {cfg.max_minutes} min reached at step {step}; stopping early (--resume goes on)")
            save_last()
            break
        j = rng.choice(len(frames), cfg.batch_size, replace=False)
        x = x_all[j].to(dev)
        if rng.random() < 0.5:  # brightness jitter in the normalised space
            x = x * float(rng.uniform(0.8, 1.2))
        h, p = heat_all[j].to(dev), paf_all[j].to(dev)
        loss = stages_loss(x, h, p, bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.detach()))  # type: ignore[union-attr]
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.5f}")
        if step % 25 == 0 or step == cfg.steps:
            history.append({"step": step, "loss": float(np.mean(losses[-100:])), "seconds": round(time.time() - t0, 1)})
            save_last()
    bar.close()
    model.eval()
    log(f"measuring keypoint accuracy on {cfg.eval_frames} held-out frames (seeds {HELDOUT_SEED_BASE}+)")
    ef, ep = sim_frames(cfg.eval_frames, HELDOUT_SEED_BASE, cfg.frame_size, cfg.seed, per_scenario=10)
    est = PoseEstimator(model, height=cfg.height)
    metrics = pose_accuracy(est, ef, ep)
    # the same held-out scenarios, frames inside their seizures only: the postures serving needs most
    sf, sp = sim_frames(cfg.eval_frames, HELDOUT_SEED_BASE, cfg.frame_size, cfg.seed, per_scenario=10, seizure_share=1.0)
    metrics.update({f"seizure_{k}": v for k, v in pose_accuracy(est, sf, sp).items()})
    # ... and with the legs uncovered (hips, knees and ankles in view)
    uf, up = sim_frames(cfg.eval_frames, HELDOUT_SEED_BASE, cfg.frame_size, cfg.seed, per_scenario=10, uncovered_share=1.0)
    metrics.update({f"uncovered_{k}": v for k, v in pose_accuracy(est, uf, up).items()})
    log(json.dumps(metrics))
    best = out / "best.pt"
    save_openpose_checkpoint(model.cpu(), best, trained_on=TRAINED_ON, command=cfg.command,
                             train_config={k: v for k, v in asdict(cfg).items() if k != "command"},
                             train_seeds=f"{TRAIN_SEED_BASE + 100 * cfg.seed}+", heldout_seeds=f"{HELDOUT_SEED_BASE}+",
                             input_height=cfg.height, metrics=metrics, history=history, precision=precision,
                             precision_choice=why, lineage=init_lineage(cfg.init),
                             created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    (out / "metrics.json").write_text(json.dumps({"metrics": metrics, "history": history}, indent=2))
    return {"best": best, "last": last, "metrics": metrics, "history": history}
