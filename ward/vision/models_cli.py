"""``ward models fetch|verify|list|export``: the official VSViG release files under ``models/official``,
and the ONNX/OpenVINO files the inference engines run (``export``, see docs/inference.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from ward.vision import official_weights as ow

_DEST_HELP = "Folder holding the official files."
WARD_POSE = Path("models/ward-pose-small.pt")
WARD_VSVIG = Path("models/ward-vsvig-light.pt")
OFFICIAL_POSE = "pose.pth"
OFFICIAL_VSVIG = "VSViG-base.pth"


def _checkpoints(given: list[Path] | None, ward: Path, official: Path) -> list[Path]:
    """The checkpoints asked for, else the shipped ward one and the official one when present."""
    if given:
        return list(given)
    return [p for p in (ward, official) if p.is_file()]


def export_models(pose: list[Path], vsvig: list[Path], out: Path | None, precision: str = "fp32",
                  height: int = 256, echo: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Export each checkpoint to ONNX (parity-checked against torch fp32), into ``out`` or the model
    cache, and quantize it to int8 when asked; one row per file: family, checkpoint, file, parity."""
    from ward.vision import export  # noqa: PLC0415
    from ward.vision.openpose import load_openpose  # noqa: PLC0415
    from ward.vision.vsvig import load_vsvig  # noqa: PLC0415

    if precision not in ("fp32", "int8"):
        raise export.EngineError(f"--precision must be fp32 (also what bf16 runs) or int8, not {precision!r}")
    quantize = export.int8_module() if precision == "int8" else None
    rows: list[dict[str, Any]] = []
    for family, ckpts in (("pose", pose), ("vsvig", vsvig)):
        for ckpt in ckpts:
            if family == "pose":
                target = out / f"{ckpt.stem}.onnx" if out else export.pose_onnx_path(ckpt)
                export.export_pose_onnx(load_openpose(ckpt), target, height=height)
                parity = export.export_pose_onnx.last_parity
            else:
                target = out / f"{ckpt.stem}.onnx" if out else export.vsvig_onnx_path(ckpt)
                export.export_vsvig_onnx(load_vsvig(ckpt), target)
                parity = export.export_vsvig_onnx.last_parity
            row = {"family": family, "checkpoint": str(ckpt), "file": str(target), "parity": dict(parity)}
            echo(f"{family} {ckpt} -> {target}; max |ONNX - torch fp32|: "
                 + ", ".join(f"{k} {v:.2g}" for k, v in parity.items()))
            if quantize is not None:
                if family == "pose":
                    xml = quantize.quantize_pose(target, target.with_name(f"{target.stem}-int8-h{height}.xml"), height)
                else:
                    xml = quantize.quantize_vsvig(target, target.with_name(f"{target.stem}-int8.xml"))
                row["int8"] = str(xml)
                echo(f"{family} {ckpt} -> {xml} (int8, passed its accuracy gate)")
            rows.append(row)
    return rows


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n} B"


def _table(rows: list[ow.FileResult], title: str, with_usage: bool = False) -> Table:
    table = Table(title=title)
    table.add_column("file")
    table.add_column("present")
    table.add_column("size", justify="right")
    table.add_column("sha1 ok")
    if with_usage:
        table.add_column("used by")
    else:
        table.add_column("detail")
    for r in rows:
        sha_ok = "-" if not r.present else ("n/a" if not r.expected_sha1 else ("yes" if r.ok else "NO"))
        last = (", ".join(r.used_by) or "-") if with_usage else r.message
        table.add_row(r.name, "yes" if r.present else "no", _fmt_size(r.size), sha_ok, last)
    return table


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to the ward CLI."""
    models = typer.Typer(no_args_is_help=True, help="Official VSViG weights: fetch, verify, list; ONNX export for the inference engines.")

    @models.command("fetch")
    def fetch_cmd(
        dest: Path = typer.Option(ow.DEFAULT_DEST, "--dest", help=_DEST_HELP),
        base_url: Optional[str] = typer.Option(
            None, "--base-url", help=f"Download base URL [default: $WARD_OFFICIAL_BASE_URL or {ow.DEFAULT_BASE_URL}]"),
        timeout: float = typer.Option(60.0, "--timeout", help="Network timeout per request, seconds."),
        force: bool = typer.Option(False, "--force", help="Download even if a verified copy is present."),
    ) -> None:
        """Download pose.pth, VSViG-base.pth and dy_point_order.pt and verify their git blob SHA-1."""
        console = Console()
        try:
            rows = ow.fetch(dest, base_url, timeout, force=force)
        except ow.OfficialWeightsError as exc:
            if exc.results:
                console.print(_table(exc.results, f"fetch into {dest}"))
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        console.print(_table(rows, f"fetch into {dest}"))

    @models.command("verify")
    def verify_cmd(dest: Path = typer.Option(ow.DEFAULT_DEST, "--dest", help=_DEST_HELP)) -> None:
        """Check the files already in DEST against their git blob SHA-1 (no network)."""
        rows = ow.verify(dest)
        Console().print(_table(rows, f"verify {dest}"))
        if not all(r.ok for r in rows):
            typer.echo("some official files are missing or wrong; run `ward models fetch` or:\n"
                       + ow.manual_instructions(dest), err=True)
            raise typer.Exit(1)

    @models.command("list")
    def list_cmd(
        dest: Path = typer.Option(ow.DEFAULT_DEST, "--dest", help=_DEST_HELP),
        configs: Path = typer.Option(ow.DEFAULT_CONFIGS, "--configs", help="Serve configurations to scan."),
    ) -> None:
        """Show what is installed, whether it verifies and which serve configuration uses it."""
        rows = ow.list_installed(dest, configs)
        for r in rows:  # show config paths as "serve_configs/x.yaml", not absolute
            r.used_by = [str(Path(p).relative_to(configs.parent)) for p in r.used_by]
        Console(width=160).print(_table(rows, f"models in {dest}", with_usage=True))

    @models.command("export")
    def export_cmd(
        pose: Optional[list[Path]] = typer.Option(
            None, "--pose", help=f"Pose checkpoint (repeatable) [default: {WARD_POSE} and DEST/{OFFICIAL_POSE} if present]"),
        vsvig: Optional[list[Path]] = typer.Option(
            None, "--vsvig", help=f"VSViG checkpoint (repeatable) [default: {WARD_VSVIG} and DEST/{OFFICIAL_VSVIG} "
                                  "if present]"),
        family: str = typer.Option("all", "--family", help="pose, vsvig or all."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder for the files [default: the model cache "
                                                               "the engines read, $WARD_CACHE_DIR or ~/.cache/ward]"),
        precision: str = typer.Option("fp32", "--precision", help="fp32 (the file bf16 runs too) or int8."),
        height: int = typer.Option(256, "--height", help="Pose input height (parity check, int8 calibration)."),
        dest: Path = typer.Option(ow.DEFAULT_DEST, "--dest", help=_DEST_HELP),
    ) -> None:
        """Export pose and VSViG checkpoints to ONNX for OpenVINO, checked against torch fp32."""
        from ward.vision.engines import EngineError  # noqa: PLC0415

        if family not in ("pose", "vsvig", "all"):
            raise typer.BadParameter("use pose, vsvig or all", param_hint="--family")
        poses = _checkpoints(pose, WARD_POSE, dest / OFFICIAL_POSE) if family in ("pose", "all") else []
        vsvigs = _checkpoints(vsvig, WARD_VSVIG, dest / OFFICIAL_VSVIG) if family in ("vsvig", "all") else []
        if not poses and not vsvigs:
            typer.echo("no checkpoint found: pass --pose/--vsvig, or run from the repository root", err=True)
            raise typer.Exit(1)
        try:
            export_models(poses, vsvigs, out, precision, height, echo=typer.echo)
        except (EngineError, OSError, ValueError) as exc:
            typer.echo(f"export failed: {exc}", err=True)
            raise typer.Exit(1) from exc

    app.add_typer(models, name="models")
