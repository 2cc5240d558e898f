"""``ward run CONFIG``: ``serve run CONFIG`` for supervisors, where SIGTERM stops the ward cleanly.

``serve run`` shuts Serve down on Ctrl-C (SIGINT: KeyboardInterrupt, then ``serve.shutdown()``), but
SIGTERM, which systemd, docker and Kubernetes send, takes Ray's own path in the driver: it kills the
local Ray processes at once (no replica runs its shutdown, so camera actors and the dashboard are
not stopped by the ward) and Ray's native signal handler prints a crash trace. This launcher runs
the very same ``serve run`` command in-process, after starting Ray itself so that it can install its
handler last: SIGTERM, SIGINT and SIGHUP all become one KeyboardInterrupt, i.e. Serve's clean path
(replicas shut down, which stops the camera actors and the dashboard group; then Ray stops). A
second signal during that shutdown is ignored rather than aborting it half-way.

It also checks the ward's part of the config (``args``) and $WARD_ADMIN_USER/$WARD_ADMIN_PASSWORD
before Ray starts, so a typo fails at once with a message naming it (instead of a failed Serve
deploy behind a `serve run` that keeps running), and sets the environment the ward needs on a small
shared machine (each variable only when not set already).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import typer

__all__ = ["ENV_DEFAULTS", "check_config", "register", "run_ward"]

WARD_IMPORT_PATH = "ward.serve.app:build_app"

# Inherited by Ray's processes (the launcher starts Ray).
ENV_DEFAULTS: dict[str, str] = {
    # a local single-user cluster; see README "Security"
    "RAY_AUTH_MODE": "disabled",
    # idle OpenMP threads sleep instead of spinning: on shared CPUs spinning made torch ~10x slower
    "OMP_WAIT_POLICY": "PASSIVE",
    # a busy small machine can take longer than Serve's 5 s to start the HTTP proxy's process
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
}


def check_config(path: Path) -> None:
    """Fail early and clearly: the file must be a Serve config whose ward applications validate."""
    import yaml  # noqa: PLC0415

    from ward.config import ConfigError, load_ward_config  # noqa: PLC0415
    from ward.dashboard.auth import BootstrapError, admin_from_env  # noqa: PLC0415

    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file: give a Serve config such as serve_configs/ward.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not valid YAML: {exc}") from None
    apps = raw.get("applications") if isinstance(raw, dict) else None
    if not isinstance(apps, list) or not apps:
        raise typer.BadParameter(f"{path} has no `applications:` list: it is not a Serve config "
                                 "(see serve_configs/ward.yaml)")
    for app in apps:
        if isinstance(app, dict) and app.get("import_path") == WARD_IMPORT_PATH:
            try:
                load_ward_config(app.get("args") or {}, validate_paths=True)
            except ConfigError as exc:
                raise typer.BadParameter(f"{path}, application {app.get('name')!r}: {exc}") from None
    try:
        admin_from_env(os.environ)
    except BootstrapError as exc:
        raise typer.BadParameter(str(exc)) from None


class _StopOnSignal:
    """Signal handler: the first signal raises KeyboardInterrupt in the main thread (Serve's clean
    shutdown path); later ones only say that the shutdown is under way."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            print(f"ward: {name} received; already shutting down (SIGKILL forces)", file=sys.stderr, flush=True)
            return
        self.received = signum
        print(f"ward: {name} received; shutting the ward down", file=sys.stderr, flush=True)
        raise KeyboardInterrupt


def _install(handler: Callable[[int, FrameType | None], Any]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def run_ward(config: Path) -> int:
    """Start Ray, then ``serve run config`` in this process until a stop signal; returns the exit status."""
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415
    from ray.serve.scripts import cli as serve_cli  # noqa: PLC0415

    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    stop = _StopOnSignal()
    _install(stop)  # also covers a signal that comes while Ray starts
    try:
        ray.init(namespace="serve")  # serve run's namespace; RAY_ADDRESS, when set, picks the cluster
        _install(stop)  # after ray.init: replace the SIGTERM handlers Ray's driver installed
        serve_cli.main(["run", str(config)], prog_name="serve", standalone_mode=False)
    except SystemExit as exc:  # serve run exits after its own clean shutdown
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt/click.Abort before serve run's loop, or a failure
        _shutdown_quietly(serve)
        if stop.received is None:
            raise
    return 0


def _shutdown_quietly(serve: Any) -> None:
    """serve.shutdown() when a signal came before `serve run` reached its own handler."""
    try:
        serve.shutdown()
    except Exception as exc:  # noqa: BLE001 - Serve may not have started yet; Ray is stopped at exit anyway
        print(f"ward: serve.shutdown failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    """Add ``ward run`` to the root app."""

    @app.command("run")
    def run(config: Path = typer.Argument(Path("serve_configs/ward.yaml"),
                                          help="Serve config (default serve_configs/ward.yaml)."),
            check_only: bool = typer.Option(False, "--check", help="Only validate the config, start nothing.")
            ) -> None:
        """Run the ward (`serve run CONFIG`) until SIGTERM, SIGINT or SIGHUP, then stop it cleanly."""
        check_config(config)
        if check_only:
            typer.echo(f"{config}: ok")
            return
        raise typer.Exit(run_ward(config))
