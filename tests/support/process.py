"""Helpers for tests that start the whole ward as a command: a temp copy of the default Serve config,
the process tree (from /proc) and "nothing left, ports free" checks after it stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from support.serve import free_port, make_weights

ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/support/this file)
# The environment of a ward under test (Ray's token settings come from conftest). RAY_ADDRESS=local:
# a Ray of its own even when a cluster started with `ray start` (another test, another user) runs on
# this machine; `serve run` and `ward run` would join that one otherwise, and their shutdown would
# stop Serve there.
WARD_TEST_ENV = {"RAY_ADDRESS": "local", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def default_config_copy(tmp: Path, *, dashboard: bool = True) -> tuple[Path, dict[str, Any]]:
    """serve_configs/ward.yaml with only what a test must change: a temp database and spill, free API
    and dashboard ports, and tiny untrained weights while the shipped ones are missing. Returns the
    written path (unique per test: usable with `pgrep -f`) and the ward args."""
    raw = yaml.safe_load((ROOT / "serve_configs" / "ward.yaml").read_text())
    app = raw["applications"][0]["args"]
    port = free_port()
    raw["http_options"]["port"] = port
    app["api"]["port"] = port
    app["database"] = {"url": f"sqlite:///{tmp / 'ward.db'}", "spill_dir": str(tmp / "spill")}
    app["dashboard"].update({"enabled": dashboard, "port": free_port()})
    if not all((ROOT / app["models"][m]["path"]).is_file() for m in ("pose", "vsvig")):
        pose_p, vsvig_p = make_weights(tmp / "models")
        app["models"]["pose"]["path"], app["models"]["vsvig"]["path"] = str(pose_p), str(vsvig_p)
    path = tmp / "ward.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, app


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may contain spaces and ')'
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live process below ``root`` (whatever its session or process group): pid -> start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
            starts[int(entry)] = st[1]
    out: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in starts:
            out[pid] = starts[pid]
            todo.extend(children.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def still_alive(procs: dict[int, int]) -> dict[int, str]:
    """The processes of ``procs`` (pid -> start time, so a reused pid does not count) still running."""
    return {pid: cmdline(pid) for pid, start in procs.items() if (st := _stat(pid)) is not None and st[1] == start}


def matching(pattern: str) -> dict[int, str]:
    """Live processes whose command line contains ``pattern`` (like `pgrep -f`), except this one."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and pattern in (cl := cmdline(int(entry))):
            if _stat(int(entry)) is not None:
                out[int(entry)] = cl
    return out


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on the port now (with SO_REUSEADDR, as uvicorn and Tornado do, so
    connections of the stopped server lingering in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def assert_nothing_left(tree: dict[int, int], ports: list[int], patterns: list[str], timeout: float = 60.0) -> None:
    """Every process of ``tree`` ended, none matches ``patterns``, the ports can be bound again (waits up
    to ``timeout`` s: Ray ends its workers shortly after the driver)."""
    deadline = time.monotonic() + timeout
    while True:
        left = still_alive(tree)
        for p in patterns:
            left.update(matching(p))
        busy = [p for p in ports if not port_free(p)]
        if not left and not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left running after the ward stopped: {left}; ports still bound: {busy}")
        time.sleep(1.0)


def kill_leftovers(proc: subprocess.Popen, tree: dict[int, int]) -> None:
    """After a failed test: SIGKILL what the test started (its process group, then the processes of
    ``tree`` still running, matched by start time), never anyone else's processes."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in still_alive(tree):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


NATIVE_TRACE = re.compile(r"\*\*\* SIG[A-Z]+ received at time=")
