"""SimCamera: ground truth and OpenCV rendering of a simulated bed camera.

Keypoints are (x, y, v) in frame pixels in OpenPose-18 order; x, y are the true projected positions
(also for hidden joints), v = 1 if the joint can be seen (in frame, facing the camera for face joints,
not under the blanket, not pressed under the body, not covered by a caregiver) and 0 otherwise.

State (pose, visibility, labels) is computed vectorised for chunks of frames and cached, so
`keypoints(i)` and `track()` never draw anything; `frame(i)` draws on a cached static background.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ward.core.keypoints import OPENPOSE_18
from ward.sim.behaviours import behaviour_pose, breathing, caregiver_joints
from ward.sim.body import FACE_IDX, JI, LEG_JOINTS, BodyShape, forward_kinematics
from ward.sim.camera import FLOOR_Z, Camera, make_camera
from ward.sim.labels import target as target_fn
from ward.sim.motion import Sines, envelope
from ward.sim.scenario import Scenario
from ward.sim.seizures import PHASES, behaviour_suppression, breathing_gain, seizure_pose

CHUNK = 256
SHIFT = 3                 # sub-pixel bits for OpenCV drawing: slow motion moves smoothly
_FX = float(1 << SHIFT)
BLANKET_X = 0.56          # blanket half-width, m
BLANKET_Z = 0.10
N18 = len(OPENPOSE_18)


@dataclass
class _Chunk:
    t: np.ndarray              # (N,)
    uv: np.ndarray             # (N, J, 2) patient joints, px (after camera shake)
    scale: np.ndarray          # (N, J) px per metre at each joint
    vis: np.ndarray            # (N, J) bool
    face_vis: np.ndarray       # (N, J) bool, face joints facing the camera (drawing)
    blanket_uv: np.ndarray     # (N, 4, 2) blanket polygon px
    covered: np.ndarray        # (N, J) bool: leg joints under the blanket
    others: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # per caregiver: mask (N,), uv (M,J,2), scale (M,J), vis (M,J)
    shake: np.ndarray          # (N, 2, 3) affine of the camera shake
    shaking: np.ndarray        # (N,) bool
    lights_off: np.ndarray     # (N,) bool
    compression: np.ndarray    # (N,) float, 0 = none, else strength
    behaviour: np.ndarray      # (N,) str
    events: list[list[str]]
    phase: np.ndarray          # (N,) int8 into PHASES
    seizure_type: np.ndarray   # (N,) str
    target: np.ndarray         # (N,)


def _capsule_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points p (N, J, 2) to segments a-b (N, K, 2) -> (N, J, K)."""
    ab = (b - a)[:, None]
    ap = p[:, :, None] - a[:, None]
    h = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    return np.linalg.norm(ap - h[..., None] * ab, axis=-1)


# caregiver body capsules: (joint a, joint b, radius m) used for occlusion
_CARE_CAPS = (("neck", "pelvis", 0.2), ("r_sho", "r_elb", 0.06), ("r_elb", "r_wri", 0.06),
              ("l_sho", "l_elb", 0.06), ("l_elb", "l_wri", 0.06), ("head_c", "head_c", 0.11),
              ("r_sho", "l_sho", 0.07))
_CA = np.array([JI[a] for a, _, _ in _CARE_CAPS])
_CB = np.array([JI[b] for _, b, _ in _CARE_CAPS])
_CR = np.array([r for _, _, r in _CARE_CAPS])


class SimCamera:
    """A simulated bed camera for one Scenario. Deterministic: frame(i) depends only on (scenario, i)."""

    def __init__(self, scenario: Scenario, fast: bool = True):
        self.sc = scenario
        self.fps = scenario.fps
        self.width, self.height = scenario.width, scenario.height
        self.n_frames = scenario.n_frames
        self.line = cv2.LINE_8 if fast else cv2.LINE_AA
        ap = scenario.appearance
        assert ap is not None
        self.ap = ap
        self.shape = BodyShape(scale=ap.body_scale, pelvis_xy=(ap.pelvis_x, 0.98))
        self.cam: Camera = make_camera(scenario.view, self.width, self.height, ap.camera_jitter)
        self.plans = scenario.plans()
        rng = np.random.default_rng([scenario.seed, 41])
        self.breath_rate = float(rng.uniform(0.2, 0.3))
        self.breath_depth = float(rng.uniform(0.7, 1.3))
        self._shake_sig = Sines(rng, 3.0, 8.0, 3, 3)
        self._bg: np.ndarray | None = None
        self._noise: list[np.ndarray] | None = None
        self._chunks: dict[int, _Chunk] = {}
        self._vignette: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------ state

    def _chunk(self, c: int) -> _Chunk:
        ch = self._chunks.get(c)
        if ch is None:
            if len(self._chunks) > 8:
                self._chunks.clear()
            ch = self._chunks[c] = self._compute(np.arange(c * CHUNK, (c + 1) * CHUNK))
        return ch

    def _compute(self, frames: np.ndarray) -> _Chunk:
        sc, n = self.sc, len(frames)
        t = frames / self.fps
        gain, _ = breathing_gain(self.plans, t)
        pose = breathing(t, self.breath_rate, self.breath_depth * gain)
        supp = behaviour_suppression(self.plans, t)
        behaviour = np.full(n, "sleep", dtype=object)
        for i, b in enumerate(sc.behaviours):
            m = (t >= b.start_s) & (t < b.start_s + b.duration_s)
            if not m.any():
                continue
            bp = behaviour_pose(b.kind, t[m] - b.start_s, b.duration_s, 1 if b.side == "right" else -1,
                                b.intensity, seed=sc.seed * 7919 + 31 * i + 5)
            pose += bp.masked_into(m, n).scaled(supp)
            behaviour[m & (supp > 0)] = b.kind
        phase = np.zeros(n, dtype=np.int8)
        stype = np.full(n, "none", dtype=object)
        for pl in self.plans:
            pose += seizure_pose(pl, t)
            code = pl.phase_code(t)
            stype[code > 0] = pl.type
            phase = np.maximum(phase, code)
        behaviour[phase == 2] = "seizure"
        behaviour[phase == 3] = "post_ictal"
        joints, normals = forward_kinematics(pose, self.shape)
        uv, depth = self.cam.project(joints)
        scale = self.cam.f / depth

        # events
        ev_names: list[list[str]] = [[] for _ in range(n)]
        shake_xy = np.zeros((n, 3))
        lights = np.zeros(n, bool)
        comp = np.zeros(n)
        others = []
        for k, e in enumerate(sc.events):
            m = (t >= e.start_s) & (t < e.start_s + e.duration_s)
            if not m.any():
                continue
            for idx in np.flatnonzero(m):
                ev_names[idx].append(e.kind)
            if e.kind == "lights_off":
                lights |= m
            elif e.kind == "compression":
                comp[m] = np.maximum(comp[m], e.intensity)
            elif e.kind == "camera_shake":
                env = envelope(t - e.start_s, e.duration_s, 0.3)[:, None] * m[:, None]
                shake_xy += env * e.intensity * self._shake_sig(t) * np.array([0.006 * self.width, 0.006 * self.width, 0.005])
            elif e.kind == "caregiver":
                cj = caregiver_joints(t[m] - e.start_s, e.duration_s, 1 if e.side == "right" else -1,
                                      seed=sc.seed * 7919 + 977 * k + 3)
                cuv, cdepth = self.cam.project(cj)
                others.append((m, cuv, self.cam.f / cdepth, cj))

        # visibility
        top = self.ap.blanket_top - pose.blanket                                       # (N,)
        covered = ((joints[..., 1] > top[:, None] - 0.02) & (np.abs(joints[..., 0]) < BLANKET_X)
                   & (joints[..., 2] < 0.28))
        leg = np.zeros(joints.shape[1], bool)
        leg[LEG_JOINTS] = True
        covered &= leg[None]
        face = np.zeros(joints.shape[1], bool)
        face[FACE_IDX] = True
        facing = (normals * self.cam.direction_to(joints)).sum(-1) > 0.2
        face_vis = facing | ~face[None]
        pressed = (joints[..., 2] < -0.06) & ~face[None]
        vis = face_vis & ~covered & ~pressed
        other_out = []
        for m, cuv, cscale, cj in others:
            a, b = cuv[:, _CA], cuv[:, _CB]
            r = _CR[None] * cscale[:, _CA]
            d = _capsule_dist(uv[m], a, b)
            occ = (d < r[:, None, :]).any(-1)
            vis[m] &= ~occ
            # the caregiver's own joints: visible if in frame and not behind the own torso from above
            cvis = np.ones(cj.shape[:2], bool)
            if sc.view == "ceiling":
                cvis[:, LEG_JOINTS] = False
            other_out.append((m, cuv, cscale, cvis))

        # camera shake as a small affine warp of the whole image (and the keypoints)
        shaking = np.abs(shake_xy).sum(1) > 1e-6
        cxy = np.array([self.width / 2, self.height / 2])
        ang = shake_xy[:, 2]
        cos, sin = np.cos(ang), np.sin(ang)
        M = np.zeros((n, 2, 3))
        M[:, 0, 0], M[:, 0, 1], M[:, 1, 0], M[:, 1, 1] = cos, -sin, sin, cos
        M[:, :, 2] = cxy[None] - np.einsum("nij,j->ni", M[:, :, :2], cxy) + shake_xy[:, :2]
        uv = np.einsum("nij,nkj->nki", M[:, :, :2], uv) + M[:, None, :, 2]
        other_out = [(m, np.einsum("nij,nkj->nki", M[m][:, :, :2], cuv) + M[m][:, None, :, 2], s, v)
                     for m, cuv, s, v in other_out]
        inframe = (uv[..., 0] >= 0) & (uv[..., 0] <= self.width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= self.height - 1)
        vis &= inframe
        other_out = [(m, cuv, s, v & (cuv[..., 0] >= 0) & (cuv[..., 0] <= self.width - 1) & (cuv[..., 1] >= 0)
                      & (cuv[..., 1] <= self.height - 1)) for m, cuv, s, v in other_out]

        # blanket polygon per frame
        corners = np.zeros((n, 4, 3))
        corners[:, :, 2] = BLANKET_Z
        corners[:, 0, :2] = np.stack([-BLANKET_X * np.ones(n), top], 1)
        corners[:, 1, :2] = np.stack([BLANKET_X * np.ones(n), top], 1)
        corners[:, 2, :2] = [BLANKET_X, 2.08]
        corners[:, 3, :2] = [-BLANKET_X, 2.08]
        buv, _ = self.cam.project(corners)
        buv = np.einsum("nij,nkj->nki", M[:, :, :2], buv) + M[:, None, :, 2]

        return _Chunk(t=t, uv=uv, scale=scale, vis=vis, face_vis=face_vis, blanket_uv=buv, covered=covered,
                      others=other_out, shake=M, shaking=shaking, lights_off=lights, compression=comp,
                      behaviour=behaviour, events=ev_names, phase=phase, seizure_type=stype,
                      target=target_fn(t, self.plans))

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside the scenario (0..{self.n_frames - 1}, "
                             f"{self.sc.duration_s} s at {self.fps} fps)")

    def keypoints(self, i: int) -> np.ndarray:
        """Ground-truth (18, 3) keypoints of frame i (x, y px; v in {0, 1}); no rendering."""
        self._check(i)
        ch = self._chunk(i // CHUNK)
        k = i % CHUNK
        return np.concatenate([ch.uv[k, :N18], ch.vis[k, :N18, None]], -1).astype(np.float32)

    def info(self, i: int) -> dict[str, Any]:
        """Labels of frame i: time, behaviour, scene events, seizure phase and type, target probability,
        and the keypoints of other people in view (caregivers; never the patient)."""
        self._check(i)
        ch = self._chunk(i // CHUNK)
        k = i % CHUNK
        others = []
        for m, cuv, _s, cvis in ch.others:
            if m[k]:
                r = int(m[:k].sum())
                others.append(np.concatenate([cuv[r, :N18], cvis[r, :N18, None]], -1).astype(np.float32))
        return {"frame": i, "t": float(ch.t[k]), "behaviour": str(ch.behaviour[k]), "events": list(ch.events[k]),
                "seizure_phase": PHASES[int(ch.phase[k])], "seizure_type": str(ch.seizure_type[k]),
                "target": float(ch.target[k]), "others": others}

    def track(self, start: int = 0, stop: int | None = None, step: int = 1) -> dict[str, np.ndarray]:
        """Ground truth for frames range(start, stop, step), vectorised (the fast path for datasets):
        frame (N,), t (N,), kpts (N, 18, 3), target (N,), phase (N,) str, behaviour (N,) str, seizure_type (N,)."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        frames = np.arange(start, stop, step)
        if len(frames) and (frames[0] < 0):
            raise IndexError("track start must be >= 0")
        out: dict[str, list[np.ndarray]] = {k: [] for k in ("kpts", "target", "phase", "behaviour", "seizure_type")}
        for c in np.unique(frames // CHUNK):
            ch = self._chunk(int(c))
            k = frames[frames // CHUNK == c] % CHUNK
            out["kpts"].append(np.concatenate([ch.uv[k, :N18], ch.vis[k, :N18, None]], -1))
            out["target"].append(ch.target[k])
            out["phase"].append(np.array(PHASES, dtype=object)[ch.phase[k]])
            out["behaviour"].append(ch.behaviour[k])
            out["seizure_type"].append(ch.seizure_type[k])
        res = {k: (np.concatenate(v) if v else np.zeros((0,))) for k, v in out.items()}
        res["kpts"] = res["kpts"].astype(np.float32).reshape(-1, N18, 3)
        res["frame"] = frames
        res["t"] = frames / self.fps
        return res

    # -------------------------------------------------------------------------------------- rendering

    def _pt(self, p: np.ndarray) -> tuple[int, int]:
        return int(p[0] * _FX + 0.5), int(p[1] * _FX + 0.5)

    def background(self) -> np.ndarray:
        """Static room, bed and pillow (cached)."""
        if self._bg is None:
            self._bg = _draw_background(self.cam, self.width, self.height, self.ap, self.sc.view, self.sc.seed)
        return self._bg

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(bgr uint8 (H, W, 3), keypoints (18, 3), info) of frame i."""
        self._check(i)
        ch = self._chunk(i // CHUNK)
        k = i % CHUNK
        img = self.background().copy()
        self._draw_patient(img, ch, k)
        for m, cuv, cs, _v in ch.others:
            if m[k]:
                r = int(m[:k].sum())
                self._draw_person(img, cuv[r], cs[r], _CAREGIVER_COLOURS, legs=True)
        if ch.shaking[k]:
            img = cv2.warpAffine(img, ch.shake[k], (self.width, self.height), borderMode=cv2.BORDER_REFLECT)
        img = self._sensor(img, i, bool(ch.lights_off[k]), float(ch.compression[k]))
        return img, self.keypoints(i), self.info(i)

    def _line(self, img, a, b, colour, width_px):
        cv2.line(img, self._pt(a), self._pt(b), colour, max(1, int(width_px)), self.line, SHIFT)

    def _draw_patient(self, img: np.ndarray, ch: _Chunk, k: int) -> None:
        ap, P, S = self.ap, ch.uv[k], ch.scale[k]
        cov = ch.covered[k]
        # torso (shirt), partly hidden by the blanket drawn after it
        quad = P[[JI["r_sho"], JI["l_sho"], JI["l_hip"], JI["r_hip"]]]
        c = quad.mean(0)
        quad = c + (quad - c) * 1.25
        cv2.fillPoly(img, [(quad * _FX).astype(np.int32)], ap.shirt, self.line, SHIFT)
        self._line(img, P[JI["neck"]], P[JI["pelvis"]], ap.shirt, 0.28 * S[JI["neck"]])
        legs = (("r_hip", "r_knee", 0.15), ("r_knee", "r_ank", 0.11), ("l_hip", "l_knee", 0.15), ("l_knee", "l_ank", 0.11))
        # blanket with a folded edge, then leg shapes pressing through it
        bl = ch.blanket_uv[k]
        cv2.fillPoly(img, [(bl * _FX).astype(np.int32)], ap.blanket, self.line, SHIFT)
        fold = bl.copy()
        fold[2:] = bl[:2][::-1] + (bl[2:] - bl[:2][::-1]) * 0.05
        light = tuple(min(255, int(v * 1.15 + 12)) for v in ap.blanket)
        dark = tuple(int(v * 0.9) for v in ap.blanket)
        ridge = tuple(min(255, int(v * 1.05 + 4)) for v in ap.blanket)
        cv2.fillPoly(img, [(fold[[0, 1, 2, 3]] * _FX).astype(np.int32)], light, self.line, SHIFT)
        for a, b, w in legs:
            ja, jb = JI[a], JI[b]
            if cov[ja] or cov[jb]:
                off = np.array([0.0, 0.03]) * S[ja]
                self._line(img, P[ja] + off, P[jb] + off, dark, w * S[ja] * 0.6)
                self._line(img, P[ja], P[jb], ridge, w * S[ja] * 0.6)
        for a, b, w in legs:
            ja, jb = JI[a], JI[b]
            if not (cov[ja] or cov[jb]):
                self._line(img, P[ja], P[jb], ap.trousers, w * S[ja])
        for ank in ("r_ank", "l_ank"):
            if not cov[JI[ank]]:
                cv2.circle(img, self._pt(P[JI[ank]]), max(1, int(0.05 * S[JI[ank]] * _FX)), ap.skin, -1, self.line, SHIFT)
        self._draw_upper(img, P, S, ap.skin, ap.shirt, ap.hair, ch.face_vis[k])

    def _draw_upper(self, img, P, S, skin, shirt, hair, face_vis) -> None:
        for side in ("r_", "l_"):
            sho, elb, wri = JI[side + "sho"], JI[side + "elb"], JI[side + "wri"]
            self._line(img, P[JI["neck"]], P[sho], shirt, 0.11 * S[sho])
            self._line(img, P[sho], P[elb], shirt, 0.1 * S[sho])
            self._line(img, P[elb], P[wri], skin, 0.07 * S[elb])
            cv2.circle(img, self._pt(P[wri]), max(1, int(0.045 * S[wri] * _FX)), skin, -1, self.line, SHIFT)
        hc, nk = JI["head_c"], JI["neck"]
        self._line(img, P[nk], P[hc], skin, 0.08 * S[nk])
        r = 0.1 * S[hc]
        back = P[hc] + (P[hc] - P[JI["nose"]]) * 0.35
        cv2.circle(img, self._pt(back), max(1, int(r * _FX)), hair, -1, self.line, SHIFT)
        cv2.circle(img, self._pt(P[hc] + (P[JI["nose"]] - P[hc]) * 0.25), max(1, int(0.088 * S[hc] * _FX)), skin, -1,
                   self.line, SHIFT)
        for name, col, rad in (("r_ear", skin, 0.025), ("l_ear", skin, 0.025), ("r_eye", (40, 40, 40), 0.012),
                               ("l_eye", (40, 40, 40), 0.012), ("nose", tuple(int(v * 0.8) for v in skin), 0.016)):
            j = JI[name]
            if face_vis[j]:
                cv2.circle(img, self._pt(P[j]), max(1, int(rad * S[j] * _FX)), col, -1, self.line, SHIFT)

    def _draw_person(self, img, P, S, colours, legs: bool) -> None:
        skin, shirt, trousers, hair = colours
        if legs:
            for a, b in (("r_hip", "r_knee"), ("r_knee", "r_ank"), ("l_hip", "l_knee"), ("l_knee", "l_ank")):
                self._line(img, P[JI[a]], P[JI[b]], trousers, 0.14 * S[JI[a]])
        quad = P[[JI["r_sho"], JI["l_sho"], JI["l_hip"], JI["r_hip"]]]
        c = quad.mean(0)
        cv2.fillPoly(img, [((c + (quad - c) * 1.3) * _FX).astype(np.int32)], shirt, self.line, SHIFT)
        self._line(img, P[JI["neck"]], P[JI["pelvis"]], shirt, 0.32 * S[JI["neck"]])
        face_vis = np.zeros(len(P), bool)
        self._draw_upper(img, P, S, skin, shirt, hair, face_vis)

    def _sensor(self, img: np.ndarray, i: int, lights_off: bool, compression: float) -> np.ndarray:
        """Lighting, sensor noise and compression."""
        sigma = self.sc.noise
        bank = self._noise_bank() if sigma > 0 else None
        nz = bank[(i * 5 + self.sc.seed) % len(bank)] if bank is not None else None
        if lights_off:   # infrared: grey, darker towards the corners, grainier
            g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            if self._vignette is None:
                yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
                d = ((xx - self.width / 2) / self.width) ** 2 + ((yy - self.height / 2) / self.height) ** 2
                self._vignette = np.clip(255 * (1.0 - 1.6 * d), 0, 255).astype(np.uint8)
            g = cv2.multiply(g, self._vignette, scale=0.7 / 255)
            if nz is not None:
                g = np.clip(g.astype(np.int16) + 3 * nz[..., 0], 0, 255).astype(np.uint8)
            img = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        elif nz is not None:
            img = np.clip(img.astype(np.int16) + nz, 0, 255).astype(np.uint8)
        if compression > 0:
            q = int(np.clip(45 / compression, 8, 70))
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return img

    def _noise_bank(self) -> list[np.ndarray]:
        if self._noise is None:
            rng = np.random.default_rng([self.sc.seed, 53])
            s = self.sc.noise * 255
            self._noise = [np.clip(rng.normal(0, s, (self.height, self.width, 3)), -40, 40).astype(np.int16)
                           for _ in range(6)]
        return self._noise


_CAREGIVER_COLOURS = ((150, 170, 205), (160, 140, 60), (150, 130, 60), (40, 40, 50))   # skin, scrubs, trousers, hair


def _draw_background(cam: Camera, w: int, h: int, ap, view: str, seed: int) -> np.ndarray:
    """Room floor (and wall for bed_end), bed frame, mattress with sheet, pillow, bedside table with a cup."""
    rng = np.random.default_rng([seed, 61])
    img = np.empty((h, w, 3), np.uint8)
    img[:] = ap.floor

    def poly(pts3, colour):
        uv, depth = cam.project(np.asarray(pts3, float))
        cv2.fillPoly(img, [(uv * _FX).astype(np.int32)], colour, cv2.LINE_AA, SHIFT)

    def box(x0, x1, y0, y1, z, colour):
        poly([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], colour)

    # floor tiles
    dark = tuple(int(v * 0.88) for v in ap.floor)
    for g in np.arange(-4, 6.01, 0.6):
        for a, b in (([g, -2, FLOOR_Z], [g, 6, FLOOR_Z]), ([-4, g, FLOOR_Z], [6, g, FLOOR_Z])):
            uv, _ = cam.project(np.array([a, b], float))
            cv2.line(img, tuple((uv[0] * _FX).astype(int)), tuple((uv[1] * _FX).astype(int)), dark, 1, cv2.LINE_AA, SHIFT)
    if view == "bed_end":
        poly([[-4, -0.45, FLOOR_Z], [4, -0.45, FLOOR_Z], [4, -0.45, 3.0], [-4, -0.45, 3.0]], ap.wall)
        poly([[-0.5, -0.08, -0.2], [0.5, -0.08, -0.2], [0.5, -0.08, 0.55], [-0.5, -0.08, 0.55]], (70, 80, 90))
    # bedside table and cup on the patient's right (image bottom in the ceiling view)
    side = 1 if rng.random() < 0.5 else -1
    box(side * 0.62, side * 1.05, 0.25, 0.7, 0.2, (60, 90, 120))
    uv, d = cam.project(np.array([side * 0.78, 0.4, 0.3]))
    cv2.circle(img, tuple((uv * _FX).astype(int)), max(1, int(0.04 * cam.f / d * _FX)), (230, 230, 240), -1, cv2.LINE_AA, SHIFT)
    # bed frame, mattress, sheet, pillow
    box(-0.5, 0.5, -0.06, 2.08, -0.12, (110, 110, 115))
    box(-0.46, 0.46, -0.02, 2.04, 0.0, ap.sheet)
    for x in (-0.5, 0.5):   # side rails
        uv, _ = cam.project(np.array([[x, 0.2, 0.25], [x, 1.2, 0.25]]))
        cv2.line(img, tuple((uv[0] * _FX).astype(int)), tuple((uv[1] * _FX).astype(int)), (150, 150, 155),
                 max(1, int(0.03 * cam.f / 2)), cv2.LINE_AA, SHIFT)
    pil, d = cam.project(np.array([0.0, 0.22, 0.08]))
    axes = (int(0.3 * cam.f / d * _FX), int(0.16 * cam.f / d * _FX))
    if view == "ceiling":
        axes = axes[::-1]
    cv2.ellipse(img, tuple((pil * _FX).astype(int)), axes, 0, 0, 360, (245, 245, 250), -1, cv2.LINE_AA, SHIFT)
    # static texture so the background is not flat
    tex = rng.normal(0, 4, (h // 8 + 1, w // 8 + 1, 1)).astype(np.float32)
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    return np.clip(img.astype(np.float32) + tex, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------- capture

class SimCapture:
    """cv2.VideoCapture-like reader of a simulated camera; paces frames in real time when realtime=True."""

    def __init__(self, scenario: Scenario, realtime: bool = True):
        self.cam = SimCamera(scenario)
        self.realtime = realtime
        self.loop = scenario.loop
        self.pos = 0
        self._t0: float | None = None
        self._open = True
        self.last_info: dict[str, Any] | None = None
        self.last_keypoints: np.ndarray | None = None

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open:
            return False, None
        if self.pos >= self.cam.n_frames:
            if not self.loop:
                return False, None
            self.pos = 0
            self._t0 = None
        if self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - self.pos / self.cam.fps
            wait = self._t0 + self.pos / self.cam.fps - now
            if wait > 0:
                time.sleep(wait)
        img, k, info = self.cam.frame(self.pos)
        self.last_keypoints, self.last_info = k, info
        self.pos += 1
        return True, img

    def grab(self) -> bool:
        ok, _ = self.read()
        return ok

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: self.cam.fps, cv2.CAP_PROP_FRAME_WIDTH: float(self.cam.width),
                cv2.CAP_PROP_FRAME_HEIGHT: float(self.cam.height), cv2.CAP_PROP_FRAME_COUNT: float(self.cam.n_frames),
                cv2.CAP_PROP_POS_FRAMES: float(self.pos),
                cv2.CAP_PROP_POS_MSEC: 1000.0 * self.pos / self.cam.fps}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_POS_FRAMES and 0 <= value < self.cam.n_frames:
            self.pos = int(value)
            self._t0 = None
            return True
        return False

    def release(self) -> None:
        self._open = False


def open_capture(uri: str, realtime: bool = True) -> SimCapture:
    """Open a sim:// URI (or scenario file) as a camera source."""
    from ward.sim.scenario import load_scenario

    return SimCapture(load_scenario(uri), realtime=realtime)
