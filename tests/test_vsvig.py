"""VSViG: official parity, state_dict layout, paper graph semantics, gradients, loading, inputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ward.core.keypoints import VSVIG_15
from ward.vision.partition_order import (
    OFFICIAL_SEEDS,
    generate_partition_orders,
    load_partition_orders,
    save_partition_orders,
    validate_partition_orders,
)
from ward.vision.vsvig import (
    Part3DCNN,
    VSViG,
    VSViGLoadError,
    build_vsvig,
    calibrate_batchnorm,
    load_vsvig,
    max_relative,
    random_clips,
    save_vsvig_checkpoint,
)

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def official(fixtures_dir: Path) -> dict:
    return torch.load(fixtures_dir / "vsvig_official_light.pt", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def official_model(fixtures_dir: Path) -> VSViG:
    # the fixture file holds {"state_dict": ...}; dy_point_order.pt next to it is found automatically
    return load_vsvig(fixtures_dir / "vsvig_official_light.pt")


# ------------------------------------------------------------------------------------ layout, parity
def test_state_dict_keys_and_shapes_equal_official(official: dict) -> None:
    ref = official["state_dict"]
    own = build_vsvig("light", "paper").state_dict()
    assert len(own) == len(ref) == 1283
    assert list(own) == list(ref)
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    base = build_vsvig("base", "official").state_dict()
    assert list(base) == list(ref)
    assert base["stem.stem.0.weight"].shape == (24, 3, 32, 32)
    assert base["backbone.29.conv3.0.weight"].shape == (384, 192, 1, 1, 1)
    assert base["fc.0.weight"].shape == (256, 384, 1, 1)


def test_official_mode_matches_fixture(official: dict, official_model: VSViG) -> None:
    assert official_model.variant == "light" and official_model.graph_mode == "official"
    with torch.inference_mode():
        p = official_model(official["patches_uint8"].float(), official["kpts"])
    assert p.shape == (3,)
    assert (p - official["probabilities"]).abs().max().item() < TOL


def test_official_mode_depends_on_partition_orders(official: dict, official_model: VSViG) -> None:
    """The dynamic permutations are part of what the official model computes."""
    model = copy.deepcopy(official_model).fuse_for_inference()
    model.set_partition_order(torch.arange(15).repeat(20, 1))  # after fusing: caches must follow
    with torch.inference_mode():
        p = model(official["patches_uint8"].float(), official["kpts"])
        plain = model.unfuse()(official["patches_uint8"].float(), official["kpts"])
    assert (p - official["probabilities"]).abs().max().item() > 1e-3
    assert (p - plain).abs().max().item() < TOL


def test_fused_inference_keeps_official_outputs(official: dict, official_model: VSViG) -> None:
    model = copy.deepcopy(official_model).fuse_for_inference(channels_last=True)
    with torch.inference_mode():
        p = model(official["patches_uint8"].float(), official["kpts"])
    assert (p - official["probabilities"]).abs().max().item() < TOL
    assert list(model.state_dict()) == list(official["state_dict"])  # fusion leaves the layout alone


@pytest.mark.parametrize("graph_mode", ["paper", "official"])
def test_fused_inference_paths_compute_the_same_function(graph_mode: str) -> None:
    """Folding and the channels-last GEMM path are exact algebra: checked in float64, since a random
    calibrated network amplifies float32 rounding differences (~1e-4, as float32 vs float64 does)."""
    torch.manual_seed(1)
    model = calibrate_batchnorm(build_vsvig("light", graph_mode), n_batches=1, batch_size=3)  # type: ignore[arg-type]
    model = model.double()
    patches, kpts = random_clips(2, torch.Generator().manual_seed(3))
    patches, kpts = patches.double(), kpts.double()
    with torch.inference_mode():
        ref = model.logits(patches, kpts)  # logits: the probabilities of random weights saturate
        for channels_last, fold in ((True, True), (True, False), (False, True)):
            fast = copy.deepcopy(model).fuse_for_inference(channels_last=channels_last, fold_bn=fold)
            got = fast.logits(patches, kpts)
            assert ((ref - got).abs() / ref.abs().clamp(min=1)).max().item() < 1e-9, (channels_last, fold)
        assert torch.equal(torch.sigmoid(got), fast(patches, kpts))
        fast.unfuse()
        assert torch.equal(fast.logits(patches, kpts), ref)


# --------------------------------------------------------------------------------- graph semantics
def test_max_relative_hand_example() -> None:
    x = torch.tensor([0., 1, 2, 10, 11, 12, 5, 5, 5, -1, -2, -3, 7, 0, 0])
    # part maxima 2, 12, 5, -1, 7 -> max over the other parts 12, 7, 12, 12, 12
    inter = torch.tensor([12., 11, 10, -3, -4, -5, 7, 7, 7, 13, 14, 15, 5, 12, 12])
    intra = torch.tensor([2., 1, -1, 2, 1, -1, 0, 0, 0, -1, 1, 2, -7, 7, 7])
    assert torch.equal(max_relative(x, "inter"), inter)
    assert torch.equal(max_relative(x, "intra"), intra)


def test_max_relative_matches_bruteforce_on_batches() -> None:
    x = torch.randn(2, 4, 3, 15)
    part = torch.arange(15) // 3
    want_inter = torch.empty_like(x)
    want_intra = torch.empty_like(x)
    for i in range(15):  # reference by definition, one joint at a time
        others = [j for j in range(15) if part[j] != part[i]]
        mates = [j for j in range(15) if part[j] == part[i] and j != i]
        want_inter[..., i] = (x[..., others] - x[..., i:i + 1]).amax(-1)
        want_intra[..., i] = (x[..., mates] - x[..., i:i + 1]).amax(-1)
    assert torch.allclose(max_relative(x, "inter"), want_inter)
    assert torch.allclose(max_relative(x, "intra"), want_intra)
    with pytest.raises(ValueError, match="15 joints"):
        max_relative(torch.zeros(2, 14), "inter")


def test_paper_mode_gradients_reach_every_used_parameter() -> None:
    torch.manual_seed(0)
    model = build_vsvig("light", "paper").train()
    patches, kpts = random_clips(2, torch.Generator().manual_seed(0))
    loss = F.mse_loss(model(patches, kpts), torch.tensor([0.0, 1.0]))
    loss.backward()
    unused = ("nn_inter.", "nn_intra.")
    for name, p in model.named_parameters():
        if any(u in name for u in unused):
            assert p.grad is None, f"{name} is documented as unused but got a gradient"
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_paper_and_official_modes_differ_on_same_weights() -> None:
    torch.manual_seed(0)
    paper = calibrate_batchnorm(build_vsvig("light", "paper"), n_batches=1, batch_size=3)
    official = build_vsvig("light", "official", partition_order=paper.partition_order)
    official.load_state_dict(paper.state_dict())
    official.eval()
    patches, kpts = random_clips(2, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (paper(patches, kpts) - official(patches, kpts)).abs().max() > 1e-4


# ------------------------------------------------------------------------------------ temporal conv
@pytest.mark.parametrize("stride", [1, 2])
def test_part3dcnn_equals_reference_replicate_padded_conv3d(stride: int) -> None:
    torch.manual_seed(stride)
    block = Part3DCNN(8, 6, stride)
    block.order = generate_partition_orders(4, n=1)[0]
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, 8, 9, 15)

    def cbr(cb, t, act=True, s=1, pad=False):  # the official 3-D formulation, written out here
        if pad:
            t = F.pad(t, (1, 1, 1, 1, 1, 1), mode="replicate")
        bn = cb[1]
        y = F.conv3d(t, cb[0].weight, cb[0].bias, stride=(s, 1, 1))
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return F.relu(y) if act else y

    x5 = x[:, :, :, block.order].unsqueeze(-1)
    y = cbr(block.conv1, x5)
    y = cbr(block.conv2, y, s=stride, pad=True)[..., 1:2]  # keep the middle of the padded singleton axis
    y = cbr(block.conv3, y)
    want = F.relu(y + cbr(block.downsample, x5, act=False, s=stride)).squeeze(-1)
    with torch.no_grad():
        got = block(x)
    assert got.shape == want.shape == (2, 12, (9 - 1) // stride + 1, 15)
    # two code paths (GEMMs vs conv3d) whose float rounding depends on the CPU's kernels; values are
    # O(1), so a wrong order or padding is off by far more than this
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()


# ------------------------------------------------------------------------------------------- loading
def test_missing_extra_and_mismatched_keys_are_all_listed(official: dict, fixtures_dir: Path) -> None:
    sd = dict(official["state_dict"])
    del sd["backbone.3.conv2.0.weight"]
    sd["backbone.99.bogus"] = torch.zeros(1)
    sd["fc.3.bias"] = torch.zeros(2)
    orders = fixtures_dir / "dy_point_order.pt"
    with pytest.raises(VSViGLoadError) as err:
        load_vsvig(sd, partition_order=orders)
    msg = str(err.value)
    assert "missing keys (1): backbone.3.conv2.0.weight" in msg
    assert "unexpected keys (1): backbone.99.bogus" in msg
    assert "fc.3.bias: checkpoint (2,) vs model (1,)" in msg


def test_unreadable_weight_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "half.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(VSViGLoadError, match=r"cannot read VSViG weights .*half\.pth"):
        load_vsvig(bad)


def test_variant_mismatch_lists_shapes(official: dict, fixtures_dir: Path) -> None:
    with pytest.raises(VSViGLoadError, match="shape mismatches"):
        load_vsvig(official["state_dict"], variant="base", partition_order=fixtures_dir / "dy_point_order.pt")


def test_official_weights_without_partition_file(official: dict, tmp_path: Path) -> None:
    weights = tmp_path / "VSViG-light.pth"
    torch.save(official["state_dict"], weights)
    with pytest.raises(FileNotFoundError, match="dy_point_order.pt") as err:
        load_vsvig(weights)
    assert str(tmp_path) in str(err.value)
    # given explicitly (here ward's own generated orders, in the official file format), it loads
    save_partition_orders(generate_partition_orders(7), tmp_path / "dy_point_order.pt")
    model = load_vsvig(weights)
    assert model.variant == "light" and model.graph_mode == "official"
    assert torch.equal(model.partition_order, generate_partition_orders(7))


def test_checkpoint_round_trip_keeps_metadata_and_outputs(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = build_vsvig("light", "paper", partition_order=generate_partition_orders(3)).eval()
    path = save_vsvig_checkpoint(model, tmp_path / "m.pt", trained_on="sim-v1", notes="unit test")
    loaded = load_vsvig(path)
    meta = loaded.metadata
    assert (loaded.variant, loaded.graph_mode) == ("light", "paper")
    assert meta["trained_on"] == "sim-v1" and meta["notes"] == "unit test"
    assert meta["joint_layout"] == list(VSVIG_15) and "created_utc" in meta
    assert torch.equal(loaded.partition_order, generate_partition_orders(3))
    patches, kpts = random_clips(2, torch.Generator().manual_seed(4))
    with torch.inference_mode():
        assert torch.equal(model(patches, kpts), loaded(patches, kpts))
    # a checkpoint in another joint layout is refused
    raw = torch.load(path, weights_only=True)
    raw["metadata"]["joint_layout"] = list(reversed(VSVIG_15))
    with pytest.raises(VSViGLoadError, match="joint_layout"):
        load_vsvig(raw)
    with pytest.raises(ValueError, match="contradicts"):
        save_vsvig_checkpoint(model, tmp_path / "x.pt", variant="base")


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("patches", "kpts", "match"),
    [
        (torch.zeros(1, 30, 15, 3, 16, 16), torch.zeros(1, 30, 15, 3), r"\(B,30,15,3,32,32\)"),
        (torch.zeros(1, 29, 15, 3, 32, 32), torch.zeros(1, 29, 15, 3), r"\(B,30,15,3,32,32\)"),
        (torch.zeros(1, 30, 15, 3, 32, 32), torch.zeros(1, 30, 18, 3), r"\(B,30,15,3\)"),
        (torch.zeros(2, 30, 15, 3, 32, 32), torch.zeros(1, 30, 15, 3), "batch sizes differ"),
        (torch.zeros(1, 30, 15, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 30, 15, 3), "floating"),
        (torch.zeros(1, 30, 15, 3, 32, 32), torch.zeros(1, 30, 15, 3, dtype=torch.int64), "floating"),
    ],
)
def test_bad_inputs_raise_value_error(patches: torch.Tensor, kpts: torch.Tensor, match: str) -> None:
    model = build_vsvig("light", "paper").eval()
    with pytest.raises(ValueError, match=match):
        model(patches, kpts)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="variant"):
        build_vsvig("huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="graph_mode"):
        build_vsvig("light", "dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole parts"):
        build_vsvig("light", "paper", partition_order=torch.arange(15).roll(1).repeat(20, 1))


# ---------------------------------------------------------------------------------- partition orders
def test_generated_orders_have_official_structure(fixtures_dir: Path) -> None:
    official = load_partition_orders(fixtures_dir / "dy_point_order.pt")
    assert official.shape == (1000, 15)
    ours = generate_partition_orders(0)
    assert ours.shape == (1000, 15) and ours.dtype == torch.int64
    for orders in (official, ours):  # whole parts moved, joints inside a part kept in order
        validate_partition_orders(orders, whole_parts=True)
    assert len({tuple(r) for r in ours.tolist()}) > 100  # of the 120 part orders
    assert torch.equal(ours, generate_partition_orders(0))
    assert not torch.equal(ours, generate_partition_orders(1))
    assert not torch.equal(ours, official)
    assert len(OFFICIAL_SEEDS) == 15 and max(OFFICIAL_SEEDS) < 1000


def test_partition_order_file_round_trip(tmp_path: Path) -> None:
    orders = generate_partition_orders(5, n=20)
    path = save_partition_orders(orders, tmp_path / "orders.pt")
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw, list) and isinstance(raw[0], list) and isinstance(raw[0][0], int)
    assert torch.equal(load_partition_orders(path), orders)
    with pytest.raises(ValueError, match="not permutations"):
        validate_partition_orders(torch.zeros(20, 15, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least 18 rows"):
        validate_partition_orders(orders[:5])
    with pytest.raises(FileNotFoundError):
        load_partition_orders(tmp_path / "absent.pt")
