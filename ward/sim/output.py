"""Writing simulated footage to files: a video plus a JSON and a CSV ground-truth track, and contact sheets."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ward.core.keypoints import OPENPOSE_18
from ward.sim.labels import LABEL_FORMULA
from ward.sim.render import SimCamera
from ward.sim.scenario import Scenario

VIDEO_NAME = "video.mp4"
GT_JSON = "groundtruth.json"
GT_CSV = "groundtruth.csv"


def ground_truth(scenario: Scenario) -> dict:
    """The JSON ground truth: the resolved scenario (re-loadable with load_scenario) and the seizure onsets."""
    return {
        "format": "ward.sim.groundtruth/1",
        "scenario": scenario.model_dump(mode="json"),
        "fps": scenario.fps, "n_frames": scenario.n_frames, "width": scenario.width, "height": scenario.height,
        "patient_id": scenario.patient_id,
        "seizures": [{"type": s.type, "eeg_onset": s.eeg_onset_s, "clinical_onset": s.clinical_onset_s,
                      "end": s.end_s, "post_ictal_s": s.post_ictal_s, "side": s.side, "signs": s.signs}
                     for s in scenario.seizures],
        "label_formula": LABEL_FORMULA,
        "keypoint_layout": list(OPENPOSE_18),
    }


def render_to_files(scenario: Scenario, out_dir: str | Path, fast: bool = True, video: bool = True,
                    progress: Callable[[int], None] | None = None) -> dict[str, Path]:
    """Render the whole scenario as fast as possible into out_dir: video.mp4 (mp4v), groundtruth.json and
    groundtruth.csv (per frame: frame, t, behaviour, events, phase, seizure_type, target, then x, y, v of the
    18 joints). fast=True draws without anti-aliasing. video=False writes only the ground truth (no drawing).
    `progress(n)` is called after every n frames written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cam = SimCamera(scenario, fast=fast)
    paths = {"json": out / GT_JSON, "csv": out / GT_CSV}
    paths["json"].write_text(json.dumps(ground_truth(scenario), indent=2))
    writer = None
    if video:
        paths["video"] = out / VIDEO_NAME
        writer = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), scenario.fps,
                                 (scenario.width, scenario.height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open a mp4v VideoWriter at {paths['video']}")
    header = ["frame", "t", "behaviour", "events", "phase", "seizure_type", "target"]
    header += [f"{j}_{c}" for j in OPENPOSE_18 for c in ("x", "y", "v")]
    try:
        with paths["csv"].open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            step = 250
            for start in range(0, cam.n_frames, step):
                stop = min(start + step, cam.n_frames)
                tr = cam.track(start, stop)
                for r, i in enumerate(range(start, stop)):
                    if writer is not None:
                        img, _k, _info = cam.frame(i)
                        writer.write(img)
                    info = cam.info(i)
                    k = tr["kpts"][r]
                    w.writerow([i, f"{tr['t'][r]:.4f}", tr["behaviour"][r], "|".join(info["events"]), tr["phase"][r],
                                tr["seizure_type"][r], f"{tr['target'][r]:.5f}",
                                *np.round(k.astype(np.float64), 2).reshape(-1).tolist()])
                if progress is not None:
                    progress(stop - start)
    finally:
        if writer is not None:
            writer.release()
    return paths


def contact_sheet(scenario: Scenario, n: int = 12, cols: int = 4, tile_width: int = 480,
                  draw_keypoints: bool = True) -> np.ndarray:
    """Frames evenly spread over the scenario (plus one per seizure phase), labelled with time, behaviour
    and seizure phase, tiled into one BGR image."""
    if n < 1 or cols < 1:
        raise ValueError("contact sheet needs n >= 1 and cols >= 1")
    cam = SimCamera(scenario)
    idx = set(np.linspace(0, cam.n_frames - 1, n).astype(int).tolist())
    for s in scenario.seizures:
        for t in (s.eeg_onset_s, (s.eeg_onset_s + s.clinical_onset_s) / 2, (s.clinical_onset_s + s.end_s) / 2,  # type: ignore[operator]
                  s.end_s + 10):  # type: ignore[operator]
            i = int(t * scenario.fps)
            if 0 <= i < cam.n_frames:
                idx.add(i)
    tiles = []
    th = int(round(tile_width * scenario.height / scenario.width))
    for i in sorted(idx):
        img, k, info = cam.frame(i)
        sx = tile_width / scenario.width
        img = cv2.resize(img, (tile_width, th), interpolation=cv2.INTER_AREA)
        if draw_keypoints:
            for x, y, v in k:
                cv2.circle(img, (int(x * sx), int(y * sx)), 2, (0, 255, 0) if v > 0 else (0, 0, 255), -1)
        label = f"{info['t']:.1f}s {info['behaviour']}"
        if info["seizure_phase"] != "none":
            label += f" {info['seizure_type']}:{info['seizure_phase']} p={info['target']:.2f}"
        if info["events"]:
            label += " +" + ",".join(info["events"])
        cv2.rectangle(img, (0, 0), (tile_width, 18), (0, 0, 0), -1)
        cv2.putText(img, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)]
    return np.vstack(rows)
