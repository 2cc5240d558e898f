"""Dataset builder: annotation parsing (errors name the problem), patient split, clip shards and manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ward.dataset.annotations import load_annotations, parse_time
from ward.dataset.build import build_dataset, collect_annotated, collect_sim, split_patients
from ward.keypoints import OPENPOSE_TO_VSVIG, VSVIG_15
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
