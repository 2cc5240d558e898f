"""Worker processes end with their parent (ward/core/lifetime.py): a killed `ward dataset generate
--jobs` or `ward eval --jobs` leaves no orphan rendering or scoring on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")

ROOT = Path(__file__).resolve().parents[1]

PARENT = textwrap.dedent("""
    import multiprocessing as mp, os, sys, time
    from ward.core.lifetime import die_with_parent

    def task(_):
        os.write(1, f"{os.getpid()}\\n".encode())  # one write: lines of the two workers never interleave
        time.sleep(600)

    if __name__ == "__main__":
        init = die_with_parent if sys.argv[1] == "on" else None
        with mp.get_context("spawn").Pool(2, initializer=init, initargs=(os.getpid(),) if init else ()) as pool:
            pool.map(task, [0, 1], chunksize=1)
""")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _workers_after_parent_killed(tmp_path: Path, mode: str, wait_s: float) -> tuple[list[int], list[int]]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, env=env)
    workers = []
    try:
        for _ in range(2):
            workers.append(int(proc.stdout.readline()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        return workers, [w for w in workers if _alive(w)]
    finally:
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()


def test_pool_workers_end_when_the_parent_is_killed(tmp_path: Path) -> None:
    workers, alive = _workers_after_parent_killed(tmp_path, "on", wait_s=30)
    assert len(workers) == 2 and alive == [], f"workers {alive} outlived their killed parent"


def test_without_it_pool_workers_are_orphaned(tmp_path: Path) -> None:
    """The control: what the initializer prevents does happen without it."""
    workers, alive = _workers_after_parent_killed(tmp_path, "off", wait_s=2)
    assert sorted(alive) == sorted(workers)


def test_exits_at_once_when_the_parent_is_already_gone() -> None:
    code = "from ward.core.lifetime import die_with_parent; die_with_parent(parent_pid=1); print('still here')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1 and "still here" not in out.stdout
