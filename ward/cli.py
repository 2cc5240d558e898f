"""The `ward` command line: one sub-command group per concern.

Each concern registers its commands from its own module (``register(app)``), so this file only
lists them; importing is lazy enough that `ward --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, help="ward: real-time video seizure monitoring.", add_completion=False)

# (module, what it adds). A module's register(app) adds its group(s) or commands.
_CONCERNS: tuple[str, ...] = (
    "ward.vision.models_cli",   # ward models fetch|verify|list|export
    "ward.sim.cli",             # ward sim render|preview
    "ward.dataset.cli",         # ward dataset build
    "ward.train.cli",           # ward train pose|vsvig
    "ward.evaluation.cli",      # ward eval, ward eval-tune
    "ward.store.cli",           # ward alarms|history|stats|users|db
    "ward.store.audit_cli",     # ward audit
    "ward.serve.launcher",      # ward run
)


@app.callback()
def _root() -> None:
    """ward: real-time video seizure monitoring."""


@app.command()
def version() -> None:
    """Print ward's version."""
    from ward import __version__

    typer.echo(__version__)


def _register_all() -> None:
    for name in _CONCERNS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # concern not built yet
                continue
            raise
        module.register(app)


def _int8_inputs() -> None:
    """Where int8 quantization (``ward.vision.quantize``) finds its simulated calibration and gate
    inputs in this process: ``ward.vision`` may not build them itself (layers), so they come from
    ``ward.evaluation.calibration``, imported only when a model is actually quantized (``ward models
    export --precision int8``, or ``precision: int8`` in a local pose/VSViG)."""
    from ward.vision.quantize import register_sample_source

    def lazy(name: str):  # type: ignore[no-untyped-def]
        return lambda n, split: getattr(importlib.import_module("ward.evaluation.calibration"), name)(n, split)

    register_sample_source("pose", lazy("pose_samples"))
    register_sample_source("vsvig", lazy("clip_samples"))


def main() -> None:
    _register_all()
    _int8_inputs()
    app()


if __name__ == "__main__":
    main()
