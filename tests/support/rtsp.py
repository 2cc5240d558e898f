"""The loopback RTSP test camera: GStreamer's RTSP server (``rtsp_server.py``) run with Debian's Python.

Shared by the RTSP reader tests and the fault suite's live camera.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

SERVER = Path(__file__).with_name("rtsp_server.py")
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-gi and the RTSP server typelib are Debian packages


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Stop a test camera, also one frozen with SIGSTOP (it is continued first so it can exit)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
