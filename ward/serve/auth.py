"""The API's authentication: an ``Authorization`` header in, a user (or 401/403/429/503) out.

The rules (rate limit, password or token check, temporary passwords, audit) are the one login flow,
:class:`ward.security.LoginFlow`, shared with the dashboard. What is the API's own lives here: reading
the header (HTTP Basic or ``Bearer <token>`` from ``ward users token``), remembering a verified
credential for :data:`AUTH_CACHE_S` so that a password is re-checked by one cheap read instead of
scrypt, accepting those remembered credentials while the database is unreachable (the live view
stays open during an outage; a new credential gets 503), roles, and the HTTP statuses:

- missing or bad credentials: 401 with a challenge (also an expired or revoked token, or a disabled
  user, from the very next request on);
- a temporary password (one that must be changed at the first login): 403 saying to log in to the
  dashboard and choose one's own password;
- a too-low role: 403; too many failed logins: 429 with ``Retry-After``.

Routes ask for a user with ``user: UserRecord = require("clinician")``.
"""

# no `from __future__ import annotations`: FastAPI reads the dependency's annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy.exc
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBearer

from ward.security import LoginFlow, LoginResult
from ward.store.audit import AuditSource

log = logging.getLogger("ward.serve")

__all__ = ["AUTH_CACHE_S", "ApiAuth", "ROLE_RANK", "require", "role_allows"]

ROLE_RANK = {"viewer": 0, "clinician": 1, "admin": 2}
# A verified credential is remembered this long: a password is then re-checked by one cheap read
# (same password hash, account enabled) instead of scrypt, and while the database is unreachable the
# credential still opens the live view. Every request re-reads the database when it can, so a
# revoked token, a disabled user or a changed role or password takes effect on the very next request.
AUTH_CACHE_S = 60.0
AUTH_DB_RETRY_S = 5.0  # after a database error, cached credentials are used without asking it this long
_AUTH_CACHE_MAX = 10_000  # entries; expired ones are dropped beyond this
_DB_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ward", Basic realm="ward"'}

_bearer = HTTPBearer(auto_error=False, description="API token from `ward users token`")
_basic = HTTPBasic(auto_error=False, description="username and password of a ward user")


def role_allows(role: str, needed: str) -> bool:
    """viewer < clinician < admin."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


@dataclass(frozen=True)
class _Credentials:
    """The parts of an Authorization header (``name``: Basic's user name, else empty)."""

    method: str
    name: str = ""
    secret: str = ""


def _parse_authorization(header: str) -> _Credentials:
    scheme, _, value = header.partition(" ")
    method, value = scheme.lower(), value.strip()
    if method == "basic" and value:
        try:
            name, _, pw = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return _Credentials(method)
        return _Credentials(method, name, pw)
    return _Credentials(method, "", value)


@dataclass(frozen=True)
class _Verified:
    """A credential the database accepted at monotonic time ``at`` (``credential``: Basic's password
    fingerprint, see Store.password_login; None for tokens, which are simply re-read)."""

    at: float
    user: Any
    credential: str | None


class ApiAuth:
    """One per API replica: its login flow (source "api"), the remembered credentials, the outage state."""

    def __init__(self, store: Any) -> None:
        self.flow = LoginFlow(store, AuditSource.API)
        self._cache: dict[str, _Verified] = {}  # sha256(Authorization header) -> last database check
        self._db_down_until = 0.0  # monotonic: skip the database for cached credentials until then
        self._logged_in: set[str] = set()  # credentials whose login is audited (once per replica)

    def user(self, request: Request, needed: str) -> Any:
        """The request's user, or 401 / 403 / 429 (503 from the app's handler when the database is
        unreachable for a credential not verified recently)."""
        header = request.headers.get("authorization", "")
        if not header:
            raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>' or HTTP Basic",
                                headers=_CHALLENGE)
        cred = _parse_authorization(header)
        address = request.client.host if request.client else None
        key = hashlib.sha256(header.encode()).hexdigest()
        hit = self._cache.get(key)
        fresh = hit if hit is not None and time.monotonic() - hit.at < AUTH_CACHE_S else None
        if fresh is None and (limited := self.flow.check_limit(cred.name, address)) is not None:
            raise HTTPException(429, limited.message, headers={"Retry-After": str(limited.retry_after_s)})
        result = self._login(cred, key, fresh, address)
        if result.refusal == "temporary password":
            raise HTTPException(403, result.message)
        if not result:
            raise HTTPException(401, result.message, headers=_CHALLENGE)
        if not role_allows(result.user.role, needed):
            raise HTTPException(403, f"user {result.user.username!r} has role {result.user.role!r}; "
                                     f"this needs {needed!r} or higher")
        return result.user

    def _login(self, cred: _Credentials, key: str, fresh: _Verified | None, address: str | None) -> LoginResult:
        """The login flow's answer. While the database is unreachable a credential verified within
        AUTH_CACHE_S still stands (``fresh``); a new one gets the 503."""
        now = time.monotonic()
        if fresh is not None and now < self._db_down_until:
            return LoginResult(user=fresh.user, credential=fresh.credential)
        try:
            result = self._verify(cred, fresh, address, audit_success=key not in self._logged_in)
        except _DB_ERRORS:
            self._db_down_until = time.monotonic() + AUTH_DB_RETRY_S
            if fresh is None:
                raise  # -> 503: nothing to vouch for this credential
            log.warning("database unreachable: accepting %r's credential verified %.0f s ago",
                        fresh.user.username, now - fresh.at)
            return LoginResult(user=fresh.user, credential=fresh.credential)
        if not result:
            self._cache.pop(key, None)
            self._logged_in.discard(key)
            return result
        if len(self._cache) >= _AUTH_CACHE_MAX:
            self._cache = {k: v for k, v in self._cache.items() if now - v.at < AUTH_CACHE_S}
        self._cache[key] = _Verified(time.monotonic(), result.user, result.credential)
        self._logged_in.add(key)  # one audit row per credential and replica, not per request
        return result

    def _verify(self, cred: _Credentials, fresh: _Verified | None, address: str | None, *,
                audit_success: bool) -> LoginResult:
        detail = {"method": cred.method[:16]}
        if cred.method == "bearer" and cred.secret:
            return self.flow.token(cred.secret, address, audit_success=audit_success, detail=detail)
        if cred.method == "basic" and cred.name:
            return self.flow.password(cred.name, cred.secret, address, temporary_ok=False, audit_success=audit_success,
                                      remembered=fresh.credential if fresh is not None else None, detail=detail)
        return self.flow.failed(cred.name, address, detail)


def current_api() -> Any:
    """The WardAPI replica serving this request (tests override this dependency)."""
    from ray import serve  # noqa: PLC0415

    return serve.get_replica_context().servable_object


def require(needed: str) -> Any:
    """A route parameter's default: the authenticated user with at least role ``needed`` (viewer <
    clinician < admin). The Bearer and Basic schemes are declared so that /docs offers both."""

    def authenticated(request: Request, api: Any = Depends(current_api), _bearer_doc: Any = Depends(_bearer),
                      _basic_doc: Any = Depends(_basic)) -> Any:
        return api.auth.user(request, needed)

    authenticated.__name__ = f"require_{needed}"
    return Depends(authenticated)
