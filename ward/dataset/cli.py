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

    @ds.command()
    def generate(out: Path = typer.Option(..., "--out", help="dataset directory (ward.frames/1; re-run to resume)"),
                 patients: int = typer.Option(1000, "--patients", help="simulated patients (one scenario each)"),
                 seed_start: int = typer.Option(1000, "--seed-start", help="first seed (training range 1000-2999)"),
                 seizure_seconds: float = typer.Option(90.0, "--seizure-seconds", help="length of seizure scenarios"),
                 free_seconds: float = typer.Option(60.0, "--free-seconds", help="length of seizure-free scenarios"),
                 seizure_share: float = typer.Option(0.6, "--seizure-share", help="share of patients with a seizure"),
                 gt_fraction: float = typer.Option(0.2, "--gt-fraction",
                                                   help="share of scenarios cut at ground truth + pose noise"),
                 uncovered_share: float = typer.Option(
                     0.3, "--uncovered-share", help="share of patients with the blanket folded at the foot end (legs in view)"),
                 shard: Optional[str] = typer.Option(None, "--shard", help="K/N: render only every N-th scenario from K"),
                 jobs: int = typer.Option(1, "--jobs", help="worker processes on this machine (each a shard)"),
                 pose: Path = typer.Option(Path("models/ward-pose-small.pt"), "--pose", help="pose model weights"),
                 backend: Optional[str] = typer.Option(None, "--backend", help="pose engine: auto | torch | openvino"),
                 precision: Optional[str] = typer.Option(None, "--precision", help="auto | fp32 | bf16 | int8"),
                 pose_height: int = typer.Option(256, "--pose-height", help="pose network input height"),
                 threads: Optional[int] = typer.Option(None, "--threads", help="threads per job")) -> None:
        """Render training scenarios in-process through the bed pipeline into ward.frames/1 (resumable)."""
        from ward.dataset.generate import GenerateConfig, generate as run, write_manifest

        try:
            k, n = (int(v) for v in shard.split("/")) if shard else (0, 1)
        except ValueError:
            raise typer.BadParameter(f"--shard must be K/N, got {shard!r}") from None
        try:
            from ward.config import engine_defaults

            b, p = engine_defaults("pose", backend, precision)
            cfg = GenerateConfig(out=str(out), patients=patients, seed_start=seed_start, seizure_seconds=seizure_seconds,
                                 free_seconds=free_seconds, seizure_share=seizure_share, gt_fraction=gt_fraction,
                                 uncovered_share=uncovered_share,
                                 pose=str(pose), backend=b, precision=p, pose_height=pose_height, threads=threads)
            if jobs > 1:
                if shard:
                    raise ValueError("give --shard or --jobs, not both")
                import multiprocessing as mp
                import os

                from ward.core.lifetime import die_with_parent

                # workers end with this process (a shard is one long task: orphans would render on)
                with mp.get_context("spawn").Pool(jobs, initializer=die_with_parent,
                                                   initargs=(os.getpid(),)) as pool:
                    stats = pool.starmap(_job, [(cfg, (j, jobs)) for j in range(jobs)])
                write_manifest(cfg)
                typer.echo(f"jobs: {stats}")
            else:
                stats = run(cfg, (k, n), log=typer.echo)
                typer.echo(f"this run: {stats}")
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {out / 'manifest.json'}")

    @ds.command()
    def sheet(data: Path = typer.Argument(..., help="a ward.frames/1 dataset"),
              out: Path = typer.Option(Path("sheet.png"), "--out"),
              per_kind: int = typer.Option(2, "--per-kind", help="clips per seizure type / hard-negative kind"),
              frames: int = typer.Option(8, "--frames", help="frames drawn per clip")) -> None:
        """Contact sheet: clips per seizure type and hard-negative kind as rows of skeletons and patches."""
        from ward.dataset.sheet import contact_sheet

        try:
            contact_sheet(data, out, per_kind=per_kind, n_frames=frames)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {out}")

    app.add_typer(ds, name="dataset")


def _job(cfg, shard):  # a --jobs worker (module level: picklable)
    from ward.dataset.generate import generate

    return generate(cfg, shard, log=lambda m: print(f"[job {shard[0]}] {m}", flush=True))
