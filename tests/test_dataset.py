"""Dataset builder: annotation parsing (errors name the problem), patient split, clip shards and manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ward.core.keypoints import OPENPOSE_TO_VSVIG, VSVIG_15
from ward.dataset.annotations import load_annotations, parse_time
from ward.dataset.build import build_dataset, collect_annotated, collect_sim, split_patients
from ward.pipeline import BedPipeline
from ward.vision.privacy import blur_faces_clip
from ward.sim.labels import seizure_target
from ward.sim.output import render_to_files
from ward.sim.scenario import Scenario, SeizureSpec


def _csv(tmp_path, text, name="ann.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parse_time_formats():
    assert parse_time("93.5", "x") == 93.5 and parse_time("01:02:03", "x") == 3723 and parse_time("2:05", "x") == 125
    assert parse_time("", "x") is None and parse_time(7, "x") == 7.0
    with pytest.raises(ValueError, match="cannot read time '1h2m'"):
        parse_time("1h2m", "row 2")


@pytest.mark.parametrize("value", ["1:61", "0:60", "00:01:60.5", "1:60:00"])
def test_parse_time_rejects_out_of_range_clock_fields(value):
    with pytest.raises(ValueError, match=rf"row 3 eeg_onset: time '{value}' has \d+(\.\d*)? (seconds|minutes)"):
        parse_time(value, "row 3 eeg_onset")
    assert parse_time("1:59.9", "x") == pytest.approx(119.9) and parse_time("75:30", "x") == 4530  # mm:ss may exceed 60 min


def test_annotation_with_61_seconds_names_row_and_value(tmp_path):
    p = _csv(tmp_path, "video,eeg_onset,clinical_onset,seizure_end\na.mp4,0:30,0:40,1:00\nb.mp4,0:50,1:61,3:00\n")
    with pytest.raises(ValueError, match=r"ann.csv row 3 \(b.mp4\) clinical_onset: time '1:61' has 61 seconds"):
        load_annotations(p, ["a.mp4", "b.mp4"])


def test_annotations_ok_and_seizure_free_rows(tmp_path):
    p = _csv(tmp_path, "Video,EEG onset,Clinical onset,Seizure end,Patient ID\n"
                       "a.mp4,00:01:00,00:01:10,00:02:00,p1\nb.mp4,,,,p2\n")
    a, b = load_annotations(p, ["a.mp4", "b.mp4"])
    assert (a.eeg_onset, a.clinical_onset, a.end, a.patient_id) == (60, 70, 120, "p1")
    assert not b.has_seizure and b.patient_id == "p2"


def test_annotations_xlsx(tmp_path):
    import pandas as pd

    p = tmp_path / "Label.xlsx"
    pd.DataFrame({"video": ["a.mp4"], "eeg_onset": ["0:30"], "clinical_onset": [40], "seizure_end": [90]}).to_excel(p, index=False)
    (a,) = load_annotations(p)
    assert (a.eeg_onset, a.clinical_onset, a.end, a.patient_id) == (30, 40, 90, "a")


@pytest.mark.parametrize("text, msg", [
    ("video,eeg_onset,seizure_end\na.mp4,1,2\n", r"lacks column\(s\) \['clinical_onset'\]"),
    ("video,eeg_onset,clinical_onset,seizure_end\na.mp4,50,40,90\n", "EEG onset 50.0 s is after clinical onset 40.0 s"),
    ("video,eeg_onset,clinical_onset,seizure_end\na.mp4,10,95,90\n", "clinical onset 95.0 s is not before seizure end"),
    ("video,eeg_onset,clinical_onset,seizure_end\nzz.mp4,1,2,3\n", "video 'zz.mp4' is not in the video folder"),
    ("video,eeg_onset,clinical_onset,seizure_end\na.mp4,1,,3\n", "give all of eeg_onset"),
])
def test_annotation_errors_are_clear(tmp_path, text, msg):
    with pytest.raises(ValueError, match=msg):
        load_annotations(_csv(tmp_path, text), ["a.mp4"])


def test_split_by_patient_is_deterministic_and_complete():
    ps = [f"p{i}" for i in range(10)]
    s = split_patients(ps, seed=1)
    assert s == split_patients(list(reversed(ps)), seed=1)
    assert set(s) == set(ps) and set(s.values()) == {"train", "val", "test"}
    assert list(s.values()).count("train") == 7


def _fake_patch(frames, k18):
    """Stand-in for ward.vision.patches.extract_patches: the pixel under each joint, broadcast to 32x32."""
    n, h, w, _ = frames.shape
    k15 = k18[:, OPENPOSE_TO_VSVIG]
    x = np.clip(k15[..., 0].astype(int), 0, w - 1)
    y = np.clip(k15[..., 1].astype(int), 0, h - 1)
    px = frames[np.arange(n)[:, None], y, x].astype(np.float32)           # (N, 15, 3)
    return np.broadcast_to(px[..., None, None], (n, 15, 3, 32, 32)).copy()


def _fake_norm(k18, hw):
    k = k18[:, OPENPOSE_TO_VSVIG].astype(np.float32).copy()
    k[..., 0] /= hw[1]
    k[..., 1] /= hw[0]
    return k


def test_build_from_sim_output(tmp_path):
    dirs = []
    for seed in range(3):
        sc = Scenario(seed=seed, duration_s=20, fps=12, width=160, height=90, patient_id=f"pat{seed}",
                      seizures=[SeizureSpec(type="myoclonic", eeg_onset_s=6, clinical_onset_s=9, end_s=14)] if seed != 1 else [])
        d = tmp_path / f"v{seed}"
        render_to_files(sc, d)
        dirs.append(d)
    items = collect_sim(dirs)
    man = build_dataset(items, tmp_path / "ds", patch_fn=_fake_patch, norm_fn=_fake_norm, stride_s=1.0, shard_size=8)
    m = json.loads(man.read_text())
    assert m["format"] == "ward.clips/1" and m["clip_length"] == 30 and m["fps"] == 6
    assert m["joint_layout"] == list(VSVIG_15) and set(m["patients"]) == {"pat0", "pat1", "pat2"}
    assert sorted(m["patients"].values()) == ["test", "train", "val"]
    # simulator renders (synthetic people) are recorded as not blurred; the setting is for recorded videos
    assert m["videos"] == {"recorded": 0, "simulated": 3} and m["face_blur_simulated"] is False
    assert m["face_blur"] is True and m["face_blur_frames"] == {"face": 0, "whole_frame": 0}
    labels, seen_split = [], {}
    for split, files in m["splits"].items():
        for f in files:
            z = np.load(tmp_path / "ds" / f)
            n = len(z["label"])
            assert z["patches"].shape == (n, 30, 15, 3, 32, 32) and z["patches"].dtype == np.uint8
            assert z["kpts"].shape == (n, 30, 15, 3) and z["kpts"].dtype == np.float32
            assert z["t_end"].dtype == np.float32 and z["video"].shape == (n,)
            for p in set(z["patient"].tolist()):
                assert m["patients"][p] == split            # split by patient, never by clip
                seen_split[p] = split
            sz = z["patient"] != "pat1"
            np.testing.assert_allclose(z["label"][sz], seizure_target(z["t_end"][sz].astype(float), 6, 9, 14), atol=1e-4)
            assert (z["label"][~sz] == 0).all()
            inside = sz & (z["t_end"] >= 6) & (z["t_end"] < 14)
            assert (z["seizure_type"][inside] == "myoclonic").all() and (z["seizure_type"][~inside] == "none").all()
            labels += z["label"].tolist()
    # 20 s at 6 fps = 120 sampled frames -> (120 - 30) / 6 + 1 = 16 clips per video
    assert sum(m["n_clips"].values()) == 48 and max(labels) == 1.0 and min(labels) == 0.0


def test_collect_annotated_unknown_video(tmp_path):
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "a.mp4").write_bytes(b"")
    p = _csv(tmp_path, "video,eeg_onset,clinical_onset,seizure_end\nb.mp4,1,2,3\n")
    with pytest.raises(ValueError, match="'b.mp4' is not in the video folder"):
        collect_annotated(tmp_path / "vids", p)


def test_build_with_the_real_patch_extractor(tmp_path):
    sc = Scenario(seed=7, duration_s=6, fps=12, width=320, height=180, seizures=[])
    render_to_files(sc, tmp_path / "v")
    man = build_dataset(collect_sim([tmp_path / "v"]), tmp_path / "ds", stride_s=0.5)
    m = json.loads(man.read_text())
    (f,) = m["splits"]["train"]
    z = np.load(tmp_path / "ds" / f)
    # 6 s at 6 fps = 36 frames -> clips ending at frames 29, 32, 35
    assert z["patches"].shape == (3, 30, 15, 3, 32, 32) and z["patches"].max() > 0
    assert np.allclose(z["t_end"], np.array([29, 32, 35]) * 2 / 12)
    vis = z["kpts"][..., 2] > 0
    assert vis[..., :3].all() and (z["kpts"][..., :2][vis] <= 1.0).all()   # the face is visible, coords normalised


# -- face blur of recorded videos ------------------------------------------------------------------
# A recorded video with a person: a simulated patient rendered at 640x360 and written as an ordinary
# video file, fed to the builder as an annotated (real) video, posed by the shipped pose model.

_HEAD15 = [VSVIG_15.index(n) for n in ("nose", "l_eye", "r_eye")]
_FAR15 = [VSVIG_15.index(n) for n in ("r_elb", "r_wri", "l_elb", "l_wri")]  # away from the head; legs are under the sheet
_POSE_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "ward-pose-small.pt"


class _RecordingPose:
    """The builder's real pose estimator, also keeping what it was given and found (to recompute patches)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.calls: list[tuple[np.ndarray, list]] = []

    def __call__(self, frames):
        people = self.estimator(frames)
        self.calls.append((np.array(frames), list(people)))
        return people


def _shard(ds_dir):
    m = json.loads((ds_dir / "manifest.json").read_text())
    (f,) = [f for files in m["splits"].values() for f in files]
    with np.load(ds_dir / f) as z:
        return m, z["patches"], z["kpts"]


def _high_freq(patches):
    """Mean absolute discrete Laplacian inside the 32x32 patches: fine detail (eyes, hair edges), which a
    blur removes, and hardly the patch's smooth Gaussian weighting."""
    p = patches.astype(np.float32)
    c = p[..., 1:-1, 1:-1]
    return float(np.abs(4 * c - p[..., :-2, 1:-1] - p[..., 2:, 1:-1] - p[..., 1:-1, :-2] - p[..., 1:-1, 2:]).mean())


@pytest.fixture(scope="module")
def recorded_builds(tmp_path_factory):
    """`ward dataset build --videos` with and without --no-face-blur, plus a library build with a recording pose estimator."""
    import typer
    from typer.testing import CliRunner

    from ward.dataset.cli import register
    from ward.vision.pose import PoseEstimator

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """ward (the dataset commands only)"""

    register(app)

    tmp = tmp_path_factory.mktemp("recorded")
    render_to_files(Scenario(seed=7, duration_s=5.5, fps=12, width=640, height=360, seizures=[]), tmp / "render")
    (tmp / "videos").mkdir()
    shutil.copy(tmp / "render" / "video.mp4", tmp / "videos" / "patient_a.mp4")  # no ground truth next to it
    ann = _csv(tmp, "video,eeg_onset,clinical_onset,seizure_end,patient_id\npatient_a.mp4,,,,pA\n")
    args = ["dataset", "build", "--videos", str(tmp / "videos"), "--annotations", str(ann), "--keypoints", "pose",
            "--pose-weights", str(_POSE_WEIGHTS)]
    out = {}
    for name, extra in (("blur", []), ("raw", ["--no-face-blur"])):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp / name), *extra])
        assert res.exit_code == 0, res.output
        out[name] = (res, *_shard(tmp / name))
    tracker = _RecordingPose(PoseEstimator.from_checkpoint(str(_POSE_WEIGHTS)))
    build_dataset(collect_annotated(tmp / "videos", ann), tmp / "lib", pose_fn=tracker)
    out["lib"] = (tracker, *_shard(tmp / "lib"))
    return out


def test_recorded_video_build_blurs_faces_by_default_and_records_it(recorded_builds):
    res_b, m_b, _, _ = recorded_builds["blur"]
    res_r, m_r, _, _ = recorded_builds["raw"]
    assert m_b["face_blur"] is True and m_r["face_blur"] is False
    assert m_b["videos"] == m_r["videos"] == {"recorded": 1, "simulated": 0}
    # 5.5 s at 6 fps = 33 sampled frames, each blurred around the located face (the pose model finds the head)
    assert m_b["face_blur_frames"] == {"face": 33, "whole_frame": 0}
    assert m_r["face_blur_frames"] == {"face": 0, "whole_frame": 0}
    assert "WARNING: --no-face-blur" in res_r.stderr and "UNBLURRED" in res_r.stderr
    assert "WARNING" not in res_b.output


def test_blurred_head_patches_lose_detail_and_far_joints_are_unchanged(recorded_builds):
    _, _, p_b, k_b = recorded_builds["blur"]
    _, _, p_r, k_r = recorded_builds["raw"]
    assert np.array_equal(k_b, k_r)           # pose ran on the unblurred frames in both builds
    head_b, head_r = p_b[:, :, _HEAD15], p_r[:, :, _HEAD15]
    assert (head_r.max(axis=(-3, -2, -1)) > 0).all()    # every head patch has content
    assert np.mean(head_b != head_r) > 0.5
    assert _high_freq(head_b) < 0.35 * _high_freq(head_r)   # measured: ~0.13
    far = p_r[:, :, _FAR15]
    assert (far.max(axis=(-3, -2, -1)) > 0).mean() > 0.9     # the arms are seen (not trivially equal zeros)
    assert np.array_equal(p_b[:, :, _FAR15], far)


def test_stored_patches_are_those_of_the_blurred_frame_and_opt_out_stores_raw(recorded_builds):
    from ward.vision.patches import extract_patches

    tracker, _, p_lib, k_lib = recorded_builds["lib"]
    _, _, p_raw, k_raw = recorded_builds["raw"]
    assert np.array_equal(k_lib, k_raw)
    frames = np.concatenate([c[0] for c in tracker.calls])[:30]
    people = [p for c in tracker.calls for p in c[1]][:30]
    # the patient the builder's pipeline selected among them (no bed region; sampled at 6 fps from t = 0)
    k18 = BedPipeline().push(frames, np.arange(30) / 6.0, people=people).keypoints
    assert any(len(p) for p in people)

    def cut(f):
        return np.clip(np.rint(np.asarray(extract_patches(f, k18))), 0, 255).astype(np.uint8)

    assert np.array_equal(p_lib[0], cut(blur_faces_clip(frames, k18, people)))
    assert np.array_equal(p_raw[0], cut(frames))
