"""The one login flow: every password or token the ward accepts passes through :class:`LoginFlow`.

The API (HTTP Basic and Bearer, ``ward.serve.auth``) and the dashboard's login form
(``ward.dashboard.auth``) used to write their own; the rules they must share are here, once:

1. a user name or address locked by the :class:`~ward.security.limiter.LoginLimiter` is refused
   *before* any password or token is checked (no password oracle); the first refusal of each
   lockout is audited (``login.refused``), not every one, so a flood of refused attempts cannot
   flood the audit log;
2. one password check (one scrypt, known user or not) or one token look-up;
3. a failure counts towards the lockout and is audited (``login.failed``; an expired or revoked
   token, or a disabled owner's, as ``token.refused``); a success clears the user's failures;
4. a *temporary* password (set by an admin, the first start or ``ward users add``; see
   ``must_change_password``) opens only the dashboard's "choose your password" page: wherever the
   caller says it is not enough (the API, a wall display) the login is refused with a message
   saying what to do, and audited (``login.refused``, reason "temporary password");
5. a success is audited (``login``) unless the caller already did for this credential.

Each caller keeps its own flow (one per process: an API replica, a dashboard) and phrases the
refusals for its users (an HTTP status, a sentence on the login page). The store is reached through
:class:`LoginStore` only, so this module imports no other ward module (``ward.store`` itself hashes
passwords with ``ward.security``). Database errors propagate: the caller decides what an outage means
(the API keeps recently verified credentials for a while; the dashboard shows its banner).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Protocol

from ward.security.limiter import LoginLimiter

__all__ = ["LoginFlow", "LoginResult", "LoginStore", "Refusal"]

log = logging.getLogger("ward.security")

# Audit actions written here (the values of ward.store.audit.AuditAction, which this layer cannot import).
LOGIN, LOGIN_FAILED, LOGIN_REFUSED, TOKEN_REFUSED = "login", "login.failed", "login.refused", "token.refused"
_MAX_AUDITED_LOCKOUTS = 10_000  # remembered lockouts (for "audit the first refusal only"); expired ones dropped

Refusal = Literal["rate limited", "invalid", "temporary password", "token revoked", "token expired"]


class LoginStore(Protocol):
    """What the flow needs of :class:`ward.store.Store`."""

    def password_login(self, username: str, password: str) -> Any: ...  # .user, .credential; None if wrong

    def current_login(self, username: str, credential: str) -> Any: ...  # the user if still that password

    def check_token(self, token: str) -> Any: ...  # .user, .refusal, .token_id, .owner, .expires_at

    def audit(self, action: str, *, user: str | None, detail: Mapping[str, Any], source: str) -> Any: ...


@dataclass(frozen=True)
class LoginResult:
    """One login attempt: ``user`` (and for passwords ``credential``, a fingerprint of the stored hash a
    caller may remember, see Store.current_login) or ``refusal`` with ``message`` saying what to do;
    ``retry_after_s`` > 0 while rate limited."""

    user: Any = None
    credential: str | None = None
    refusal: Refusal | None = None
    message: str = ""
    retry_after_s: int = 0

    def __bool__(self) -> bool:
        return self.refusal is None and self.user is not None


INVALID = LoginResult(refusal="invalid", message="invalid credentials")


class LoginFlow:
    """The login rules for one process (see the module docstring); ``source`` goes into every audit
    row ("api", "dashboard"). Thread-safe."""

    def __init__(self, store: LoginStore, source: str, limiter: LoginLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.source = source
        self.limiter = limiter if limiter is not None else LoginLimiter()
        self._clock = clock
        self._lock = threading.Lock()
        self._refusals_audited: dict[str, float] = {}  # locked limiter key -> end of the audited lockout

    # -- the steps ---------------------------------------------------------------------------------
    def check_limit(self, name: str | None, address: str | None) -> LoginResult | None:
        """The refusal while ``name`` or ``address`` is locked (ask before any check), else None."""
        decision = self.limiter.check(name or None, address)
        if decision:
            return None
        wait = max(1, math.ceil(decision.retry_after_s))
        locked = decision.locked_key or ""
        now = self._clock()
        with self._lock:
            first = self._refusals_audited.get(locked, 0.0) <= now
            if first:
                if len(self._refusals_audited) >= _MAX_AUDITED_LOCKOUTS:
                    self._refusals_audited = {k: t for k, t in self._refusals_audited.items() if t > now}
                self._refusals_audited[locked] = now + decision.retry_after_s
        if first:
            self.audit(LOGIN_REFUSED, name, {"reason": "rate limited", "locked": locked.partition(":")[0],
                                             "address": address, "retry_after_s": wait})
        return LoginResult(refusal="rate limited", retry_after_s=wait,
                           message=f"too many failed logins; try again in {wait} s")

    def login(self, name: str, password: str, address: str | None, *, temporary_ok: bool,
              detail: Mapping[str, Any] | None = None) -> LoginResult:
        """A login form's attempt: :meth:`check_limit`, then :meth:`password`."""
        name = name.strip()
        limited = self.check_limit(name, address)
        if limited is not None:
            return limited
        return self.password(name, password, address, temporary_ok=temporary_ok, detail=detail)

    def password(self, name: str, password: str, address: str | None, *, temporary_ok: bool,
                 remembered: str | None = None, audit_success: bool = True,
                 detail: Mapping[str, Any] | None = None) -> LoginResult:
        """Check ``name``'s ``password`` (no rate-limit check: see :meth:`check_limit`). ``remembered``:
        the credential of an earlier success, re-checked by one cheap read instead of scrypt.
        ``temporary_ok``: whether a temporary password opens this login (only the dashboard, where the
        user can choose their own)."""
        user, credential = None, None
        if name and remembered is not None:
            user, credential = self.store.current_login(name, remembered), remembered
        if user is None and name:
            login = self.store.password_login(name, password)
            if login is not None:
                user, credential = login.user, login.credential
        if user is None:
            return self.failed(name, address, detail)
        self.limiter.success(user.username, address)
        if user.must_change_password and not temporary_ok:
            self.audit(LOGIN_REFUSED, user.username, {"reason": "temporary password", "address": address})
            return LoginResult(user=user, refusal="temporary password",
                               message=f"the password of {user.username!r} is a temporary one: log in to the "
                                       "dashboard and choose your own password first")
        if audit_success:
            self.audit(LOGIN, user.username, {**(detail or {}), "address": address})
        return LoginResult(user=user, credential=credential)

    def token(self, token: str, address: str | None, *, audit_success: bool = True,
              detail: Mapping[str, Any] | None = None) -> LoginResult:
        """Check an API token (no rate-limit check: see :meth:`check_limit`)."""
        check = self.store.check_token(token)
        if check.user is not None:
            self.limiter.success(check.user.username, address)
            if audit_success:
                self.audit(LOGIN, check.user.username, {**(detail or {}), "address": address})
            return LoginResult(user=check.user)
        if check.refusal not in ("revoked", "expired", "user disabled"):
            return self.failed("", address, detail)
        self.audit(TOKEN_REFUSED, check.owner, {"token_id": check.token_id, "reason": check.refusal,
                                                "address": address})
        self.limiter.failure(None, address)
        if check.refusal == "expired" and check.expires_at is not None:
            return LoginResult(refusal="token expired", message=f"token expired at {check.expires_at.isoformat()}: "
                                                                "ask an admin for a new one (`ward users token`)")
        if check.refusal == "revoked":
            return LoginResult(refusal="token revoked",
                               message="token revoked: ask an admin for a new one (`ward users token`)")
        return INVALID

    def failed(self, name: str | None, address: str | None, detail: Mapping[str, Any] | None = None) -> LoginResult:
        """A credential that matched nothing (also one that cannot even be read): it counts towards
        the lockout and is audited."""
        self.limiter.failure(name or None, address)
        self.audit(LOGIN_FAILED, name, {**(detail or {}), "address": address})
        return INVALID

    def audit(self, action: str, user: str | None, detail: Mapping[str, Any]) -> None:
        """Audit an authentication event; never blocks the decision it records (the database may be down)."""
        try:
            self.store.audit(action, user=(user or "")[:64] or None, detail=dict(detail), source=self.source)
        except Exception as exc:  # noqa: BLE001 - the login decision stands without its row
            log.warning("could not write audit row %s for %r: %s", action, user, type(exc).__name__)
