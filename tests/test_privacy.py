"""Face anonymisation changes the face pixels and only those (or the whole frame without a head)."""

import cv2
import numpy as np
import pytest

from ward.core.keypoints import OPENPOSE_INDEX
from ward.vision.privacy import blur_faces, blur_faces_clip, face_box, face_boxes


def _frame(h=360, w=640, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # texture everywhere: any blur changes it


def _kpts(nose=(320, 100)):
    k = np.zeros((18, 3), np.float32)
    x, y = nose
    for name, dx, dy in [("nose", 0, 0), ("r_eye", -8, -6), ("l_eye", 8, -6), ("r_ear", -16, 0),
                         ("l_ear", 16, 0), ("neck", 0, 40), ("r_sho", -40, 45), ("l_sho", 40, 45)]:
        k[OPENPOSE_INDEX[name]] = (x + dx, y + dy, 0.9)
    return k


def test_face_pixels_change_and_far_pixels_do_not():
    frame, k = _frame(), _kpts()
    out = blur_faces(frame, k)
    x0, y0, x1, y1 = face_box(k, frame.shape[:2])
    assert x0 < 304 and x1 > 336 and y0 < 94 and y1 > 100  # covers every head joint
    face_before = frame[y0:y1, x0:x1].astype(int)
    face_after = out[y0:y1, x0:x1].astype(int)
    assert np.mean(face_before != face_after) > 0.9
    # high-frequency content is gone: neighbouring pixels are nearly equal after anonymising
    assert np.abs(np.diff(face_after, axis=1)).mean() < 0.2 * np.abs(np.diff(face_before, axis=1)).mean()
    mask = np.ones(frame.shape[:2], bool)
    mask[y0:y1, x0:x1] = False
    assert np.array_equal(out[mask], frame[mask])
    assert not np.shares_memory(out, frame)


def test_no_head_found_blurs_whole_frame():
    frame = _frame()
    k = _kpts()
    k[:, 2] = 0
    out = blur_faces(frame, k)
    assert np.mean(out != frame) > 0.9
    assert np.mean(blur_faces(frame, None) != frame) > 0.9


def test_rendered_patient_face_changes():
    from ward.sim.render import SimCamera
    from ward.sim.scenario import random_scenario

    cam = SimCamera(random_scenario(seed=5, duration_s=20, n_seizures=0))
    img, k, _ = cam.frame(10)
    out = blur_faces(img, k)
    box = face_box(k, img.shape[:2])
    assert box is not None, "the simulated patient's head keypoints should be visible"
    x0, y0, x1, y1 = box
    head = k[[0, 14, 15]]
    for x, y, v in head:
        if v > 0:
            assert x0 <= x < x1 and y0 <= y < y1
    face_diff = np.abs(out[y0:y1, x0:x1].astype(int) - img[y0:y1, x0:x1].astype(int)).mean()
    assert face_diff > 2
    outside = out.copy()
    outside[y0:y1, x0:x1] = img[y0:y1, x0:x1]
    assert np.array_equal(outside, img)


def test_clip_and_bad_input():
    frames = np.stack([_frame(seed=s) for s in range(3)])
    kp = np.stack([_kpts()] * 3)
    out = blur_faces_clip(frames, kp)
    assert out.shape == frames.shape and np.mean(out != frames) > 0
    with pytest.raises(ValueError, match="one \\(18, 3\\)"):
        blur_faces_clip(frames, kp[:2])
    with pytest.raises(ValueError, match="uint8"):
        blur_faces(frames[0].astype(np.float32), kp[0])
    with pytest.raises(ValueError, match="18, 3"):
        blur_faces(frames[0], np.zeros((15, 3)))
    with pytest.raises(ValueError, match="one list of other people per frame: 3 frames, 2 lists"):
        blur_faces_clip(frames, kp, [[], []])
    with pytest.raises(ValueError, match="each person must be an \\(18, 3\\) array"):
        blur_faces(frames[0], kp[0], others=[np.zeros((15, 3))])


def _laplacian_energy(img):
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())


def test_rendered_patient_face_is_hidden():
    """On a rendered patient at 640x360, facial detail is gone: a feature drawn on the face (a dark
    mark by the nose, 150+ grey levels) barely changes the anonymised face, and fine structure vanishes."""
    from ward.sim.render import SimCamera
    from ward.sim.scenario import Scenario

    cam = SimCamera(Scenario(seed=7, duration_s=6, fps=12, width=640, height=360, seizures=[]))
    img, k, _ = cam.frame(10)
    x0, y0, x1, y1 = face_box(k, img.shape[:2])
    face = (slice(y0, y1), slice(x0, x1))
    out = blur_faces(img, k)
    assert _laplacian_energy(out[face]) < 0.1 * _laplacian_energy(img[face])
    nx, ny = np.rint(k[OPENPOSE_INDEX["nose"], :2]).astype(int)
    marked = img.copy()
    marked[ny - 2:ny + 3, nx - 2:nx + 3] = 255 - marked[ny - 2:ny + 3, nx - 2:nx + 3]
    assert np.abs(marked.astype(int) - img).max() > 150
    change = np.abs(marked.astype(int) - img)
    diff = np.abs(blur_faces(marked, k).astype(int) - out)
    # only the 6x6 cell means carry the face: the mark moves the output by at most its share of a cell
    cell_area = (x1 - x0) / 6 * (y1 - y0) / 6
    assert diff.max() <= change.sum(axis=(0, 1)).max() / cell_area + 1
    assert diff.max() < 0.1 * change.max()
    assert np.array_equal(out[:y0], img[:y0]) and np.array_equal(out[y1:], img[y1:])


def test_other_peoples_faces_are_blurred_too():
    frame = _frame()
    patient, nurse = _kpts((320, 100)), _kpts((100, 250))
    headless = _kpts((500, 250))
    headless[[OPENPOSE_INDEX[n] for n in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")], 2] = 0
    out = blur_faces(frame, patient, others=[nurse, headless])
    changed = np.zeros(frame.shape[:2], bool)
    for k in (patient, nurse):
        bx0, by0, bx1, by1 = face_box(k, frame.shape[:2])
        assert np.mean(out[by0:by1, bx0:bx1] != frame[by0:by1, bx0:bx1]) > 0.9
        changed[by0:by1, bx0:bx1] = True
    assert np.array_equal(out[~changed], frame[~changed])   # nothing else (the headless person has no face box)


def test_clip_blurs_per_frame_and_whole_frame_only_where_the_head_is_missing():
    frames = np.stack([_frame(seed=s) for s in range(3)])
    kp = np.stack([_kpts((320, 100)), _kpts((320, 100)), _kpts((200, 150))])
    kp[1, :, 2] = 0                                  # frame 1: no head found
    others = [[_kpts((100, 250))], [], np.zeros((0, 18, 3))]
    out = blur_faces_clip(frames, kp, others)
    assert np.mean(out[1] != frames[1]) > 0.9
    assert np.array_equal(out[0], blur_faces(frames[0], kp[0], others=others[0]))
    assert np.array_equal(out[2], blur_faces(frames[2], kp[2]))
    boxes = face_boxes(kp, frames.shape[1:3])
    assert boxes[1].tolist() == [-1] * 4 and boxes[0].tolist() == list(face_box(kp[0], frames.shape[1:3]))
