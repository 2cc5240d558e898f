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

Ray runs with token authentication (``RAY_AUTH_MODE=token``): without it any local user, and anyone
who can reach its ports, can run code as the ward's user (full database access). The token is Ray's
own lookup: ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``;
:func:`setup_ray_auth` generates that file (256 random bits, mode 0600) when a new local cluster is
started and none exists, and refuses one that others can read. ``ray``/``serve`` commands then
need only ``RAY_AUTH_MODE=token`` to find it.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Callable, MutableMapping

import typer

__all__ = ["ENV_DEFAULTS", "RayAuthError", "check_config", "ensure_ray_token", "ray_token_path", "register",
           "run_ward", "setup_ray_auth"]

WARD_IMPORT_PATH = "ward.serve.app:build_app"

# Inherited by Ray's processes (the launcher starts Ray).
ENV_DEFAULTS: dict[str, str] = {
    # every Ray connection (drivers, CLI, nodes, dashboard HTTP) must present the token; see setup_ray_auth
    "RAY_AUTH_MODE": "token",
    # idle OpenMP threads sleep instead of spinning: on shared CPUs spinning made torch ~10x slower
    "OMP_WAIT_POLICY": "PASSIVE",
    # a busy small machine can take longer than Serve's 5 s to start the HTTP proxy's process
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
}



class RayAuthError(RuntimeError):
    """Ray's token cannot be used as it is (missing for a cluster we join, or readable by others)."""


def ray_token_path(env: MutableMapping[str, str] = os.environ) -> Path:
    """The token file Ray reads: ``$RAY_AUTH_TOKEN_PATH``, else Ray's default ``~/.ray/auth_token``."""
    given = env.get("RAY_AUTH_TOKEN_PATH")
    return Path(given).expanduser() if given else Path.home() / ".ray" / "auth_token"


def ensure_ray_token(path: Path, *, create: bool = True) -> Path:
    """``path`` holding a Ray token, generated (256 random bits, mode 0600) when missing and ``create``.

    Ray's own ``ray get-auth-token --generate`` writes the file with the umask's mode (often 0644),
    so the ward makes it itself; an existing token file that group or others can read is refused,
    since whoever reads it can run code on the cluster as the ward."""
    if not path.exists():
        if not create:
            raise RayAuthError(f"no Ray token at {path}: RAY_ADDRESS names an existing cluster, so copy that "
                               f"cluster's token here (chmod 600 {path}), or point RAY_AUTH_TOKEN_PATH at it")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by a process starting at the same time: check theirs
            return ensure_ray_token(path, create=False)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        print(f"ward: generated a Ray authentication token in {path} (mode 0600)", file=sys.stderr, flush=True)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise RayAuthError(f"Ray token path {path} is not a regular file: give the token file (RAY_AUTH_TOKEN_PATH)")
    if st.st_mode & 0o077:
        raise RayAuthError(f"Ray token {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                           f"anyone who reads it can run code on the cluster; run `chmod 600 {path}`")
    if st.st_size == 0:
        raise RayAuthError(f"Ray token {path} is empty: delete it (the ward generates a new one) or copy the "
                           "cluster's token into it")
    return path


def setup_ray_auth(env: MutableMapping[str, str] = os.environ) -> Path | None:
    """Apply ENV_DEFAULTS to ``env`` and make sure the Ray token the ward will use exists, private.

    Returns the token file, or None when the token comes from ``$RAY_AUTH_TOKEN`` or authentication
    was switched off explicitly (``RAY_AUTH_MODE=disabled``, warned about). A new local cluster gets a
    generated token; joining one (``$RAY_ADDRESS``) needs that cluster's token already in place."""
    for key, value in ENV_DEFAULTS.items():
        env.setdefault(key, value)
    if env["RAY_AUTH_MODE"].lower() != "token":
        print(f"ward: WARNING: RAY_AUTH_MODE={env['RAY_AUTH_MODE']}: Ray runs WITHOUT authentication; any local "
              "user, and anyone who can reach its ports, can run code as the ward's user (full database access). "
              "Unset RAY_AUTH_MODE to use token authentication.", file=sys.stderr, flush=True)
        return None
    if env.get("RAY_AUTH_TOKEN"):
        return None
    joining = env.get("RAY_ADDRESS", "") not in ("", "local")  # "local": a new cluster of our own
    return ensure_ray_token(ray_token_path(env), create=not joining)

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

    setup_ray_auth(os.environ)  # before Ray starts: its processes inherit the mode and find the token
    stop = _StopOnSignal()
    _install(stop)  # also covers a signal that comes while Ray starts
    try:
        # As `serve run`: Ray's choice of cluster (RAY_ADDRESS; else one started by `ray start` on this
        # machine; else a new local one, also forced by RAY_ADDRESS=local), Serve's namespace.
        ray.init(namespace="serve")
        _install(stop)  # after ray.init: replace the SIGTERM handlers Ray's driver installed
        serve_cli.main(["run", str(config)], prog_name="serve", standalone_mode=False)
    except SystemExit as exc:  # serve run exits after its own clean shutdown
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt/click.Abort before serve run's loop, or a failure
        _shutdown_quietly(ray, serve)
        if stop.received is None:
            raise
    return 0


def _shutdown_quietly(ray: Any, serve: Any) -> None:
    """serve.shutdown() when a signal came before `serve run` reached its own handler. Only once
    connected: serve.shutdown() would otherwise connect to whatever cluster Ray finds, to stop it."""
    if not ray.is_initialized():
        return
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
        try:
            code = run_ward(config)
        except RayAuthError as exc:
            typer.echo(f"ward: {exc}", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(code)
