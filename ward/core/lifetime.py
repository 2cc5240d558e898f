"""Child processes that do not outlive their parent.

Worker pools (``ward dataset generate --jobs``, ``ward eval --jobs``) and the supervisor's children
run for minutes per task; when their parent is killed (SIGTERM, OOM killer, a closed terminal) they
would otherwise go on rendering and scoring, orphaned, holding the CPU. Linux's
``PR_SET_PDEATHSIG`` asks the kernel to signal the child when the thread that created it exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Have ``sig`` sent to this process when its parent exits (Linux; elsewhere nothing happens).

    ``parent_pid``: the parent expected; if it is already gone (the child was re-parented before
    this ran), exit at once instead. Use as a pool ``initializer`` or a ``preexec_fn``."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
