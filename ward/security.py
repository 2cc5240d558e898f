"""Login rate limiting, log redaction and password hashing: the ward's small security mechanisms.

:class:`LoginLimiter` slows password guessing. It counts failed logins in a sliding window, per user
name and per source address, and refuses further attempts for ``lockout_s`` once a key has too many
failures. It is pure (an injectable clock, no I/O) and thread-safe, so the FastAPI ingress and the
Streamlit dashboard can each keep one per process. A locked key is refused *before* the password
is checked, so a locked account gives no password oracle. The price is that someone who knows a user
name can lock that user out for ``lockout_s``; the per-source key (with a higher limit, since a
nurses' station shares one address) limits password spraying over many names.

:func:`redact` scrubs secrets from text: passwords (``password=...``, ``"password": "..."``),
bearer and basic ``Authorization`` values, ward API tokens (``wt_...``) and URL credentials
(``postgresql://user:secret@host``, ``rtsp://...?token=``; via :func:`ward.camera.sources.redact_uris`).
:class:`RedactingFilter` applies it to log records (also their exception text) and replaces array /
bytes arguments by a short summary so frames never reach a log.
:func:`install_log_redaction` makes every record created in the process pass through it (a record
factory, because logger filters do not see records propagated from child loggers) and also attaches
the filter to the handlers that exist.

:class:`PasswordHasher` hashes passwords with scrypt at OWASP's parameters (N=2^17, r=8, p=1), keeps
each hash's parameters with it (older hashes verify and are flagged for re-hashing), and costs exactly
one scrypt computation per check whether or not the account exists. :func:`check_password_policy` is
the rule for new passwords.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["LoginLimiter", "LoginDecision", "OWASP_SCRYPT", "PasswordCheck", "PasswordHasher", "PasswordPolicyError",
           "RedactingFilter", "ScryptParams", "check_password_policy", "install_log_redaction", "password_hasher",
           "redact", "use_test_password_params"]

MASK = "***"


# ----------------------------------------------------------------------------------------- limiter

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


# --------------------------------------------------------------------------------------- redaction

_SECRET_NAMES = r"(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|token)"
def _basic_repl(m: re.Match[str]) -> str:
    """``Basic <b64>`` is masked when the value decodes to ``user:password`` (not "basic realm")."""
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    try:
        decoded = base64.b64decode(m[3] + "=" * (-len(m[3]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return m[0]
    return f"{m[1]}{m[2]}{MASK}" if b":" in decoded else m[0]


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # Authorization: Bearer xyz (header lines, curl -H, reprs of header dicts)
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m[1]}{m[2]}{MASK}"),
    # Authorization: Basic dXNlcjpwYXNz
    (re.compile(r"(?i)\b(basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})"), _basic_repl),
    # ward API tokens anywhere
    (re.compile(r"\bwt_[A-Za-z0-9_-]{8,}"), "wt_" + MASK),
    # "password": "x"  /  'password': 'x'  (JSON, Python reprs)
    (re.compile(r"(?i)([\"']\w*" + _SECRET_NAMES + r"[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2"),
     lambda m: f"{m[1]}{m[2]}{MASK}{m[2]}"),
    # password=x, password: x, PGPASSWORD=x (stops at whitespace, quote, &, comma, semicolon)
    (re.compile(r"(?i)(\b\w*" + _SECRET_NAMES + r"\b\s*[=:]\s*)(?![\"'{\[])([^\s&,;\"']+)"),
     lambda m: f"{m[1]}{MASK}"),
    # --password x / -password x on command lines
    (re.compile(r"(?i)(--?\w*" + _SECRET_NAMES + r"\s+)([^\s\"']+)"), lambda m: f"{m[1]}{MASK}"),
]


def redact(text: str) -> str:
    """``text`` with passwords, tokens, Authorization values and URL credentials replaced by ``***``.

    URIs (``scheme://user:pass@host``, ``?token=``) go through the camera-source module's
    :func:`~ward.camera.sources.redact_uris`, the same function that redacts camera sources in status
    reasons, events and the stored config, so the log net and the source redaction cannot diverge."""
    if not text:
        return text
    from ward.camera.sources import redact_uris  # noqa: PLC0415 (ward.serve imports this module)

    text = redact_uris(text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    return text


_MAX_ARG_CHARS = 2000


def _safe_arg(a: Any) -> Any:
    """Frames and blobs never reach a log: arrays, tensors and long bytes become a summary."""
    shape = getattr(a, "shape", None)
    if shape is not None and hasattr(a, "dtype") and not isinstance(a, (int, float)):
        try:
            if int(getattr(a, "size", 0) if not callable(getattr(a, "numel", None)) else a.numel()) > 16:
                return f"<{type(a).__name__} shape={tuple(shape)} dtype={a.dtype}>"
        except Exception:  # noqa: BLE001
            return f"<{type(a).__name__}>"
    if isinstance(a, (bytes, bytearray, memoryview)) and len(a) > 64:
        return f"<{len(a)} bytes>"
    return a


def _clean_record(record: logging.LogRecord) -> None:
    if getattr(record, "_ward_redacted", False):
        return
    args = record.args
    if isinstance(args, tuple):
        args = tuple(_safe_arg(a) for a in args)
    elif isinstance(args, dict):
        args = {k: _safe_arg(v) for k, v in args.items()}
    try:
        msg = str(_safe_arg(record.msg)) % args if args else str(_safe_arg(record.msg))
    except Exception:  # noqa: BLE001 - a broken format string: keep what we can, redacted
        msg = f"{record.msg} {args!r}"
    if len(msg) > 20 * _MAX_ARG_CHARS:
        msg = msg[:20 * _MAX_ARG_CHARS] + f"... [{len(msg)} chars, truncated]"
    record.msg, record.args = redact(msg), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._ward_redacted = True  # type: ignore[attr-defined]


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record in place (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            _clean_record(record)
        except Exception:  # noqa: BLE001 - logging must never raise
            record.msg, record.args = "<log record dropped by redaction: formatting failed>", ()
        return True


_installed_lock = threading.Lock()
_installed_factory: Callable[..., logging.LogRecord] | None = None
_FILTER = RedactingFilter()


def install_log_redaction(loggers: Iterable[str] = ("", "ward", "ray", "ray.serve", "uvicorn", "uvicorn.access",
                                                    "uvicorn.error", "sqlalchemy", "streamlit")) -> None:
    """Redact every log record created in this process from now on (idempotent).

    Installs a record factory (covers records from any logger, including ones created later) and
    attaches :class:`RedactingFilter` to the existing handlers of ``loggers`` (covers records made
    by a foreign factory)."""
    global _installed_factory
    with _installed_lock:
        if _installed_factory is None:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _FILTER.filter(record)
                return record

            factory._ward_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(factory)
            _installed_factory = factory
        for name in loggers:
            for h in logging.getLogger(name).handlers:
                if _FILTER not in h.filters:
                    h.addFilter(_FILTER)


# ----------------------------------------------------------------------------------------- passwords
#
# One home for passwords: how they are hashed, checked and upgraded, and the policy for new ones.
# Stored form: ``scrypt$<N>$<r>$<p>$<salt b64>$<key b64>``: each hash carries its own parameters, so
# hashes made with older parameters still verify and are re-hashed at the next successful login.

class PasswordPolicyError(ValueError):
    """A new password does not meet the policy (the message says which rule and what to do)."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost parameters: N (CPU/memory cost, a power of two), r (block size), p (parallelism)."""

    n: int
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or not 1 <= self.r <= 64 or not 1 <= self.p <= 16:
            raise ValueError(f"bad scrypt parameters N={self.n} r={self.r} p={self.p}: N must be a power of "
                             "two >= 2, r 1-64, p 1-16")

    @property
    def memory_bytes(self) -> int:
        """Memory one hash needs (128 * r * N bytes; 128 MiB at N=2^17, r=8)."""
        return 128 * self.r * self.n * self.p

    def weaker_than(self, other: "ScryptParams") -> bool:
        """Whether a hash with these parameters costs an attacker less than one with ``other``."""
        return self.n * self.r * self.p < other.n * other.r * other.p


# OWASP Password Storage Cheat Sheet: "scrypt with a minimum CPU/memory cost parameter of (2^17), a
# minimum block size of 8 (1024 bytes), and a parallelization parameter of 1".
OWASP_SCRYPT = ScryptParams(2**17, 8, 1)
LEGACY_SCRYPT = ScryptParams(2**14, 8, 1)  # what ward stored before; still verifies, upgraded on login
TEST_SCRYPT = ScryptParams(2**10, 8, 1)    # tests only (use_test_password_params); never a default
MIN_PASSWORD_CHARS = 12        # a password a person chooses for themselves
MIN_TEMPORARY_PASSWORD_CHARS = 8  # a temporary one set for them: must be replaced at first login
MAX_PASSWORD_CHARS = 1024      # scrypt reads the whole password: bound the work a request can ask for
_SALT_BYTES, _KEY_BYTES = 16, 32


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """Result of :meth:`PasswordHasher.verify`: ``ok``, and whether the stored hash should be replaced
    (it was made with weaker parameters than the hasher's)."""

    ok: bool
    needs_rehash: bool = False

    def __bool__(self) -> bool:
        return self.ok


def _scrypt(password: str, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
    """The one place a password is hashed (tests count calls to it: one per login attempt)."""
    import hashlib  # noqa: PLC0415

    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=params.n, r=params.r,
                          p=params.p, dklen=dklen, maxmem=params.memory_bytes + (16 << 20))


class PasswordHasher:
    """scrypt hashing with fixed parameters, at most ``max_concurrent`` hashes at a time.

    Each hash at N=2^17 holds 128 MiB for its duration; the semaphore bounds a process (an API
    replica answering many HTTP Basic requests at once, a dashboard) to ``max_concurrent`` of them,
    so a burst of logins queues instead of exhausting memory."""

    def __init__(self, params: ScryptParams = OWASP_SCRYPT, max_concurrent: int = 2) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1 (got {max_concurrent})")
        self.params = params
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def hash(self, password: str) -> str:
        """The stored form of ``password`` with a fresh random salt and this hasher's parameters."""
        import base64  # noqa: PLC0415
        import secrets  # noqa: PLC0415

        salt = secrets.token_bytes(_SALT_BYTES)
        key = self._derive(password, salt, self.params, _KEY_BYTES)
        b64 = base64.b64encode
        p = self.params
        return f"scrypt${p.n}${p.r}${p.p}${b64(salt).decode()}${b64(key).decode()}"

    def verify(self, password: str, stored: str | None) -> PasswordCheck:
        """Check ``password`` against ``stored``: exactly one scrypt computation, with the stored
        hash's parameters; a missing or unreadable hash costs one with this hasher's parameters
        (and fails), so the time taken says nothing about whether the account exists."""
        import hmac  # noqa: PLC0415

        parsed = _parse_hash(stored) if stored else None
        if parsed is None:
            self.dummy_verify(password)
            return PasswordCheck(False)
        params, salt, want = parsed
        got = self._derive(password, salt, params, len(want))
        ok = hmac.compare_digest(got, want)
        return PasswordCheck(ok, ok and params.weaker_than(self.params))

    def dummy_verify(self, password: str) -> None:
        """The work of one :meth:`verify` with this hasher's parameters, for an unknown user."""
        import secrets  # noqa: PLC0415

        self._derive(password, secrets.token_bytes(_SALT_BYTES), self.params, _KEY_BYTES)

    def _derive(self, password: str, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
        # An over-long input (no stored password exceeds MAX_PASSWORD_CHARS, so its prefix of one more
        # character cannot match either) is cut, so a request cannot make the key derivation read megabytes.
        with self._slots:
            return _scrypt(password[:MAX_PASSWORD_CHARS + 1], salt, params, dklen)


def _parse_hash(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    """(parameters, salt, key) of a stored hash, or None if it is not a readable scrypt hash."""
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        params = ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if params.memory_bytes > 4 * OWASP_SCRYPT.memory_bytes or not salt or not 16 <= len(key) <= 64:
        return None  # a tampered row must not make the process allocate gigabytes
    return params, salt, key


_hasher_lock = threading.Lock()
_default_hasher: PasswordHasher | None = None


def password_hasher() -> PasswordHasher:
    """The process's hasher: OWASP's scrypt parameters (tests may switch to cheap ones explicitly)."""
    global _default_hasher
    with _hasher_lock:
        if _default_hasher is None:
            _default_hasher = PasswordHasher(OWASP_SCRYPT)
        return _default_hasher


def use_test_password_params(params: ScryptParams = TEST_SCRYPT) -> None:
    """Tests only: make this process hash with ``params`` (cheap), so hundreds of test accounts do not
    cost 128 MiB and a few hundred milliseconds each. Refused outside pytest; nothing in the ward
    calls it, and processes the tests start (``serve run``, ``streamlit run``) keep OWASP's parameters."""
    global _default_hasher
    import sys  # noqa: PLC0415

    if "pytest" not in sys.modules:
        raise RuntimeError("use_test_password_params is for the test suite only: the ward hashes passwords "
                           "with OWASP's scrypt parameters")
    with _hasher_lock:
        _default_hasher = PasswordHasher(params)


def check_password_policy(username: str, password: str, *, temporary: bool = False) -> None:
    """Raise PasswordPolicyError unless ``password`` may become ``username``'s password.

    Never the user name (ignoring case and surrounding spaces), never only spaces. A password a person
    chooses: at least 12 characters. A temporary one (set by an admin, the CLI or the first start, and
    replaced at the first login): at least 8."""
    least = MIN_TEMPORARY_PASSWORD_CHARS if temporary else MIN_PASSWORD_CHARS
    if len(password) < least:
        raise PasswordPolicyError(f"password too short ({len(password)} characters): use at least {least}")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"password too long: use at most {MAX_PASSWORD_CHARS} characters")
    if not password.strip():
        raise PasswordPolicyError("password is only spaces: choose one with other characters")
    if password.strip().casefold() == username.strip().casefold():
        raise PasswordPolicyError("password equals the user name: choose a password that is not your user name")
