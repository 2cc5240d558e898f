"""Articulated body of a patient lying in a bed: vectorised forward kinematics.

World frame (metres): x = the patient's right when lying supine, y = along the bed from the head
end (y = 0) to the foot, z = up, with z = 0 on the mattress surface. This is right-handed, so any
camera built with ``look_at`` shows the patient un-mirrored.

The skeleton is a tree of rigid segments rooted at the pelvis. A pose is the rest pose plus deltas:
``d_angle`` (in-bed-plane rotation, inherited down the chain, so bending an elbow moves the wrist),
``d_elev`` (elevation out of the bed plane, per segment, not inherited), a root offset, a body yaw
and a head yaw (rotation of the face about the head's long axis, for head version and turning).
Face joints (nose, eyes, ears) sit on a sphere around the head centre and carry an outward normal
so the camera can hide the ones that face away from it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from ward.core.keypoints import OPENPOSE_18

# Internal joints: the 18 OpenPose joints plus the pelvis (root) and the head centre.
JOINTS: Final[tuple[str, ...]] = OPENPOSE_18 + ("pelvis", "head_c")
JI: Final[dict[str, int]] = {n: i for i, n in enumerate(JOINTS)}
NUM_JOINTS: Final[int] = len(JOINTS)

# (name, parent joint, child joint, length m, rest angle in bed plane (rad, dir = (cos, sin)), rest elevation)
_H = np.pi / 2
_SEGMENTS: Final[tuple[tuple[str, str, str, float, float, float], ...]] = (
    ("spine", "pelvis", "neck", 0.50, -_H, 0.0),
    ("neck", "neck", "head_c", 0.17, -_H, 0.0),
    ("r_clav", "neck", "r_sho", 0.19, 0.0, 0.0),
    ("r_upper", "r_sho", "r_elb", 0.29, _H - 0.22, 0.0),
    ("r_fore", "r_elb", "r_wri", 0.26, _H - 0.05, 0.0),
    ("l_clav", "neck", "l_sho", 0.19, np.pi, 0.0),
    ("l_upper", "l_sho", "l_elb", 0.29, _H + 0.22, 0.0),
    ("l_fore", "l_elb", "l_wri", 0.26, _H + 0.05, 0.0),
    ("r_hipseg", "pelvis", "r_hip", 0.10, 0.0, 0.0),
    ("r_thigh", "r_hip", "r_knee", 0.44, _H - 0.04, 0.0),
    ("r_shin", "r_knee", "r_ank", 0.42, _H, 0.0),
    ("l_hipseg", "pelvis", "l_hip", 0.10, np.pi, 0.0),
    ("l_thigh", "l_hip", "l_knee", 0.44, _H + 0.04, 0.0),
    ("l_shin", "l_knee", "l_ank", 0.42, _H, 0.0),
)
SEGMENT_NAMES: Final[tuple[str, ...]] = tuple(s[0] for s in _SEGMENTS)
SI: Final[dict[str, int]] = {n: i for i, n in enumerate(SEGMENT_NAMES)}
NUM_SEGMENTS: Final[int] = len(_SEGMENTS)
SEG_PARENT_JOINT: Final[np.ndarray] = np.array([JI[s[1]] for s in _SEGMENTS])
SEG_CHILD_JOINT: Final[np.ndarray] = np.array([JI[s[2]] for s in _SEGMENTS])
SEG_LENGTH: Final[np.ndarray] = np.array([s[3] for s in _SEGMENTS])
REST_ANGLE: Final[np.ndarray] = np.array([s[4] for s in _SEGMENTS])
REST_ELEV: Final[np.ndarray] = np.array([s[5] for s in _SEGMENTS])


def _chain_matrices() -> tuple[np.ndarray, np.ndarray]:
    """ANC[k, j] = 1 if segment j is segment k or one of its ancestors; PATH[i, k] = 1 if segment k lies on
    the path from the root to joint i. Both turn tree recursion into one matrix product."""
    seg_ending_at = {int(c): k for k, c in enumerate(SEG_CHILD_JOINT)}
    anc = np.zeros((NUM_SEGMENTS, NUM_SEGMENTS))
    path = np.zeros((NUM_JOINTS, NUM_SEGMENTS))
    for k in range(NUM_SEGMENTS):
        j = k
        while True:
            anc[k, j] = 1.0
            parent = int(SEG_PARENT_JOINT[j])
            if parent not in seg_ending_at:
                break
            j = seg_ending_at[parent]
    for k in range(NUM_SEGMENTS):
        path[SEG_CHILD_JOINT[k]] = anc[k]
    return anc, path


ANC, PATH = _chain_matrices()

# Face features on the head sphere: (joint, lateral angle from the face normal (+ = patient's right), radius, offset along head axis)
_FACE: Final[tuple[tuple[str, float, float, float], ...]] = (
    ("nose", 0.0, 0.115, -0.01),
    ("r_eye", 0.45, 0.10, 0.035),
    ("l_eye", -0.45, 0.10, 0.035),
    ("r_ear", 1.55, 0.085, 0.0),
    ("l_ear", -1.55, 0.085, 0.0),
)
FACE_IDX: Final[np.ndarray] = np.array([JI[f[0]] for f in _FACE])
_FACE_ALPHA = np.array([f[1] for f in _FACE])
_FACE_R = np.array([f[2] for f in _FACE])
_FACE_S = np.array([f[3] for f in _FACE])

LEG_JOINTS: Final[np.ndarray] = np.array([JI[n] for n in ("r_hip", "r_knee", "r_ank", "l_hip", "l_knee", "l_ank", "pelvis")])
OPENPOSE_FROM_INTERNAL: Final[np.ndarray] = np.arange(len(OPENPOSE_18))


@dataclass
class PoseParams:
    """Pose deltas over T frames. Behaviours and seizures each return one; they add up."""

    root: np.ndarray      # (T, 3) pelvis offset from its rest position, m
    yaw: np.ndarray       # (T,) whole-body rotation in the bed plane, rad
    d_angle: np.ndarray   # (T, S) in-plane rotation per segment, inherited by descendants, rad
    d_elev: np.ndarray    # (T, S) elevation per segment, rad
    head_yaw: np.ndarray  # (T,) face rotation about the head axis (+ = towards the patient's right), rad
    blanket: np.ndarray   # (T,) blanket edge shift towards the head, m (not a body part, but moved by the patient)

    @classmethod
    def zeros(cls, n: int) -> "PoseParams":
        return cls(np.zeros((n, 3)), np.zeros(n), np.zeros((n, NUM_SEGMENTS)), np.zeros((n, NUM_SEGMENTS)),
                   np.zeros(n), np.zeros(n))

    def __iadd__(self, other: "PoseParams") -> "PoseParams":
        for f in fields(self):
            getattr(self, f.name).__iadd__(getattr(other, f.name))
        return self

    def scaled(self, w: np.ndarray) -> "PoseParams":
        """Multiply every channel by a per-frame weight (T,), e.g. an envelope or a suppression mask."""
        return PoseParams(*(getattr(self, f.name) * (w if getattr(self, f.name).ndim == 1 else w[:, None])
                            for f in fields(self)))

    def masked_into(self, mask: np.ndarray, n: int) -> "PoseParams":
        """Scatter this (M,)-frame pose into an n-frame zero pose at the True positions of mask."""
        out = PoseParams.zeros(n)
        for f in fields(self):
            getattr(out, f.name)[mask] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class BodyShape:
    """Per-patient proportions."""

    scale: float = 1.0          # overall size (1.0 ~ 1.75 m tall)
    pelvis_xy: tuple[float, float] = (0.0, 0.98)  # rest pelvis position on the mattress


def forward_kinematics(pose: PoseParams, shape: BodyShape = BodyShape()) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (T, J, 3) in world metres and outward normals (T, J, 3) (zero except face joints).

    Vectorised over frames and joints: absolute angles via the ancestor matrix, positions via the path
    matrix, so there is no recursion at run time.
    """
    t = pose.yaw.shape[0]
    ang = pose.yaw[:, None] + REST_ANGLE[None] + pose.d_angle @ ANC.T           # (T, S)
    elev = REST_ELEV[None] + pose.d_elev
    ce = np.cos(elev)
    seg = (SEG_LENGTH * shape.scale)[None, :, None] * np.stack([ce * np.cos(ang), ce * np.sin(ang), np.sin(elev)], -1)
    root = np.array([shape.pelvis_xy[0], shape.pelvis_xy[1], 0.0])[None] + pose.root   # (T, 3)
    joints = root[:, None, :] + np.einsum("js,tsc->tjc", PATH, seg)
    joints[:, JI["pelvis"]] = root

    # Head frame: axis h (neck -> head centre), lateral l (patient's right), face normal n.
    h = seg[:, SI["neck"]]
    h = h / np.linalg.norm(h, axis=-1, keepdims=True)
    up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), h.shape)
    lat = np.cross(up, h)
    lat_n = np.linalg.norm(lat, axis=-1, keepdims=True)
    lat = np.where(lat_n > 1e-6, lat / np.maximum(lat_n, 1e-9), np.array([1.0, 0.0, 0.0]))
    nrm = np.cross(h, lat)
    a = _FACE_ALPHA[None] + pose.head_yaw[:, None]                                   # (T, 5)
    direction = np.sin(a)[..., None] * lat[:, None] + np.cos(a)[..., None] * nrm[:, None]   # (T, 5, 3)
    head_c = joints[:, JI["head_c"]]
    joints[:, FACE_IDX] = (head_c[:, None] + (_FACE_R * shape.scale)[None, :, None] * direction
                           + (_FACE_S * shape.scale)[None, :, None] * h[:, None])
    normals = np.zeros((t, NUM_JOINTS, 3))
    normals[:, FACE_IDX] = direction
    return joints, normals
