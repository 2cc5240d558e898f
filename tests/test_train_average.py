"""`ward train average`: the weighted mean of VSViG checkpoints, its record, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ward.train.average import average_checkpoints
from ward.train.vsvig import init_lineage
from ward.vision.partition_order import generate_partition_orders
from ward.vision.vsvig import build_vsvig, load_vsvig, save_vsvig_checkpoint


def _ckpt(path: Path, seed: int, variant: str = "light", orders_seed: int = 0, **md) -> Path:
    torch.manual_seed(seed)
    model = build_vsvig(variant, "paper", generate_partition_orders(orders_seed))
    with torch.no_grad():  # BatchNorm statistics that differ between the two, as after fine-tuning
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
    return save_vsvig_checkpoint(model, path, trained_on="simulated data (test)", command=f"train {seed}", **md)


def test_average_is_the_weighted_mean_and_records_its_ingredients(tmp_path: Path) -> None:
    a, b = _ckpt(tmp_path / "a.pt", 1), _ckpt(tmp_path / "b.pt", 2, lineage=["pretrain"])
    out = average_checkpoints([a, b], tmp_path / "soup.pt", weights=[3, 1], notes="test soup", command="avg")
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    soup = torch.load(out, weights_only=True)
    n_float = 0
    for k, v in soup["state_dict"].items():
        if v.is_floating_point():
            n_float += 1
            torch.testing.assert_close(v, 0.75 * sa[k] + 0.25 * sb[k], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(v, sb[k]), k
    assert n_float > 50 and not torch.equal(sa["stem.stem.1.running_mean"], sb["stem.stem.1.running_mean"])
    md = soup["metadata"]
    assert [i["path"] for i in md["averaged_from"]] == [str(a), str(b)]
    assert [i["weight"] for i in md["averaged_from"]] == [0.75, 0.25]
    assert md["averaged_from"][1]["lineage"] == ["pretrain"] and len(md["averaged_from"][0]["sha256"]) == 64
    assert md["lineage"] == ["train 1", "train 2"] and md["command"] == "avg" and md["notes"] == "test soup"
    assert md["trained_on"] == "simulated data (test)"  # the honesty label travels with the weights
    model = load_vsvig(out)  # the strict loader takes it
    x = torch.rand(1, 30, 15, 3, 32, 32) * 255
    k = torch.rand(1, 30, 15, 3) * 100
    with torch.no_grad():
        p = model(x, k)
    assert p.shape[0] == 1 and bool(((p >= 0) & (p <= 1)).all())


def test_average_refuses_what_does_not_mix(tmp_path: Path) -> None:
    a = _ckpt(tmp_path / "a.pt", 1)
    with pytest.raises(ValueError, match="partition orders"):
        average_checkpoints([a, _ckpt(tmp_path / "o.pt", 2, orders_seed=1)], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="variant 'base'"):
        average_checkpoints([a, _ckpt(tmp_path / "base.pt", 2, variant="base")], tmp_path / "x.pt")
    raw = tmp_path / "raw.pth"
    torch.save(torch.load(a, weights_only=True)["state_dict"], raw)
    with pytest.raises(ValueError, match="not a ward VSViG checkpoint"):
        average_checkpoints([a, raw], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([a], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="2 positive numbers"):
        average_checkpoints([a, a], tmp_path / "x.pt", weights=[1, 0])
    assert not (tmp_path / "x.pt").exists()


def test_cli_writes_the_soup_and_names_a_bad_weight_list(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from ward.train.cli import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """ward (the train commands only)"""

    register(app)
    a, b = _ckpt(tmp_path / "a.pt", 1), _ckpt(tmp_path / "b.pt", 2)
    ok = CliRunner().invoke(app, ["train", "average", str(a), str(b), "--out", str(tmp_path / "s.pt")])
    assert ok.exit_code == 0, ok.output
    assert len(torch.load(tmp_path / "s.pt", weights_only=True)["metadata"]["averaged_from"]) == 2
    bad = CliRunner().invoke(app, ["train", "average", str(a), str(b), "--weights", "1", "--out", str(tmp_path / "t.pt")])
    assert bad.exit_code == 2 and "2 positive numbers" in bad.output and not (tmp_path / "t.pt").exists()


def test_average_measured_on_a_dataset_records_its_own_metrics(tmp_path: Path) -> None:
    from ward.dataset.generate import GenerateConfig, generate

    data = tmp_path / "frames"
    generate(GenerateConfig(out=str(data), patients=3, seed_start=1000, seizure_seconds=60, free_seconds=20,
                            gt_fraction=1.0, threads=1, command="test"), log=lambda _m: None)
    a, b = _ckpt(tmp_path / "a.pt", 1, metrics={"val_mse": 9.0}), _ckpt(tmp_path / "b.pt", 2)
    md = torch.load(average_checkpoints([a, b], tmp_path / "soup.pt", data=data, command="avg"),
                    weights_only=True)["metadata"]
    m = md["metrics"]
    assert m["val_clips"] == md["n_val_clips"] > 0 and 0 <= m["val_mse"] <= 1  # measured, not the 9.0 inherited
    assert md["data"] == str(data) and len(md["data_manifest_sha256"]) == 64
    assert md["data_info"]["format"] == "ward.frames/1" and md["averaged_from"][0]["metrics"] == {"val_mse": 9.0}


def test_a_fine_tune_of_an_average_keeps_each_ingredients_chain(tmp_path: Path) -> None:
    """--init SOUP.pt: the lineage lists each ingredient's own chain, then the average, not one flat chain."""
    a = _ckpt(tmp_path / "a.pt", 1, lineage=["pre a"])
    b = _ckpt(tmp_path / "b.pt", 2, lineage=["pre b1", "pre b2"])
    soup = average_checkpoints([a, b], tmp_path / "soup.pt", command="avg a b")
    lin = init_lineage(str(soup))
    assert lin[0].startswith("# ingredient 1 of 2, weight 0.5") and lin[1:3] == ["pre a", "train 1"]
    assert lin[3].startswith("# ingredient 2 of 2") and lin[4:7] == ["pre b1", "pre b2", "train 2"]
    assert lin[7].startswith("# the weight average") and lin[8] == "avg a b" and len(lin) == 9
    assert init_lineage(str(b)) == ["pre b1", "pre b2", "train 2"]  # a plain checkpoint: as before
