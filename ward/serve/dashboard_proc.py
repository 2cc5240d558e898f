"""Start the Streamlit dashboard next to the ward (config ``dashboard.enabled``) and stop it with it.

The dashboard runs as its own process group (``start_new_session``) so stopping kills Streamlit
and anything it spawned; it talks to the database and to the ward's HTTP API only (no Ray).

It must never outlive the ward: it serves patient data. A clean stop goes through
:meth:`DashboardProcess.stop` (the WardAPI replica's shutdown), but a replica can also die without
running any Python (SIGKILL, Ray tearing its workers down after ``serve run`` got SIGTERM). So the
group's leader is a tiny watchdog (``python -m ward.serve.dashboard_proc --parent PID -- CMD``): it
runs Streamlit, and when the process that started it is gone (its parent pid changes) or it receives
SIGTERM/SIGINT/SIGHUP, it terminates Streamlit (SIGKILL after a grace period) and exits. Streamlit
itself gets ``PR_SET_PDEATHSIG`` from the watchdog's only thread, so it also dies if the watchdog is
killed outright. (The replica cannot use PR_SET_PDEATHSIG itself: it fires when the creating
*thread* exits, and Serve replicas create it from a worker thread.)
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from ward.config import WardConfig

log = logging.getLogger("ward.serve")

__all__ = ["DashboardProcess", "dashboard_command", "dashboard_env", "watch"]

REPO_ROOT = Path(__file__).resolve().parents[2]
WATCH_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def dashboard_command(host: str, port: int, app_path: Path | None = None,
                      tls_cert: str | None = None, tls_key: str | None = None) -> list[str]:
    """``python -m streamlit run dashboard/app.py`` bound to host:port, headless; HTTPS with
    ``tls_cert``/``tls_key`` (Streamlit's server.sslCertFile/sslKeyFile)."""
    app = app_path or REPO_ROOT / "dashboard" / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    if tls_cert and tls_key:
        cmd += ["--server.sslCertFile", tls_cert, "--server.sslKeyFile", tls_key]
    return cmd


def dashboard_env(cfg: "WardConfig") -> dict[str, str]:
    """The dashboard's environment: the resolved database URL (process environment only, never in Ray's
    state) and the API's URL; with API TLS, the API's certificate is the CA file its client trusts
    (SSL_CERT_FILE, which httpx honours): a self-signed certificate, or the chain up to its CA."""
    env = {"WARD_DB_URL": cfg.database.url, "WARD_API_URL": cfg.api.url}
    if cfg.api.tls_cert:
        env["SSL_CERT_FILE"] = cfg.api.tls_cert
    return env


def watched_command(command: Sequence[str], parent_pid: int) -> list[str]:
    """``command`` run under the watchdog that ends it when ``parent_pid`` is gone."""
    return [sys.executable, "-m", "ward.serve.dashboard_proc", "--parent", str(parent_pid), "--", *command]


class DashboardProcess:
    """A child process group (watchdog + command) that is terminated (then killed) on :meth:`stop`,
    and that ends by itself when this process dies."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        # Output goes to the ward's own log stream (serve run shows it).
        self.proc = subprocess.Popen(watched_command(self.command, os.getpid()), env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        log.info("dashboard started (process group %d): %s", self.proc.pid, " ".join(self.command))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process group id (the watchdog's pid)."""
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group (the watchdog ends Streamlit), SIGKILL to the group after ``timeout`` s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        _killpg(proc.pid, signal.SIGKILL)  # anything the group left behind
        log.info("dashboard stopped")


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------------------------- watchdog

def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the watchdog (its parent thread) dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def watch(command: Sequence[str], parent_pid: int, poll_s: float = WATCH_POLL_S, grace_s: float = 8.0) -> int:
    """Run ``command``; end it when ``parent_pid`` stops being our parent or on a stop signal.

    Returns the command's exit status (0 when it was stopped by us)."""
    stop: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    child = subprocess.Popen(list(command), preexec_fn=preexec)  # noqa: PLW1509 - no threads here
    while child.poll() is None and not stop and os.getppid() == parent_pid:
        time.sleep(poll_s)
    if child.poll() is not None:
        return child.returncode
    reason = f"signal {signal.Signals(stop[0]).name}" if stop else f"its ward process {parent_pid} is gone"
    print(f"ward dashboard watchdog: stopping the dashboard ({reason})", file=sys.stderr, flush=True)
    child.terminate()
    try:
        child.wait(grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ward.serve.dashboard_proc",
                                     description="Run a command; end it when the parent process is gone.")
    parser.add_argument("--parent", type=int, required=True, help="pid of the process that must outlive it")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: use --parent PID -- COMMAND [ARGS...]")
    return watch(command, args.parent)


if __name__ == "__main__":
    sys.exit(main())
