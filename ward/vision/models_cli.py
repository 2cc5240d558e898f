"""``ward models fetch|verify|list``: the official VSViG release files under ``models/official``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ward.vision import official_weights as ow

_DEST_HELP = "Folder holding the official files."


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
    models = typer.Typer(no_args_is_help=True, help="Official VSViG weights: fetch, verify, list.")

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

    app.add_typer(models, name="models")
