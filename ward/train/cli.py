"""`ward train vsvig|pose`: training the two networks from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    tr = typer.Typer(no_args_is_help=True, help="Train the pose model and VSViG on simulated (or annotated) data.")

    @tr.command("vsvig")
    def vsvig(data: Path = typer.Option(..., "--data", help="dataset dir from `ward dataset build` (manifest.json)"),
              epochs: int = typer.Option(20, help="epochs (the official script uses 200; 20 is CPU-feasible)"),
              batch_size: int = typer.Option(32, "--batch-size"), lr: float = typer.Option(1e-4),
              weight_decay: float = typer.Option(1e-5, "--weight-decay"),
              step_size: int = typer.Option(40, "--step-size", help="StepLR step (epochs)"),
              gamma: float = typer.Option(0.1), out: Path = typer.Option(Path("runs/vsvig"), "--out"),
              resume: bool = typer.Option(False, "--resume", help="continue from OUT/last.ckpt"),
              device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda:N"),
              seed: int = typer.Option(0), clips_per_epoch: Optional[int] = typer.Option(
                  None, "--clips-per-epoch", help="clips drawn per epoch (default: size of the train split)"),
              pos_fraction: float = typer.Option(0.4, "--pos-fraction",
                                                 help="share of seizure clips drawn per epoch (0 = natural mix)"),
              max_val_clips: int = typer.Option(2000, "--max-val-clips"),
              no_augment: bool = typer.Option(False, "--no-augment"),
              init: Optional[Path] = typer.Option(None, help="start from these VSViG weights (fine-tune)"),
              threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
              precision: str = typer.Option("auto", "--precision",
                                            help="auto | fp32 | bf16 (autocast); auto: bf16 only where the CPU has "
                                                 "native bf16 and a measured step is faster"),
              preclinical_weight: float = typer.Option(
                  3.0, "--preclinical-weight", help="ward.frames/1: sampling weight of pre-clinical clips within a "
                                                    "seizure type's positive clips"),
              hard_negative_weight: float = typer.Option(
                  1.0, "--hard-negative-weight", help="ward.frames/1: sampling weight of label-0 clips in or up to "
                                                      "20 s after a behaviour or scene event (vs calm ones)"),
              hard_kinds: Optional[str] = typer.Option(
                  None, "--hard-kinds", help="comma-separated behaviours/scene events that make a label-0 clip "
                                             "hard, e.g. turning_over,sitting_up (default: all)"),
              mine_fraction: float = typer.Option(
                  0.0, "--mine-fraction", help="share of label-0 draws chosen by the model's own loss (p^2) from "
                                               "--mine-pool clips scored before each epoch (0: off)"),
              mine_pool: int = typer.Option(6000, "--mine-pool", help="label-0 clips scored per epoch for mining"),
              max_minutes: Optional[float] = typer.Option(
                  None, "--max-minutes", help="stop cleanly after this long (last.ckpt); continue with --resume"),
              variant: str = typer.Option("light", "--variant", help="light | base (VSViG-base: ~4x the compute)")
              ) -> None:
        """Train VSViG (paper graph mode) on ward.frames/1 or ward.clips/1: MSE on soft labels, Adam + StepLR, checkpoint every epoch."""
        from ward.train.vsvig import VSViGTrainConfig, train_vsvig

        cfg = VSViGTrainConfig(data=str(data), out=str(out), epochs=epochs, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, step_size=step_size, gamma=gamma, device=device, seed=seed,
                               clips_per_epoch=clips_per_epoch, pos_fraction=pos_fraction or None,
                               max_val_clips=max_val_clips, augment=not no_augment, threads=threads,
                               init=str(init) if init else None, precision=precision,
                               preclinical_weight=preclinical_weight, hard_negative_weight=hard_negative_weight,
                               hard_negative_kinds=tuple(k.strip() for k in hard_kinds.split(",") if k.strip())
                               if hard_kinds is not None else None,
                               mine_fraction=mine_fraction, mine_pool=mine_pool,
                               max_minutes=max_minutes, variant=variant)
        if variant not in ("light", "base"):
            raise typer.BadParameter(f"--variant must be light or base, got {variant!r}")
        try:
            res = train_vsvig(cfg, resume=resume, log=typer.echo)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"best: {res['best']}\nlast: {res['last']}\nprecision: {res['precision']}, "
                   f"{res['train_clips_per_s']:.1f} training clips/s" + (" (stopped: --resume to continue)"
                                                                          if res["stopped"] else ""))

    @tr.command("average")
    def average(checkpoints: list[Path] = typer.Argument(..., help="ward VSViG checkpoints (best.pt) fine-tuned "
                                                                    "from one starting point"),
                out: Path = typer.Option(..., "--out", help="where to write the averaged checkpoint"),
                weights: Optional[str] = typer.Option(None, "--weights", help="comma-separated weights "
                                                                              "(default: uniform)"),
                notes: str = typer.Option("", "--notes", help="free text kept in the checkpoint metadata"),
                data: Optional[Path] = typer.Option(None, "--data", help="dataset whose val split the average is "
                                                                         "scored on (its metrics, as ward train "
                                                                         "vsvig records them)"),
                max_val_clips: int = typer.Option(2000, "--max-val-clips")) -> None:
        """Average the weights of VSViG checkpoints (a "model soup"): one model that behaves like their ensemble."""
        from ward.train.average import average_checkpoints

        try:
            w = [float(x) for x in weights.split(",")] if weights else None
            path = average_checkpoints(checkpoints, out, weights=w, notes=notes, data=data,
                                       max_val_clips=max_val_clips)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {path} (average of {len(checkpoints)} checkpoints)")

    @tr.command("pose")
    def pose(config: str = typer.Option("small", help="network configuration (small or official)"),
             sim_frames: int = typer.Option(2000, "--sim-frames", help="training frames drawn from the simulator"),
             steps: int = typer.Option(1500, help="optimiser steps"), batch_size: int = typer.Option(4, "--batch-size"),
             lr: float = typer.Option(1e-3), height: int = typer.Option(256, help="network input height"),
             init: Optional[Path] = typer.Option(None, help="start from these weights (fine-tune)"),
             out: Path = typer.Option(Path("runs/pose"), "--out"),
             resume: bool = typer.Option(False, "--resume"), device: str = typer.Option("auto"),
             seed: int = typer.Option(0, help="training scenario seeds start at 3000 + 100 * seed"),
             eval_frames: int = typer.Option(60, "--eval-frames", help="held-out frames for PCK"),
             threads: Optional[int] = typer.Option(None),
             max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="stop training after this long"),
             seizure_share: float = typer.Option(0.0, "--seizure-share", min=0.0, max=1.0,
                                                 help="share of training frames drawn inside seizures (ictal postures)"),
             uncovered_share: float = typer.Option(0.0, "--uncovered-share", min=0.0, max=1.0,
                                                   help="share of training scenarios with the legs uncovered"),
             precision: str = typer.Option("fp32", help="fp32, bf16 (autocast) or auto (bf16 where measured faster)"),
             ) -> None:
        """Train the Lightweight OpenPose network on simulator frames (heatmaps + PAFs, MSE on every stage)."""
        from ward.train.pose import PoseTrainConfig, train_pose

        cfg = PoseTrainConfig(config=config, sim_frames=sim_frames, steps=steps, batch_size=batch_size, lr=lr,
                              height=height, init=str(init) if init else None, out=str(out), device=device,
                              seed=seed, eval_frames=eval_frames, threads=threads,
                              max_minutes=max_minutes, seizure_share=seizure_share,
                              uncovered_share=uncovered_share, precision=precision)
        try:
            res = train_pose(cfg, resume=resume, log=typer.echo)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"best: {res['best']}")

    app.add_typer(tr, name="train")
