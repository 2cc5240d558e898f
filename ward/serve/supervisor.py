"""What runs beside the ward's API replica and must live and die with it: the camera actors and the
dashboard process. :class:`Supervisor` starts them, hands the camera actors the deployment handles
``build_app`` bound, and stops them.

**Why a component owned by the WardAPI replica, not a Serve deployment of its own.** It keeps today's
behaviour with the fewest moving parts: the dashboard's watchdog ends the dashboard when the process
that started it is gone (it watches its parent pid), so the dashboard dies with the replica that owns
the supervisor even when that replica is SIGKILLed; ``GET /api/beds/{bed}/poses`` asks a bed's camera
actor directly instead of through one more hop; and a clean stop is the replica's ``shutdown``. A
deployment would add a replica, a health check and a handle for no behaviour gained.

**Camera actors** (:class:`~ward.serve.camera_actor.CameraActor`, one per ``beds_per_actor`` beds, spread over
the cluster's nodes) are plain Ray actors with ``max_restarts=-1``: Ray restarts a dead one with the
same arguments (beds and handles), so the supervisor needs no watch loop of its own. :meth:`Supervisor.stop`
asks each to stop, then kills it without restart.

**The dashboard** (config ``dashboard.enabled``) runs as its own process group (``start_new_session``)
so stopping kills Streamlit and anything it spawned; it talks to the database and to the ward's HTTP
API only (no Ray), with a read-only API token of the ``svc-dashboard`` service account.

It must never outlive the ward: it serves patient data. A clean stop goes through
:meth:`DashboardProcess.stop` (the supervisor's stop), but a replica can also die without running any
Python (SIGKILL, Ray tearing its workers down after ``serve run`` got SIGTERM). So the group's leader
is a tiny watchdog (``python -m ward.serve.supervisor --parent PID -- CMD``): it runs Streamlit, and
when the process that started it is gone (its parent pid changes) or it receives SIGTERM/SIGINT/SIGHUP,
it terminates Streamlit (SIGKILL after a grace period) and exits. Streamlit itself gets
``PR_SET_PDEATHSIG`` from the watchdog's only thread, so it also dies if the watchdog is killed
outright. (The replica cannot use PR_SET_PDEATHSIG itself: it fires when the creating *thread* exits,
and Serve replicas create it from a worker thread.)

This module imports neither Ray nor torch at import time: the watchdog process runs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ward.core.lifetime import die_with_parent

if TYPE_CHECKING:
    from ward.config import WardConfig
    from ward.store import Store

log = logging.getLogger("ward.serve")

__all__ = ["DASHBOARD_SERVICE_USER", "DASHBOARD_TOKEN_NAME", "DashboardProcess", "Supervisor", "dashboard_command",
           "dashboard_env", "watch"]

REPO_ROOT = Path(__file__).resolve().parents[2]
WATCH_POLL_S = 0.5


DASHBOARD_SERVICE_USER = "svc-dashboard"
DASHBOARD_TOKEN_NAME = "dashboard live view"


class Supervisor:
    """The camera actors and the dashboard of one WardAPI replica.

    ``handles``: the deployment handles ``build_app`` bound (``"Pose"``, ``"VSViG"``, ``"Coordinator"``),
    passed on to every camera actor. :meth:`start` returns quickly (the actors start in the background)."""

    def __init__(self, cfg: "WardConfig", config: Mapping[str, Any], handles: Mapping[str, Any],
                 store: "Store") -> None:
        self.cfg = cfg
        self.config = dict(config)  # what the camera actors load their WardConfig from
        self.handles = dict(handles)
        self.store = store
        self.cameras: list[Any] = []
        self.camera_of: dict[str, Any] = {}
        self.dashboard: DashboardProcess | None = None

    def start(self) -> None:
        self.start_cameras()
        self.start_dashboard()

    def start_cameras(self) -> None:
        import ray  # noqa: PLC0415

        from ward.serve.camera_actor import CameraActor, assign_beds  # noqa: PLC0415

        res = self.cfg.resources.camera_actors
        remote = ray.remote(CameraActor)
        for beds in assign_beds([b.bed_id for b in self.cfg.beds], res.beds_per_actor):
            actor = remote.options(num_cpus=res.num_cpus, resources=dict(res.resources) or None, max_restarts=-1,
                                   scheduling_strategy="SPREAD").remote(self.config, beds, self.handles)
            self.cameras.append(actor)
            for b in beds:
                self.camera_of[b] = actor
        log.info("started %d camera actors for %d beds", len(self.cameras), len(self.cfg.beds))

    def start_dashboard(self) -> None:
        if not self.cfg.dashboard.enabled:
            return
        app_path = REPO_ROOT / "dashboard" / "app.py"
        if not app_path.is_file():
            log.warning("dashboard.enabled but %s does not exist; not starting the dashboard", app_path)
            return
        d = self.cfg.dashboard
        env = {**dashboard_env(self.cfg), "WARD_API_TOKEN": self._dashboard_token()}
        self.dashboard = DashboardProcess(dashboard_command(d.host, d.port, app_path, d.tls_cert, d.tls_key), env=env,
                                          cwd=str(REPO_ROOT))
        self.dashboard.start()

    def _dashboard_token(self) -> str:
        """The dashboard's read-only API token (live view), replacing the one of the previous start.

        It belongs to a service account (viewer role, token login only) that never counts as a
        person's account, so the first-start admin bootstrap is unaffected by it; the earlier
        dashboard tokens are revoked as this one is made, so only one is ever valid.

        It does not expire: the dashboard process gets it once, in its environment, and lives as long
        as this replica (weeks); an expiry would silently end the live view of a long-running ward.
        What bounds it instead: it never leaves this host, it is viewer-only, and every start (and
        ``ward users revoke-token``) revokes it."""
        from ward.store.audit import AuditSource  # noqa: PLC0415

        self.store.ensure_service_user(DASHBOARD_SERVICE_USER, role="viewer")
        return self.store.create_token(DASHBOARD_SERVICE_USER, name=DASHBOARD_TOKEN_NAME, replace=True,
                                       expires_in=None, source=AuditSource.WARD)

    async def last_keypoints(self, bed_id: str) -> list | None:
        """The bed's latest patient keypoints from its camera actor (None: none yet)."""
        actor = self.camera_of.get(bed_id)
        return await actor.last_keypoints.remote(bed_id) if actor is not None else None

    async def camera_nodes(self) -> dict[str, str]:
        """Node id of each bed's camera actor (placement checks)."""
        return {bed: await actor.node_id.remote() for bed, actor in self.camera_of.items()}

    def stop(self) -> None:
        """Stop the dashboard, then ask each camera actor to stop (5 s in all) and kill it without restart."""
        import ray  # noqa: PLC0415

        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        cams, self.cameras = self.cameras, []
        self.camera_of = {}
        refs = []
        for a in cams:
            try:
                refs.append(a.stop.remote())
            except Exception:  # noqa: BLE001
                pass
        try:
            ray.wait(refs, num_returns=len(refs), timeout=5.0)
        except Exception:  # noqa: BLE001
            pass
        for a in cams:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


# ------------------------------------------------------------------------------------- dashboard

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
    return [sys.executable, "-m", "ward.serve.supervisor", "--parent", str(parent_pid), "--", *command]


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

def watch(command: Sequence[str], parent_pid: int, poll_s: float = WATCH_POLL_S, grace_s: float = 8.0) -> int:
    """Run ``command``; end it when ``parent_pid`` stops being our parent or on a stop signal.

    Returns the command's exit status (0 when it was stopped by us)."""
    stop: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    preexec = die_with_parent if sys.platform.startswith("linux") else None
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
    parser = argparse.ArgumentParser(prog="python -m ward.serve.supervisor",
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
