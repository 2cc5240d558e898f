"""Weight averaging ("model soup") of VSViG checkpoints fine-tuned from one starting point.

Fine-tuning runs that start from the same weights stay in one basin of the loss, so the average of
their weights usually behaves like the average of their predictions (an ensemble) at the cost of one
model. ``ward train average A B [C ...] --out SOUP`` writes a ward checkpoint whose metadata records
every ingredient (path, sha256, command, lineage), so the model card can say how it was made.

Only checkpoints of one architecture mix: the same variant, graph mode and partition orders, and the
same tensors with the same shapes; anything else is refused before a file is written.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["average_checkpoints"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def average_checkpoints(paths: Sequence[str | Path], out: str | Path, *, weights: Sequence[float] | None = None,
                        notes: str = "", command: str | None = None, data: str | Path | None = None,
                        max_val_clips: int = 2000) -> Path:
    """Write the weighted mean of the ward VSViG checkpoints ``paths`` to ``out``; returns ``out``.

    Floating-point tensors are averaged (``weights`` normalised to sum 1; default uniform); integer
    buffers (BatchNorm's batch counters) are taken from the last checkpoint. Raises ValueError naming
    the first mismatch (format, variant, graph mode, partition orders, tensor names or shapes).

    ``data``: a dataset folder whose val split (``max_val_clips`` clips, the subset ``ward train vsvig``
    validates on) the average is scored on; its ``metrics`` are then measured, not inherited, and the
    data's record (``data_info``, manifest hash) is that folder's. Without it the last ingredient's
    data record is kept and no metrics are written.
    """
    from ward.vision.vsvig import CHECKPOINT_FORMAT, load_vsvig, save_vsvig_checkpoint

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("give at least two checkpoints to average")
    w = [1.0] * len(paths) if weights is None else [float(x) for x in weights]
    if len(w) != len(paths) or any(x <= 0 for x in w):
        raise ValueError(f"weights must be {len(paths)} positive numbers, got {list(weights or [])}")
    w = [x / sum(w) for x in w]
    ckpts = []
    for p in paths:
        if not p.is_file():
            raise ValueError(f"{p}: no such checkpoint")
        c = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(c, dict) or c.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{p}: not a ward VSViG checkpoint ({CHECKPOINT_FORMAT}); official weights or "
                             "training states (last.ckpt) cannot be averaged: use best.pt files")
        ckpts.append(c)
    ref_md, ref_sd = ckpts[0]["metadata"], ckpts[0]["state_dict"]
    for p, c in zip(paths[1:], ckpts[1:]):
        md, sd = c["metadata"], c["state_dict"]
        for key in ("variant", "graph_mode"):
            if md.get(key) != ref_md.get(key):
                raise ValueError(f"{p}: {key} {md.get(key)!r} differs from {paths[0]}'s {ref_md.get(key)!r}")
        if not torch.equal(torch.as_tensor(md.get("partition_order")), torch.as_tensor(ref_md.get("partition_order"))):
            raise ValueError(f"{p}: partition orders differ from {paths[0]}'s: only fine-tunes of one model mix")
        if set(sd) != set(ref_sd):
            raise ValueError(f"{p}: tensors {sorted(set(sd) ^ set(ref_sd))[:3]} are in one checkpoint only")
        bad = [k for k in ref_sd if sd[k].shape != ref_sd[k].shape]
        if bad:
            raise ValueError(f"{p}: tensor {bad[0]} has shape {tuple(sd[bad[0]].shape)}, "
                             f"{paths[0]} has {tuple(ref_sd[bad[0]].shape)}")
    state = {}
    for k, v in ref_sd.items():
        if v.is_floating_point():
            state[k] = sum(wi * c["state_dict"][k].double() for wi, c in zip(w, ckpts)).to(v.dtype)
        else:
            state[k] = ckpts[-1]["state_dict"][k].clone()
    model = load_vsvig({"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": dict(ref_md)})
    model.metadata = {}
    ingredients = [{"path": str(p), "sha256": _sha256(p), "weight": wi, "command": c["metadata"].get("command"),
                    "lineage": list(c["metadata"].get("lineage") or []), "epoch": c["metadata"].get("epoch"),
                    "metrics": c["metadata"].get("metrics")}
                   for p, wi, c in zip(paths, w, ckpts)]
    last = ckpts[-1]["metadata"]
    record: dict[str, Any] = {k: last.get(k) for k in ("data", "data_manifest_sha256", "data_info", "n_train_clips")
                              if last.get(k) is not None}
    if data is not None:
        record.update(_measure(model, data, max_val_clips))
    return save_vsvig_checkpoint(model, out, trained_on=last.get("trained_on"), notes=notes,
                                 command=command or " ".join(sys.argv), averaged_from=ingredients,
                                 lineage=[str(i["command"]) for i in ingredients if i["command"]], **record)


def _measure(model: torch.nn.Module, data: str | Path, max_val_clips: int) -> dict[str, Any]:
    """The validation figures ``ward train vsvig`` records per epoch, for ``model`` on ``data``'s val split."""
    from ward.train.vsvig import _val_metrics, describe_data, load_data, manifest_hash, predict, read_manifest

    val = load_data(data, "val", max_val_clips, 0)
    if len(val) == 0:
        raise ValueError(f"{data}: the val split has no clips to measure the average on")
    metrics = _val_metrics(predict(model.eval(), val), val)
    return {"metrics": metrics, "data": str(data), "data_manifest_sha256": manifest_hash(data),
            "data_info": describe_data(read_manifest(data)), "n_val_clips": len(val)}

