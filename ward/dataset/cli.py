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
              backend: Optional[str] = typer.Option(
                  None, "--backend", help="pose engine for --keypoints pose: auto | torch | openvino (default: "
                                          "models.pose.backend of serve_configs/ward.yaml, else auto)"),
              precision: Optional[str] = typer.Option(
                  None, "--precision", help="auto | fp32 | bf16 | int8 (default: as --backend)"),
              bed_roi: Optional[Tuple[float, float, float, float]] = typer.Option(
                  None, "--bed-roi", help="normalised x0 y0 x1 y1 of the bed (patient selection)"),
              face_blur: bool = typer.Option(
                  True, "--face-blur/--no-face-blur",
                  help="blur faces in recorded videos before cutting patches (default), so the stored head-joint "
                       "patches show no recognisable face. --no-face-blur stores patients' faces unblurred: only for "
                       "a research dataset under its own ethics approval and data protection (e.g. to study whether "
                       "facial signs help the model); recorded in manifest.json as face_blur: false")) -> None:
        """Turn videos + onsets into 30-frame clips (6 fps) split by patient into train/val/test shards.

        Faces in recorded videos are blurred before the joint patches are cut (see docs/privacy.md)."""
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
                from ward.config import engine_defaults
                from ward.vision.pose import PoseEstimator

                if not pose_weights.is_file():
                    raise ValueError(f"--pose-weights {pose_weights} not found (train with `ward train pose`)")
                b, p = engine_defaults("pose", backend, precision)
                pose_fn = PoseEstimator.from_checkpoint(str(pose_weights), backend=b, precision=p)
                typer.echo(f"pose engine: {pose_fn.engine}")
            if not face_blur and videos:
                typer.echo("WARNING: --no-face-blur: the shards will hold UNBLURRED face patches of the patients in "
                           f"{videos}; keep them only under the dataset's own ethics approval (manifest: "
                           "face_blur: false)", err=True)
            src = ", ".join([*(str(s) for s in sim or []), *([f"{videos} + {annotations}"] if videos else [])])
            path = build_dataset(items, out, pose_fn=pose_fn, bed_roi=bed_roi, stride_s=stride_s, shard_size=shard_size, seed=seed,
                                 source=src, face_blur=face_blur, progress=typer.echo)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {path}")

    app.add_typer(ds, name="dataset")
