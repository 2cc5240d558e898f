"""`ward dataset build`: clips for VSViG from simulator output or annotated videos."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer


def register(app: typer.Typer) -> None:
    ds = typer.Typer(no_args_is_help=True, help="Training clip datasets.")

    @ds.command()
    def build(out: Path = typer.Option(..., "--out", help="output directory (manifest.json + shards)"),
              sim: Optional[List[Path]] = typer.Option(None, "--sim", help="a `ward sim render` output dir (repeatable)"),
              videos: Optional[Path] = typer.Option(None, "--videos", help="folder of annotated videos"),
              annotations: Optional[Path] = typer.Option(None, "--annotations", help="CSV/XLSX onset table"),
              keypoints: str = typer.Option("gt", help="gt (simulator ground truth) or pose (pose estimator)"),
              stride_s: float = typer.Option(1.0, help="seconds between clip starts"),
              shard_size: int = typer.Option(64), seed: int = typer.Option(0, help="patient split seed"),
              pose_weights: Path = typer.Option(Path("models/ward-pose-small.pt"), "--pose-weights",
                                                help="pose model for --keypoints pose"),
              bed_roi: Optional[Tuple[float, float, float, float]] = typer.Option(
                  None, "--bed-roi", help="normalised x0 y0 x1 y1 of the bed (patient selection)")) -> None:
        """Turn videos + onsets into 30-frame clips (6 fps) split by patient into train/val/test shards."""
        from ward.dataset.build import build_dataset, collect_annotated, collect_sim

        try:
            items = []
            if sim:
                items += collect_sim(sim)
            if videos or annotations:
                if not (videos and annotations):
                    raise ValueError("--videos and --annotations go together")
                items += collect_annotated(videos, annotations)
            if not items:
                raise ValueError("give --sim DIR(s) or --videos DIR --annotations TABLE")
            if keypoints not in ("gt", "pose"):
                raise ValueError("--keypoints must be gt or pose")
            pose_fn = None
            if keypoints == "pose":
                from ward.dataset.build import PoseTracker
                from ward.vision.pose import PoseEstimator

                if not pose_weights.is_file():
                    raise ValueError(f"--pose-weights {pose_weights} not found (train with `ward train pose`)")
                pose_fn = PoseTracker(PoseEstimator.from_checkpoint(str(pose_weights)), bed_roi=bed_roi)
            src = ", ".join([*(str(s) for s in sim or []), *([f"{videos} + {annotations}"] if videos else [])])
            path = build_dataset(items, out, pose_fn=pose_fn, stride_s=stride_s, shard_size=shard_size, seed=seed,
                                 source=src, progress=typer.echo)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {path}")

    app.add_typer(ds, name="dataset")
