"""The shipped weights: checksums match models/SHA256SUMS, both load strictly, cards exist, < 20 MB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ward.vision.openpose import load_openpose
from ward.vision.partition_order import generate_partition_orders, load_partition_orders
from ward.vision.vsvig import load_vsvig

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("ward-vsvig-light.pt", "ward-pose-small.pt", "partition_order_ward.pt")


def test_checksums_match_and_sizes():
    sums = {}
    for line in (MODELS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name.lstrip("*")] = digest
    assert set(SHIPPED) <= set(sums)
    for name in SHIPPED:
        data = (MODELS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sums[name], f"{name} does not match SHA256SUMS"
        assert len(data) < 20 * 2**20


def test_shipped_vsvig_loads_with_metadata_and_runs():
    model = load_vsvig(MODELS / "ward-vsvig-light.pt")
    meta = model.metadata
    assert model.variant == "light" and model.graph_mode == "paper"
    assert meta["trained_on"] == "simulated data (ward.sim), not for clinical use"
    assert len(meta["data_manifest_sha256"]) == 64 and "metrics" in meta and meta["command"]
    torch.testing.assert_close(model.partition_order, generate_partition_orders(0))
    with torch.no_grad():
        p = model(torch.full((1, 30, 15, 3, 32, 32), 100.0), torch.full((1, 30, 15, 3), 0.5))
    assert p.shape == (1,) and 0 <= float(p) <= 1
    assert (MODELS / "ward-vsvig-light.md").read_text().count("not for clinical use") >= 1


def test_shipped_pose_and_orders_load():
    model = load_openpose(MODELS / "ward-pose-small.pt")
    assert model.config.name == "small"
    assert model.checkpoint_metadata["trained_on"].startswith("simulated data")
    assert "pck@0.1" in model.checkpoint_metadata["metrics"]
    torch.testing.assert_close(load_partition_orders(MODELS / "partition_order_ward.pt"), generate_partition_orders(0))
    assert "not for clinical use" in (MODELS / "ward-pose-small.md").read_text()


def test_shipped_pose_finds_the_simulated_patient():
    """Behaviour, not metadata: on frames of held-out simulated scenarios (seeds of the pose
    validation range, offset so they differ from the ones the card reports), the shipped small
    pose model finds the patient and puts most joints within 10 % of the body's size."""
    from ward.train.pose import HELDOUT_SEED_BASE, pose_accuracy, sim_frames
    from ward.vision.pose import PoseEstimator

    est = PoseEstimator.from_checkpoint(MODELS / "ward-pose-small.pt", height=256)
    frames, people = sim_frames(12, HELDOUT_SEED_BASE + 50, (640, 360), per_scenario=6)
    acc = pose_accuracy(est, frames, people)
    assert acc["detection_rate"] >= 0.8, acc
    assert acc["pck@0.1"] >= 0.6, acc
