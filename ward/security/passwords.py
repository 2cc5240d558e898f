"""Passwords: how they are hashed, checked and upgraded, and the policy for new ones (one home).

:class:`PasswordHasher` hashes passwords with scrypt at OWASP's parameters (N=2^17, r=8, p=1), keeps
each hash's parameters with it (older hashes verify and are flagged for re-hashing), and costs exactly
one scrypt computation per check whether or not the account exists. :func:`check_password_policy` is
the rule for new passwords.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["LEGACY_SCRYPT", "MAX_PASSWORD_CHARS", "MIN_PASSWORD_CHARS", "MIN_TEMPORARY_PASSWORD_CHARS",
           "OWASP_SCRYPT", "PasswordCheck", "PasswordHasher", "PasswordPolicyError", "ScryptParams", "TEST_SCRYPT",
           "check_password_policy", "password_hasher", "use_test_password_params"]

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
