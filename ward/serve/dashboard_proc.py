"""Start the Streamlit dashboard next to the ward (config ``dashboard.enabled``) and stop it with it.

The dashboard runs as its own process group (``start_new_session``) so stopping kills Streamlit
and anything it spawned; it talks to the database and to the ward's HTTP API only (no Ray).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger("ward.serve")

__all__ = ["DashboardProcess", "dashboard_command"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def dashboard_command(host: str, port: int, app_path: Path | None = None) -> list[str]:
    """``python -m streamlit run dashboard/app.py`` bound to host:port, headless."""
    app = app_path or REPO_ROOT / "dashboard" / "app.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false"]


class DashboardProcess:
    """A child process group that is terminated (then killed) on :meth:`stop`."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        # Output goes to the ward's own log stream (serve run shows it): the dashboard prints the
        # first-start admin password there, once.
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, start_new_session=True)
        log.info("dashboard started (pid %d): %s", self.proc.pid, " ".join(self.command))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the group, SIGKILL after ``timeout`` s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        log.info("dashboard stopped")
