"""`ward sim render|preview`: simulated bed camera footage on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _scenario(source: str, fps: Optional[float], width: Optional[int], height: Optional[int]):
    from ward.sim.scenario import Scenario, load_scenario

    try:
        sc = load_scenario(source)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="SCENARIO_OR_URI") from None
    upd = {k: v for k, v in (("fps", fps), ("width", width), ("height", height)) if v is not None}
    return Scenario.model_validate({**sc.model_dump(), **upd}) if upd else sc


def register(app: typer.Typer) -> None:
    sim = typer.Typer(no_args_is_help=True, help="Simulated bed cameras with ground truth.")

    @sim.command()
    def render(source: str = typer.Argument(..., metavar="SCENARIO_OR_URI", help="sim://... URI or YAML/JSON file"),
               out: Path = typer.Option(..., "--out", help="output directory"),
               fps: Optional[float] = typer.Option(None, help="override the scenario's fps"),
               width: Optional[int] = typer.Option(None), height: Optional[int] = typer.Option(None),
               quality: bool = typer.Option(False, "--quality", help="anti-aliased drawing (slower)"),
               no_video: bool = typer.Option(False, "--no-video", help="ground truth only (fast)")) -> None:
        """Render a scenario to video.mp4 + groundtruth.json + groundtruth.csv as fast as possible."""
        from tqdm import tqdm

        from ward.sim.output import render_to_files

        sc = _scenario(source, fps, width, height)
        with tqdm(total=sc.n_frames, unit="frame", desc="sim render") as bar:
            paths = render_to_files(sc, out, fast=not quality, video=not no_video, progress=bar.update)
        for k, p in paths.items():
            typer.echo(f"{k}: {p}")

    @sim.command()
    def preview(source: str = typer.Argument(..., metavar="SCENARIO_OR_URI"),
                out: Path = typer.Option(Path("sheet.png"), "--out", help="PNG contact sheet"),
                n: int = typer.Option(12, help="evenly spaced frames (seizure phases are added)"),
                cols: int = typer.Option(4), width: Optional[int] = typer.Option(None),
                height: Optional[int] = typer.Option(None)) -> None:
        """Write a contact sheet of frames across the scenario, labelled with behaviour and seizure phase."""
        import cv2

        from ward.sim.output import contact_sheet

        sc = _scenario(source, None, width, height)
        sheet = contact_sheet(sc, n=n, cols=cols)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), sheet):
            raise typer.BadParameter(f"could not write {out} (use a .png path)", param_hint="--out")
        typer.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")

    app.add_typer(sim, name="sim")
