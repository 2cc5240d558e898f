"""`ward dataset sheet`: a contact sheet of a ward.frames/1 dataset, to check realism by eye.

One row per clip: a few seizure clips per type (the clip ending just after clinical onset) and a few
clips per hard-negative kind (behaviours and scene events, from seizure-free patients), each row the
skeleton (the VSViG keypoints, back in pixels) over the clip's frames, then a mosaic of the 15 joint patches
of the clip's last frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ward.core.clip import CLIP_FRAMES
from ward.dataset.generate import load_scenario_arrays

_SIDE_COLOUR = {"r_": "C3", "l_": "C0"}


def _edges() -> list[tuple[int, int]]:
    """VSViG-15 skeleton edges for drawing (indices in ``ward.core.keypoints.VSVIG_15`` order)."""
    from ward.core.keypoints import VSVIG_INDEX as ix

    pairs = (("nose", "l_eye"), ("nose", "r_eye"), ("r_sho", "l_sho"), ("r_sho", "r_elb"), ("r_elb", "r_wri"),
             ("l_sho", "l_elb"), ("l_elb", "l_wri"), ("r_sho", "r_hip"), ("l_sho", "l_hip"), ("r_hip", "l_hip"),
             ("r_hip", "r_knee"), ("r_knee", "r_ank"), ("l_hip", "l_knee"), ("l_knee", "l_ank"))
    return [(ix[a], ix[b]) for a, b in pairs]


def _pick_rows(data: Path, per_kind: int) -> list[tuple[str, Path, int]]:
    man = json.loads((data / "manifest.json").read_text())
    rows: list[tuple[str, Path, int]] = []
    want: dict[str, int] = {}
    for name in (n for v in man["scenarios"].values() for n in v):
        d = data / "scenarios" / name
        meta = json.loads((d / "meta.json").read_text())
        ends = np.flatnonzero(np.load(d / "clip_end.npy"))
        if meta["seizure"]:
            kind = f"{meta['seizure_type']} (clinical onset)"
            t = meta["seizure"]["clinical_onset_s"] + 3.0
            cand = [(kind, t)]
            pre = 0.5 * (meta["seizure"]["eeg_onset_s"] + meta["seizure"]["clinical_onset_s"]) + 2.5
            cand.append((f"{meta['seizure_type']} (pre-clinical)", pre))
        else:
            cand = [(f"{b['kind']} ({name})".split(" (")[0], b["start_s"] + min(b["duration_s"], 12) * 0.6)
                    for b in [*meta["behaviours"], *meta["events"]]]
        for kind, t in cand:
            if want.get(kind, 0) >= per_kind:
                continue
            e = ends[np.argmin(np.abs(ends / 6.0 - t))] if len(ends) else None
            if e is None or e < CLIP_FRAMES - 1:
                continue
            want[kind] = want.get(kind, 0) + 1
            rows.append((f"{kind} {name} t={e / 6:.0f}s ({meta['keypoints']})", d, int(e)))
    rows.sort(key=lambda r: r[0])
    return rows


def contact_sheet(data: str | Path, out: str | Path, per_kind: int = 2, n_frames: int = 8) -> Path:
    """Draw the sheet (PNG) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = Path(data)
    if not (data / "manifest.json").is_file():
        raise ValueError(f"{data}: no manifest.json (make one with `ward dataset generate`)")
    rows = _pick_rows(data, per_kind)
    if not rows:
        raise ValueError(f"{data}: no clips to draw")
    edges = _edges()
    from ward.core.keypoints import VSVIG_15 as names
    fig, axes = plt.subplots(len(rows), n_frames + 1, figsize=(1.3 * (n_frames + 1) + 1, 1.35 * len(rows)),
                             squeeze=False)
    for r, (title, d, e) in enumerate(rows):
        a: dict[str, Any] = load_scenario_arrays(d)
        sel = np.linspace(e - CLIP_FRAMES + 1, e, n_frames).round().astype(int)
        meta = json.loads((d / "meta.json").read_text())
        scale = np.array([meta["width"], meta["height"]], np.float32)  # back to pixels: true aspect
        k = np.asarray(a["kpts"][e - CLIP_FRAMES + 1:e + 1]).copy()
        k[..., :2] *= scale
        v = k[..., 2] > 0
        xy = k[..., :2][v]
        (x0, y0), (x1, y1) = (xy.min(0), xy.max(0)) if len(xy) else ((0, 0), (1, 1))
        half = 0.5 * max(x1 - x0, y1 - y0) + 10
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        for c, f in enumerate(sel):
            ax = axes[r, c]
            kf = k[f - (e - CLIP_FRAMES + 1)]
            for i, j in edges:
                if kf[i, 2] > 0 and kf[j, 2] > 0:
                    side = names[i][:2] if names[i][:2] in ("l_", "r_") else names[j][:2]
                    ax.plot(kf[[i, j], 0], kf[[i, j], 1], "-", color=_SIDE_COLOUR.get(side, "0.3"), lw=1)
            vv = kf[:, 2] > 0
            ax.plot(kf[vv, 0], kf[vv, 1], ".", color="k", ms=2)
            ax.set_xlim(cx - half, cx + half)
            ax.set_ylim(cy + half, cy - half)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{(f - e) / 6:+.1f}s", fontsize=6)
        p = np.asarray(a["patches"][e])  # (15, 3, 32, 32) BGR
        mos = np.concatenate([np.concatenate(list(p[i * 5:(i + 1) * 5].transpose(0, 2, 3, 1)), 1) for i in range(3)], 0)
        axes[r, -1].imshow(mos[..., ::-1])
        axes[r, -1].set_xticks([])
        axes[r, -1].set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"{data.name}: skeleton over each clip (5 s; red: right, blue: left; pixels, true aspect) and its "
                 "last frame's 15 joint patches (simulated patients)", fontsize=8)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return Path(out)
