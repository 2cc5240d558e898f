"""Failed-login counting with temporary lockout: what slows password guessing at every login.

:class:`LoginLimiter` counts failed logins in a sliding window, per user name and per source address,
and refuses further attempts for ``lockout_s`` once a key has too many failures. It is pure (an
injectable clock, no I/O) and thread-safe, so each process that checks passwords (an API replica, a
dashboard) keeps one, inside its :class:`~ward.security.login.LoginFlow`. A locked key is refused
*before* the password is checked, so a locked account gives no password oracle. The price is that
someone who knows a user name can lock that user out for ``lockout_s``; the per-source key (with a
higher limit, since a nurses' station shares one address) limits password spraying over many names.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

__all__ = ["LoginDecision", "LoginLimiter"]


@dataclass(frozen=True)
class LoginDecision:
    """Whether a login attempt may proceed; ``retry_after_s`` > 0 when refused (for Retry-After)."""

    allowed: bool
    retry_after_s: float = 0.0
    locked_key: str | None = None  # "user:<name>" or "source:<addr>" that is locked

    def __bool__(self) -> bool:
        return self.allowed


class _KeyState:
    __slots__ = ("failures", "locked_until")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.locked_until = 0.0


class LoginLimiter:
    """Sliding-window failed-login counter with temporary lockout, keyed by user and by source.

    ``max_failures`` failures of one user name within ``window_s`` lock that name for ``lockout_s``;
    ``source_max_failures`` (default ``4 * max_failures``) failures from one source address lock the
    address. A successful login clears the user's failures (not the source's: a valid account must
    not be usable to reset a spraying address). Keys idle for longer than the window and lockout are
    pruned, and at most ``max_keys`` keys are kept (oldest dropped) so a flood of names cannot grow
    memory without bound.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, lockout_s: float = 300.0,
                 source_max_failures: int | None = None, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1 (got {max_failures})")
        if window_s <= 0 or lockout_s <= 0:
            raise ValueError(f"window_s and lockout_s must be > 0 (got {window_s}, {lockout_s})")
        if source_max_failures is not None and source_max_failures < 1:
            raise ValueError(f"source_max_failures must be >= 1 or None (got {source_max_failures})")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1 (got {max_keys})")
        self.max_failures = int(max_failures)
        self.source_max_failures = int(source_max_failures or 4 * max_failures)
        self.window_s = float(window_s)
        self.lockout_s = float(lockout_s)
        self.max_keys = int(max_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _KeyState] = {}

    @staticmethod
    def _keys_for(username: str | None, source: str | None) -> list[str]:
        out = []
        if username:
            out.append("user:" + username.strip().lower()[:128])
        if source:
            out.append("source:" + source[:128])
        return out

    def _limit(self, key: str) -> int:
        return self.max_failures if key.startswith("user:") else self.source_max_failures

    def _prune(self, st: _KeyState, now: float) -> None:
        while st.failures and st.failures[0] <= now - self.window_s:
            st.failures.popleft()

    def check(self, username: str | None, source: str | None = None) -> LoginDecision:
        """May this attempt proceed? Call before verifying the password."""
        now = self._clock()
        with self._lock:
            worst: tuple[float, str] | None = None
            for key in self._keys_for(username, source):
                st = self._keys.get(key)
                if st is not None and st.locked_until > now:
                    left = st.locked_until - now
                    if worst is None or left > worst[0]:
                        worst = (left, key)
            if worst is None:
                return LoginDecision(True)
            return LoginDecision(False, worst[0], worst[1])

    def failure(self, username: str | None, source: str | None = None) -> LoginDecision:
        """Record a failed attempt; returns the decision for the *next* attempt (locked or not)."""
        now = self._clock()
        with self._lock:
            for key in self._keys_for(username, source):
                st = self._keys.get(key)
                if st is None:
                    self._evict(now)
                    st = self._keys[key] = _KeyState()
                self._prune(st, now)
                st.failures.append(now)
                if len(st.failures) >= self._limit(key):
                    st.locked_until = max(st.locked_until, now + self.lockout_s)
                    st.failures.clear()  # a new lockout needs a new run of failures after this one
        return self.check(username, source)

    def success(self, username: str | None, source: str | None = None) -> None:
        """Record a successful login: the user's failures are forgotten (the source's are kept)."""
        with self._lock:
            for key in self._keys_for(username, None):
                self._keys.pop(key, None)

    def failures(self, username: str | None = None, source: str | None = None) -> int:
        """Failures currently counted in the window (the larger of the user's and the source's)."""
        now = self._clock()
        with self._lock:
            counts = [0]
            for key in self._keys_for(username, source):
                st = self._keys.get(key)
                if st is not None:
                    self._prune(st, now)
                    counts.append(len(st.failures))
            return max(counts)

    def __len__(self) -> int:
        return len(self._keys)

    def _evict(self, now: float) -> None:
        """Drop idle keys; if still full, drop the oldest-inserted ones (caller holds the lock)."""
        if len(self._keys) < self.max_keys:
            return
        for key in [k for k, st in self._keys.items()
                    if st.locked_until <= now and (not st.failures or st.failures[-1] <= now - self.window_s)]:
            del self._keys[key]
        while len(self._keys) >= self.max_keys:
            del self._keys[next(iter(self._keys))]


