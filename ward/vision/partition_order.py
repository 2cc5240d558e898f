"""Dynamic partition orders for VSViG.

Each Part_3DCNN block of VSViG permutes the 15 joints of its input before its temporal conv
(``new[:, i] = old[:, order[i]]``), so that the (time, joint) kernel sees different neighbouring
parts in different blocks. The orders come from a file of permutations; block ``k`` uses
``orders[OFFICIAL_SEEDS[k]]``.

The official file (``dy_point_order.pt``) is a ``torch.save``-d Python list of 1000 lists of 15 ints.
Every entry is a permutation of the five parts of three joints (all 120 part orders occur), with
the joints inside a part kept in their order. ``generate_partition_orders`` makes orders with the
same structure from a seed, so ward's own models never need the official file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Sequence

import torch

from ward.core.keypoints import JOINTS_PER_PART, NUM_PARTS

NUM_JOINTS: Final[int] = NUM_PARTS * JOINTS_PER_PART

OFFICIAL_SEEDS: Final[tuple[int, ...]] = (0, 1, 3, 2, 3, 13, 12, 13, 14, 15, 16, 17, 11, 6, 7)
"""Index into the order file used by each of the 15 Part_3DCNN blocks, in build order."""


def generate_partition_orders(seed: int = 0, n: int = 1000) -> torch.Tensor:
    """Return ``n`` seeded random part permutations as a (n, 15) int64 tensor.

    Like the official file, each row moves whole parts (uniformly random order of the five parts)
    and keeps the three joints of a part together and in order.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    part_perm = torch.argsort(torch.rand(n, NUM_PARTS, generator=gen), dim=1)  # (n, 5) random orders
    within = torch.arange(JOINTS_PER_PART)
    return (part_perm.unsqueeze(-1) * JOINTS_PER_PART + within).reshape(n, NUM_JOINTS)


def validate_partition_orders(orders: torch.Tensor | Sequence[Sequence[int]], *,
                              min_rows: int = max(OFFICIAL_SEEDS) + 1,
                              whole_parts: bool = False) -> torch.Tensor:
    """Check and convert orders to a (n, 15) int64 tensor; raise ValueError saying what is wrong.

    ``whole_parts`` additionally requires each row to move whole parts with the joints of a part
    kept together in order (needed by the paper graph mode, whose parts are consecutive triples).
    """
    try:
        t = torch.as_tensor(orders)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"partition orders must be a (n, {NUM_JOINTS}) integer array: {exc}") from exc
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.ndim != 2 or t.shape[1] != NUM_JOINTS:
        raise ValueError(f"partition orders must be a (n, {NUM_JOINTS}) integer array, "
                         f"got shape {tuple(t.shape)} dtype {t.dtype}")
    if t.shape[0] < min_rows:
        raise ValueError(f"partition orders need at least {min_rows} rows (the seed schedule indexes "
                         f"up to {min_rows - 1}), got {t.shape[0]}")
    t = t.to(torch.int64)
    ok = (torch.sort(t, dim=1).values == torch.arange(NUM_JOINTS)).all(dim=1)
    if not bool(ok.all()):
        bad = torch.nonzero(~ok).flatten()[:5].tolist()
        raise ValueError(f"partition order rows {bad} are not permutations of 0..{NUM_JOINTS - 1}")
    if whole_parts:
        trip = t.view(-1, NUM_PARTS, JOINTS_PER_PART)
        good = ((trip % JOINTS_PER_PART == torch.arange(JOINTS_PER_PART)).all(-1)
                & (trip // JOINTS_PER_PART == trip[..., :1] // JOINTS_PER_PART).all(-1)).all(-1)
        if not bool(good.all()):
            bad = torch.nonzero(~good).flatten()[:5].tolist()
            raise ValueError(f"partition order rows {bad} do not move whole parts of {JOINTS_PER_PART} "
                             "joints; the paper graph mode needs part-preserving orders")
    return t


def save_partition_orders(orders: torch.Tensor | Sequence[Sequence[int]], path: str | Path) -> Path:
    """Save orders in the official format: a torch.save-d list of lists of Python ints."""
    t = validate_partition_orders(orders, min_rows=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(t.tolist(), path)
    return path


def load_partition_orders(path: str | Path) -> torch.Tensor:
    """Load an order file (official or ward-generated) as a validated (n, 15) int64 tensor."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"partition order file not found: {path}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    return validate_partition_orders(data, min_rows=1)
