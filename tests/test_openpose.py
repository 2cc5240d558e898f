"""Lightweight OpenPose network: official key layout, strict loader edge cases, BN folding."""

from __future__ import annotations

import json

import pytest
import torch

from ward.vision.openpose import (CHECKPOINT_FORMAT, build_openpose, fuse_for_inference, load_openpose,
                                  save_openpose_checkpoint)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _layout(model: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


@pytest.mark.parametrize("stages", [1, 3])
def test_official_layout_matches_fixture_key_by_key(fixtures_dir, stages):
    ref = json.loads((fixtures_dir / "lwop_state_dict_layout.json").read_text())[f"num_refinement_stages={stages}"]
    model = build_openpose("official", stages)
    assert _layout(model) == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


def _randomised(config: str = "official", stages: int = 1, seed: int = 0) -> torch.nn.Module:
    """A model whose BN layers have non-trivial statistics (so folding is actually exercised)."""
    torch.manual_seed(seed)
    model = build_openpose(config, stages)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if "num_batches" not in k)


def test_forward_shapes_and_stages():
    model = build_openpose("small", 2).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        stages = model.forward_stages(x)
        heatmaps, pafs = model(x)
    assert len(stages) == 3
    assert heatmaps.shape == (2, 19, 8, 12) and pafs.shape == (2, 38, 8, 12)
    assert torch.equal(heatmaps, stages[-1][0]) and torch.equal(pafs, stages[-1][1])
    with pytest.raises(ValueError, match="N, 3, H, W"):
        model(torch.randn(1, 4, 64, 64))


def test_small_config_is_a_quarter_of_official():
    official = sum(p.numel() for p in build_openpose("official").parameters())
    small = sum(p.numel() for p in build_openpose("small").parameters())
    assert small < official / 3
    with pytest.raises(ValueError, match="unknown Lightweight OpenPose config"):
        build_openpose("huge")


def test_loader_accepts_wrapped_bare_and_prefixed():
    src = _randomised("small")
    state = src.state_dict()
    for obj in (state, {"state_dict": state, "iter": 5, "optimizer": {}},
                {f"module.{k}": v for k, v in state.items()}):
        assert _same_weights(load_openpose(obj, "small"), src)


def test_three_stage_checkpoint_into_one_stage_model():
    src = _randomised("small", stages=3)
    model = load_openpose({"state_dict": src.state_dict()}, "small", num_refinement_stages=1)
    assert len(model.refinement_stages) == 1
    assert torch.equal(model.refinement_stages[0].pafs[1][0].weight, src.refinement_stages[0].pafs[1][0].weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # stage 0's output is the 3-stage network's second pair
        assert torch.allclose(model(x)[1], src.forward_stages(x)[1][1], atol=1e-6)


def test_num_batches_tracked_is_optional():
    src = _randomised("small")
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert _same_weights(load_openpose(state, "small"), src)


def test_missing_key_is_an_error_that_lists_it():
    state = dict(_randomised("small").state_dict())
    del state["cpm.align.0.bias"]
    with pytest.raises(ValueError, match=r"missing keys \(1\): cpm\.align\.0\.bias"):
        load_openpose(state, "small")


def test_shape_mismatch_and_unexpected_keys_are_errors():
    state = dict(_randomised("small").state_dict())
    state["initial_stage.heatmaps.1.0.weight"] = torch.zeros(20, 256, 1, 1)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        load_openpose(state, "small")
    assert "initial_stage.heatmaps.1.0.weight" in str(err.value) and "(20, 256, 1, 1)" in str(err.value)
    assert "unexpected keys (1): extra.weight" in str(err.value)
    with pytest.raises(ValueError, match="shape mismatch"):  # small weights into the official network
        load_openpose(_randomised("small").state_dict(), "official")


def test_project_checkpoint_round_trip(tmp_path):
    src = _randomised("small", stages=2)
    path = save_openpose_checkpoint(src, tmp_path / "pose.pt", epoch=3, note="synthetic")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["config"] == "small"
    model = load_openpose(path)  # config and stage count from the file
    assert model.num_refinement_stages == 2 and _same_weights(model, src)
    assert model.checkpoint_metadata == {"epoch": 3, "note": "synthetic"}
    assert not model.training
    with pytest.raises(ValueError, match="saved for config 'small'"):
        load_openpose(path, "official")


def test_broken_files_give_clear_errors(tmp_path):
    lfs = tmp_path / "lfs.pth"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    html = tmp_path / "page.pth"
    html.write_text("<!DOCTYPE html><html></html>")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="Git LFS pointer"):
        load_openpose(lfs)
    with pytest.raises(ValueError, match="HTML"):
        load_openpose(html)
    with pytest.raises(ValueError, match="cannot read pose checkpoint"):
        load_openpose(junk)
    with pytest.raises(FileNotFoundError, match="ward models fetch"):
        load_openpose(tmp_path / "absent.pth")


@pytest.mark.parametrize("channels_last", [True, False])
def test_bn_folding_keeps_outputs(channels_last):
    model = _randomised("official", stages=1, seed=1)
    fused = fuse_for_inference(model, channels_last=channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original untouched
    x = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        ref = model(x)
        xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        out = fused(xin)
    for a, b in zip(ref, out):
        assert (a - b).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="BN-fused"):
        save_openpose_checkpoint(fused, "/nonexistent/x.pt")
