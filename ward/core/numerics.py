"""Process-wide floating-point settings, scoped so they never leak into other code."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU for the duration (also usable as a decorator).

    Fresh or badly scaled weights produce denormals that slow CPU training and inference 10-50x. The
    flag is process-wide CPU state, and other code (hypothesis, numerics tests) relies on IEEE
    subnormals, so it is switched back off afterwards.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
