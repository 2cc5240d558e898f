"""Lightweight OpenPose post-processing: heatmap peaks and PAF grouping, vectorised over frames.

Returns the same people as the published demo post-processing (x4 bicubic upsampling, keypoint
extraction, "fast" PAF grouping of Dec 2020) but with no Python loop over peaks, limbs, people
or frames: every step works on flat arrays keyed by (frame, joint type) or (frame, limb).

Rules reproduced (see /work/shared/notes/lightweight_openpose.md §5):

* peaks on the upsampled map: values < 0.1 set to 0, a peak is strictly greater than its 4
  neighbours (zero outside); within a joint type, peaks ordered by (x, y) suppress every later
  peak closer than 6 grid px (greedy, in that order);
* limb candidates: every (a, b) pair of the limb's joint types, 10 points ``a + t (b - a) / 9``
  rounded half-to-even, PAF dotted with the unit vector, a point valid if > 0.05; the pair is kept
  if its mean valid score > 0 and at least 9 of 10 points are valid; pairs are then taken greedily
  by descending score, each keypoint at most once per limb;
* limbs 0..16 form a tree rooted at the neck, processed in order: a connection joins its b joint to
  the person holding its a joint, or starts a person. Persons are therefore the connected components
  of the accepted connections; count = joints in the component, score = joint scores + PAF scores;
* limbs 17/18 (shoulder -> ear) only fill a missing ear (or shoulder) and change neither count nor
  score; a person with count < 3 or score / count < 0.2 is dropped.

Greedy steps (peak suppression, connection choice) are solved as fixpoints of vectorised updates,
which converge to exactly the sequential result in a few iterations.

Coordinates: grid pixel i of the x``upsample`` map -> network-input pixel ``i * 8 / upsample``
(the demo's mapping, which VSViG's training data used). With ``refine=True`` (ward's
:class:`~ward.vision.pose.PoseEstimator` default) each joint is reported at the vertex of a parabola
fitted through its peak and the peak's neighbours (per axis), so positions are no longer quantised
to the 2-px grid; peaks and grouping are unchanged.

Upsampling: the separable bicubic kernel (a = -0.75, half-pixel centres, replicated borders, as
``F.interpolate(mode="bicubic", align_corners=False)`` and ``cv2.INTER_CUBIC``) written as two small
matrix products (10x faster than ``F.interpolate`` on CPU); the PAFs are never upsampled as a whole,
only evaluated at the limb sample points with the same kernel.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

STRIDE = 8
NUM_JOINTS = 18
HEATMAP_THRESHOLD = 0.1
NMS_RADIUS = 6.0
POINTS_PER_LIMB = 10
MIN_PAF_SCORE = 0.05
MIN_SUCCESS_RATIO = 0.8
MIN_PERSON_JOINTS = 3
MIN_PERSON_MEAN_SCORE = 0.2

LIMB_JOINTS = np.array([[1, 2], [1, 5], [2, 3], [3, 4], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10], [1, 11],
                        [11, 12], [12, 13], [1, 0], [0, 14], [14, 16], [0, 15], [15, 17], [2, 16], [5, 17]])
"""(19, 2) joint types (a, b) of each limb, in grouping order; the PAF vector points from a to b."""
LIMB_PAFS = np.array([[12, 13], [20, 21], [14, 15], [16, 17], [22, 23], [24, 25], [0, 1], [2, 3], [4, 5], [6, 7],
                      [8, 9], [10, 11], [28, 29], [30, 31], [34, 35], [32, 33], [36, 37], [18, 19], [26, 27]])
"""(19, 2) PAF channels (x, y) of each limb."""
NUM_LIMBS = len(LIMB_JOINTS)
TREE_LIMBS = 17
"""Limbs 0..16 build people; 17 and 18 (shoulder -> ear) only fill missing joints."""


# ------------------------------------------------------------------------------------- upsampling

def _cubic(d: np.ndarray, a: float = -0.75) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


@lru_cache(maxsize=64)
def _taps(n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (n*s, 4) and float32 weights (n*s, 4) of every x``s`` output position.

    Half-pixel centres, cubic a = -0.75, indices clamped at the borders (replicate), as OpenCV.
    """
    src = (np.arange(n * s) + 0.5) / s - 0.5
    i0 = np.floor(src).astype(np.int64)
    k = np.arange(-1, 3)
    idx = np.clip(i0[:, None] + k, 0, n - 1)
    return idx, _cubic(src[:, None] - i0[:, None] - k).astype(np.float32)


def upsample_heatmaps(heatmaps: np.ndarray, s: int) -> np.ndarray:
    """The 18 keypoint channels of (N, 19|18, H, W) maps upsampled x``s``, as (N, sH, sW, 18).

    ``cv2.resize(INTER_CUBIC)``, one call per frame written in place: it is what the original demo
    uses, and bit-identical values matter because a peak must be strictly greater than its
    neighbours, so exact plateaus (ties) decide whether a joint is found at all; torch's bicubic
    agrees to ~1e-7 but breaks some of those ties differently. (Stacking all frames' channels in
    one call is slower: OpenCV's many-channel path and the strided copies cost more than the calls.)
    """
    n, _, h, w = heatmaps.shape
    hwc = np.ascontiguousarray(heatmaps[:, :NUM_JOINTS].transpose(0, 2, 3, 1))
    out = np.empty((n, h * s, w * s, NUM_JOINTS), dtype=np.float32)
    for i in range(n):  # an OpenCV call per frame; cv2 has no batch axis
        cv2.resize(hwc[i], (w * s, h * s), dst=out[i], interpolation=cv2.INTER_CUBIC)
    return out


def sample_pafs(pafs: np.ndarray, frame: np.ndarray, limb: np.ndarray, y: np.ndarray, x: np.ndarray,
                s: int) -> np.ndarray:
    """(P, 2) PAF (x, y) of each point's limb on the x``s`` upsampled grid, without upsampling.

    pafs: (N, 38, H, W) at stride 8; frame, limb, y, x: (P,) int. Same kernel as the upsampling.
    """
    _, c, h, w = pafs.shape
    iy, wy = _taps(h, s)
    ix, wx = _taps(w, s)
    iy, wy, ix, wx = iy[y], wy[y], ix[x], wx[x]
    base = (frame[:, None] * c + LIMB_PAFS[limb]) * (h * w)  # (P, 2) channel planes
    flat_pafs = pafs.reshape(-1)
    out = np.zeros(base.shape, dtype=np.float32)
    for i in range(4):  # the 4x4 kernel taps (fixed size), each a vector op over all points
        row = np.zeros(base.shape, dtype=np.float32)
        for j in range(4):
            row += flat_pafs[base + (iy[:, i] * w + ix[:, j])[:, None]] * wx[:, j, None]
        out += row * wy[:, i, None]
    return out


# ------------------------------------------------------------------------------------- helpers

def _as_numpy(t: np.ndarray | torch.Tensor, name: str, channels: tuple[int, ...]) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().to("cpu", torch.float32).numpy()
    t = np.asarray(t)
    if t.ndim != 4 or t.shape[1] not in channels:
        raise ValueError(f"{name} must be (N, {'|'.join(map(str, channels))}, H, W) stride-8 maps, got {t.shape}")
    if not np.issubdtype(t.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got {t.dtype}")
    return np.ascontiguousarray(t, dtype=np.float32)


def _greedy_suppress(n: int, later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """keep[i] = not any(keep[j] for each edge (i=later, j=earlier)), solved in order of the indices.

    Edges always point from a later to an earlier item, so the fixpoint of the vectorised update is
    unique and equals the sequential greedy result; it is reached after (longest chain + 1) rounds.
    """
    keep = np.ones(n, dtype=bool)
    if len(later) == 0:
        return keep
    while True:
        new = np.ones(n, dtype=bool)
        new[later[keep[earlier]]] = False
        if np.array_equal(new, keep):
            return keep
        keep = new


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    return np.cumsum(counts) - counts


# ------------------------------------------------------------------------------------- peaks

def find_peaks(heatmaps_up: np.ndarray) -> tuple[np.ndarray, ...]:
    """Peaks of upsampled heatmaps (N, H, W, 18) after the original's greedy NMS.

    Returns flat arrays ordered by (frame, type, x, y): frame, type, x, y (int64), score (float32).
    """
    n, h, w, k = heatmaps_up.shape
    flat = heatmaps_up.reshape(-1)
    cand = np.flatnonzero(flat >= HEATMAP_THRESHOLD)  # sparse: only these can be peaks
    centre = flat[cand]
    f, rem = np.divmod(cand, h * w * k)
    y, rem = np.divmod(rem, w * k)
    x, t = np.divmod(rem, k)
    is_peak = np.ones(len(cand), dtype=bool)
    for inside, step in ((x > 0, -k), (x < w - 1, k), (y > 0, -w * k), (y < h - 1, w * k)):
        nb = flat[np.where(inside, cand + step, cand)]
        # the original zeroes values below the threshold and pads with zeros
        is_peak &= ~inside | (nb < HEATMAP_THRESHOLD) | (centre > nb)
    f, y, x, t, score = f[is_peak], y[is_peak], x[is_peak], t[is_peak], centre[is_peak]
    order = np.lexsort((y, x, t, f))
    f, y, x, t, score = f[order], y[order], x[order], t[order], score[order]
    # Suppression edges: same (frame, type), later in order, distance < radius. Sorted by x, so
    # candidates are the next few items; widen the offset while any pair is still within reach.
    group = f * k + t
    later, earlier = [], []
    for d in range(1, len(x)):
        same = (group[d:] == group[:-d]) & (x[d:] - x[:-d] < NMS_RADIUS)
        if not same.any():
            break
        close = same & ((x[d:] - x[:-d]) ** 2 + (y[d:] - y[:-d]) ** 2 < NMS_RADIUS ** 2)
        idx = np.nonzero(close)[0]
        later.append(idx + d)
        earlier.append(idx)
    if later:
        keep = _greedy_suppress(len(x), np.concatenate(later), np.concatenate(earlier))
    else:
        keep = np.ones(len(x), dtype=bool)
    return f[keep], t[keep], x[keep], y[keep], score[keep]


# ------------------------------------------------------------------------------------- grouping

_PROBE_STEPS = np.array([3, 6], dtype=np.float32)


def _point_scores(pafs: np.ndarray, s: int, frame: np.ndarray, limb: np.ndarray, a: np.ndarray, vec: np.ndarray,
                  unit: np.ndarray, steps_t: np.ndarray) -> np.ndarray:
    """PAF . unit(b - a) at points ``a + t (b - a) / 9`` (rounded half-to-even) for t in steps_t: (P, T)."""
    steps = vec * np.float32(1.0 / (POINTS_PER_LIMB - 1))
    pts = np.rint(steps[:, None, :] * steps_t[None, :, None] + a[:, None, :]).astype(np.int64)  # (P, T, 2)
    k = len(steps_t)
    field = sample_pafs(pafs, np.repeat(frame, k), np.repeat(limb, k), pts[..., 1].ravel(), pts[..., 0].ravel(), s)
    field = field.reshape(-1, k, 2)
    return field[..., 0] * unit[:, None, 0] + field[..., 1] * unit[:, None, 1]


def _limb_candidates(n_frames: int, f: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray,
                     pafs: np.ndarray, s: int) -> tuple[np.ndarray, ...]:
    """Scored (a, b) keypoint pairs of every (frame, limb) that pass the PAF test.

    Returns frame, limb, ia, ib (global keypoint indices), score, and the pair's index in the
    original b-major enumeration (for tie order).
    """
    counts = np.zeros((n_frames, NUM_JOINTS), dtype=np.int64)
    np.add.at(counts, (f, t), 1)
    starts = _segment_starts(counts.ravel()).reshape(n_frames, NUM_JOINTS)
    na = counts[:, LIMB_JOINTS[:, 0]].ravel()  # (N*19,) per (frame, limb)
    nb = counts[:, LIMB_JOINTS[:, 1]].ravel()
    npairs = na * nb
    total = int(npairs.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, np.zeros(0), empty
    grp = np.repeat(np.arange(n_frames * NUM_LIMBS), npairs)
    local = np.arange(total) - np.repeat(_segment_starts(npairs), npairs)
    b_local, a_local = np.divmod(local, na[grp])
    frame, limb = np.divmod(grp, NUM_LIMBS)
    ia = starts[frame, LIMB_JOINTS[limb, 0]] + a_local
    ib = starts[frame, LIMB_JOINTS[limb, 1]] + b_local

    a = np.stack([x[ia], y[ia]], axis=1).astype(np.float32)
    vec = np.stack([x[ib], y[ib]], axis=1).astype(np.float32) - a
    unit = vec / (np.linalg.norm(vec, axis=1, keepdims=True) + np.float32(1e-6))
    # Cheap rejection first: a pair needs 9 of 10 valid points, so two invalid probes rule it out.
    probe = _point_scores(pafs, s, frame, limb, a, vec, unit, _PROBE_STEPS)
    alive = np.nonzero((probe > MIN_PAF_SCORE).any(1))[0]
    frame, limb, ia, ib, local = frame[alive], limb[alive], ia[alive], ib[alive], local[alive]
    point_score = _point_scores(pafs, s, frame, limb, a[alive], vec[alive], unit[alive],
                                np.arange(POINTS_PER_LIMB, dtype=np.float32))
    valid = point_score > MIN_PAF_SCORE
    n_valid = valid.sum(1)
    score = (point_score * valid).sum(1) / (n_valid + 1e-6)
    ok = (score > 0) & (n_valid / POINTS_PER_LIMB > MIN_SUCCESS_RATIO)
    return frame[ok], limb[ok], ia[ok], ib[ok], score[ok], local[ok]


def _choose_connections(frame: np.ndarray, limb: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                        score: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, ...]:
    """Greedy one-to-one choice per (frame, limb) by descending score; returns the kept pairs, ranked."""
    # Rank: by (frame, limb), then score descending; ties: later enumeration index first.
    order = np.lexsort((-local, -score, limb, frame))
    frame, limb, ia, ib, score = frame[order], limb[order], ia[order], ib[order], score[order]
    n = len(order)
    later, earlier = [], []
    for key in (ia * NUM_LIMBS + limb, ib * NUM_LIMBS + limb):
        # Within a key group (sorted stably, so by rank) every member conflicts with all earlier ones.
        o = np.argsort(key, kind="stable")
        k = key[o]
        new_group = np.r_[True, k[1:] != k[:-1]]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        pos = np.arange(n) - group_start  # number of earlier members in the group
        later.append(np.repeat(o, pos))
        earlier.append(o[np.repeat(group_start, pos) + (np.arange(int(pos.sum())) - np.repeat(_segment_starts(pos), pos))])
    if later:
        keep = _greedy_suppress(n, np.concatenate(later), np.concatenate(earlier))
    else:
        keep = np.ones(n, dtype=bool)
    return frame[keep], limb[keep], ia[keep], ib[keep], score[keep]


def _assemble(n_frames: int, n_kpts: int, f: np.ndarray, t: np.ndarray, kscore: np.ndarray,
              c_frame: np.ndarray, c_limb: np.ndarray, c_ia: np.ndarray, c_ib: np.ndarray,
              c_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """People as (P, 18) keypoint indices (-1 missing) and their frame, in the original's order."""
    tree = c_limb < TREE_LIMBS
    ta, tb, ts = c_ia[tree], c_ib[tree], c_score[tree]
    rank = np.nonzero(tree)[0]  # connections are ordered by (frame, limb, score): creation order
    parent = np.arange(n_kpts)
    parent[tb] = ta  # each keypoint is the b end of at most one tree connection
    root = parent
    while True:  # pointer jumping: depth of the tree is at most 4
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    in_person = np.zeros(n_kpts, dtype=bool)
    in_person[ta] = True
    in_person[tb] = True
    members = np.nonzero(in_person)[0]
    roots, person_of = np.unique(root[members], return_inverse=True)
    n_people = len(roots)
    count = np.bincount(person_of, minlength=n_people)
    total = np.bincount(person_of, weights=kscore[members].astype(np.float64), minlength=n_people)
    person_of_kpt = np.full(n_kpts, -1, dtype=np.int64)
    person_of_kpt[members] = person_of
    total += np.bincount(person_of_kpt[tb], weights=ts, minlength=n_people)
    created = np.full(n_people, np.iinfo(np.int64).max)
    np.minimum.at(created, person_of_kpt[tb], rank)
    slots = np.full((n_people, NUM_JOINTS), -1, dtype=np.int64)
    slots[person_of, t[members]] = members

    # Ear limbs: fill a missing ear from the person's shoulder, or a missing shoulder from its ear.
    for limb_id in (17, 18):
        sel = c_limb == limb_id
        ja, jb = LIMB_JOINTS[limb_id]
        b_of_a = np.full(n_kpts + 1, -1, dtype=np.int64)
        a_of_b = np.full(n_kpts + 1, -1, dtype=np.int64)
        b_of_a[c_ia[sel]] = c_ib[sel]
        a_of_b[c_ib[sel]] = c_ia[sel]
        sho, ear = slots[:, ja].copy(), slots[:, jb].copy()
        fill_ear = (sho >= 0) & (ear < 0)
        slots[fill_ear, jb] = b_of_a[sho[fill_ear]]
        fill_sho = (ear >= 0) & (sho < 0)
        slots[fill_sho, ja] = a_of_b[ear[fill_sho]]

    good = (count >= MIN_PERSON_JOINTS) & (total / np.maximum(count, 1) >= MIN_PERSON_MEAN_SCORE)
    order = np.argsort(created[good], kind="stable")
    slots = slots[good][order]
    return slots, f[roots[good][order]]


def refine_peaks(heatmaps_up: np.ndarray, f: np.ndarray, t: np.ndarray, x: np.ndarray,
                 y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell (x, y) of each peak: a parabola through the peak and its two neighbours, per axis.

    heatmaps_up (N, H, W, 18) as :func:`upsample_heatmaps` returns; f, t, x, y: (P,) int peaks.
    Offset ``(l - r) / (2 (l - 2c + r))`` with c the peak's value and l, r its neighbours on the
    raw map (replicated at the borders), clipped to [-0.5, 0.5] grid px: a peak is strictly greater
    than its neighbours, so the fitted vertex lies within half a cell of it; a flat or degenerate
    fit gives 0; never outside the map. Returns float32 grid coordinates. Vectorised over all peaks.
    """
    _, h, w, _ = heatmaps_up.shape
    c = heatmaps_up[f, y, x, t]

    def offset(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        curv = lo - 2 * c + hi
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(curv < 0, 0.5 * (lo - hi) / curv, 0.0)
        return np.clip(np.nan_to_num(d), -0.5, 0.5)

    dx = offset(heatmaps_up[f, y, np.maximum(x - 1, 0), t], heatmaps_up[f, y, np.minimum(x + 1, w - 1), t])
    dy = offset(heatmaps_up[f, np.maximum(y - 1, 0), x, t], heatmaps_up[f, np.minimum(y + 1, h - 1), x, t])
    fx = np.clip(x + dx, 0, w - 1)  # a border peak never moves off the map
    fy = np.clip(y + dy, 0, h - 1)
    return fx.astype(np.float32), fy.astype(np.float32)


def decode_poses_batch(heatmaps: np.ndarray | torch.Tensor, pafs: np.ndarray | torch.Tensor,
                       upsample: int = 4, *, refine: bool = False) -> list[list[np.ndarray]]:
    """People per frame from (N, 19|18, H, W) heatmaps and (N, 38, H, W) PAFs at stride 8.

    Each person is an (18, 3) float32 array (x, y, score) in network-input pixels, all -1 for a
    missing joint; people are in the original post-processing's order.

    ``refine``: report each joint at its sub-cell peak (:func:`refine_peaks`) instead of the
    integer grid cell (``8 / upsample`` network-input px). Which peaks are found and how they are
    grouped into people is unchanged (grouping works on the integer cells, as the original);
    off reproduces the official demo exactly.
    """
    hm = _as_numpy(heatmaps, "heatmaps", (18, 19))
    pf = _as_numpy(pafs, "pafs", (38,))
    if hm.shape[0] != pf.shape[0] or hm.shape[2:] != pf.shape[2:]:
        raise ValueError(f"heatmaps {hm.shape} and pafs {pf.shape} must have the same N, H and W")
    if not isinstance(upsample, (int, np.integer)) or upsample < 1:
        raise ValueError(f"upsample must be a positive integer, got {upsample!r}")
    n = hm.shape[0]
    if n == 0:
        return []
    up = upsample_heatmaps(hm, upsample)
    f, t, x, y, kscore = find_peaks(up)
    cand = _limb_candidates(n, f, t, x, y, pf, upsample)
    conns = _choose_connections(*cand)
    slots, person_frame = _assemble(n, len(x), f, t, kscore, *conns)
    to_input = STRIDE / upsample
    fx, fy = refine_peaks(up, f, t, x, y) if refine else (x, y)
    table = np.stack([fx * to_input, fy * to_input, kscore], axis=1).astype(np.float32)
    table = np.concatenate([table, np.full((1, 3), -1, np.float32)])  # index -1 -> missing row
    people = table[slots]  # (P, 18, 3)
    out: list[list[np.ndarray]] = [[] for _ in range(n)]
    for p, fr in zip(people, person_frame):  # distributing results, not computing them
        out[fr].append(p)
    return out


def decode_poses(heatmaps: np.ndarray | torch.Tensor, pafs: np.ndarray | torch.Tensor,
                 upsample: int = 4, *, refine: bool = False) -> list[np.ndarray]:
    """People in one frame from (19|18, H, W) heatmaps and (38, H, W) PAFs at stride 8.

    See :func:`decode_poses_batch`; coordinates are network-input pixels.
    """
    if getattr(heatmaps, "ndim", 0) != 3 or getattr(pafs, "ndim", 0) != 3:
        raise ValueError("decode_poses takes one frame: heatmaps (19, H, W) and pafs (38, H, W); "
                         "use decode_poses_batch for (N, C, H, W)")
    return decode_poses_batch(heatmaps[None], pafs[None], upsample, refine=refine)[0]


# ------------------------------------------------------------------------------------- reference

def reference_decode_poses(heatmaps_up: np.ndarray, pafs_up: np.ndarray, upsample: int = 4) -> list[np.ndarray]:
    """Straightforward loops per joint type, peak, candidate pair and person over one frame's *upsampled* maps.

    A plain re-statement of the original algorithm (rules in the module docstring), kept as an
    independent cross-check for the vectorised decoder and as the speed baseline in
    benchmarks/bench_pose.py. heatmaps_up (H, W, 18|19), pafs_up (H, W, 38), as cv2.resize returns.
    """
    kpts: list[tuple[float, float, float, int]] = []  # x, y, score, type
    by_type: list[list[int]] = []
    for j in range(NUM_JOINTS):
        m = heatmaps_up[:, :, j].copy()
        m[m < HEATMAP_THRESHOLD] = 0
        pad = np.pad(m, 1)
        c = pad[1:-1, 1:-1]
        peak = (c > pad[1:-1, :-2]) & (c > pad[1:-1, 2:]) & (c > pad[:-2, 1:-1]) & (c > pad[2:, 1:-1])
        ys, xs = np.nonzero(peak)
        peaks = [(int(xx), int(yy)) for xx, yy in zip(xs, ys)]
        peaks.sort()
        kept: list[tuple[int, int]] = []
        suppressed = [False] * len(peaks)
        for i, (px, py) in enumerate(peaks):
            if suppressed[i]:
                continue
            kept.append((px, py))
            for k in range(i + 1, len(peaks)):
                qx, qy = peaks[k]
                if (qx - px) ** 2 + (qy - py) ** 2 < NMS_RADIUS ** 2:
                    suppressed[k] = True
        by_type.append([])
        for px, py in kept:
            by_type[j].append(len(kpts))
            kpts.append((px, py, float(m[py, px]), j))

    entries: list[dict] = []  # {"slots": [18], "score": float, "count": int}
    for limb in range(NUM_LIMBS):
        ja, jb = LIMB_JOINTS[limb]
        cands = []
        for bi, kb in enumerate(by_type[jb]):
            for ai, ka in enumerate(by_type[ja]):
                ax, ay = kpts[ka][:2]
                vx = np.float32(kpts[kb][0] - ax)
                vy = np.float32(kpts[kb][1] - ay)
                norm = np.float32(np.sqrt(vx * vx + vy * vy)) + np.float32(1e-6)
                ux, uy = vx / norm, vy / norm
                total, n_valid = 0.0, 0
                for t in range(POINTS_PER_LIMB):
                    sx = int(np.rint(vx * np.float32(1 / 9) * np.float32(t) + np.float32(ax)))
                    sy = int(np.rint(vy * np.float32(1 / 9) * np.float32(t) + np.float32(ay)))
                    val = pafs_up[sy, sx, LIMB_PAFS[limb, 0]] * ux + pafs_up[sy, sx, LIMB_PAFS[limb, 1]] * uy
                    if val > MIN_PAF_SCORE:
                        total += float(val)
                        n_valid += 1
                score = total / (n_valid + 1e-6)
                if score > 0 and n_valid / POINTS_PER_LIMB > MIN_SUCCESS_RATIO:
                    cands.append((score, bi * len(by_type[ja]) + ai, ka, kb))
        cands.sort(key=lambda c: (-c[0], -c[1]))
        used_a, used_b, conns = set(), set(), []
        for score, _, ka, kb in cands:
            if ka not in used_a and kb not in used_b:
                used_a.add(ka)
                used_b.add(kb)
                conns.append((ka, kb, score))
        for ka, kb, score in conns:
            if limb >= TREE_LIMBS:
                for e in entries:
                    if e["slots"][ja] == ka and e["slots"][jb] == -1:
                        e["slots"][jb] = kb
                    elif e["slots"][jb] == kb and e["slots"][ja] == -1:
                        e["slots"][ja] = ka
                continue
            matched = False
            for e in entries:
                if e["slots"][ja] == ka:
                    e["slots"][jb] = kb
                    e["count"] += 1
                    e["score"] += kpts[kb][2] + score
                    matched = True
            if not matched:
                slots = [-1] * NUM_JOINTS
                slots[ja], slots[jb] = ka, kb
                entries.append({"slots": slots, "count": 2, "score": kpts[ka][2] + kpts[kb][2] + score})
    people = []
    for e in entries:
        if e["count"] < MIN_PERSON_JOINTS or e["score"] / e["count"] < MIN_PERSON_MEAN_SCORE:
            continue
        p = np.full((NUM_JOINTS, 3), -1, dtype=np.float32)
        for j, k in enumerate(e["slots"]):
            if k >= 0:
                p[j] = (kpts[k][0] * STRIDE / upsample, kpts[k][1] * STRIDE / upsample, kpts[k][2])
        people.append(p)
    return people
