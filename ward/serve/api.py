"""``WardAPI``: the HTTP ingress (FastAPI) and the supervisor of the camera actors.

Endpoints (JSON; OpenAPI at /docs):

- ``GET /api/health`` (open): is the ward up, beds per state.
- ``GET /api/beds``: live state per bed (``bed_id, state, reason, since, probability, updated_at,
  accumulator, alarm_active, ...``) and the rule it runs (``rule``: every RuleConfig field;
  ``rule_source``: default / ward / bed / override; ``rule_sources`` per field; ``rule_override``: the
  dashboard override in effect, with who set it and when; ``rule_error``: why a stored override is not
  applied).
- ``GET /api/beds/{bed_id}/probabilities?since=&until=&resolution=&limit=``: stored history, one page
  (at most ``limit`` points, default 3600, max 10000; ``next_since`` and a ``Link`` header lead on).
- ``GET /api/beds/{bed_id}/poses``: the bed's latest patient keypoints (kept in memory only).
- ``GET /api/alarms?bed_id=&since=&until=&tier=&limit=&cursor=`` (newest first; ``X-Next-Cursor`` and
  ``Link`` headers lead to the next page); ``POST /api/alarms/{alarm_id}/ack``
  with ``{"verdict": "true"|"false"|"unsure", "note": ...}``.
- ``GET /metrics``: Prometheus text (frames in/dropped per bed, batch sizes, queue depth,
  end-to-end latency histogram).

Authentication against the store's users: ``Authorization: Bearer <token>`` (``ward users token``)
or HTTP Basic. Viewers read, clinicians also acknowledge, admins may do everything. Missing or bad
credentials give 401 (also an expired or revoked token, or a disabled user, from the very next
request on), a too-low role 403, too many failed logins 429.

In ``__init__`` the replica starts one camera actor per ``beds_per_actor`` beds (spread over the
cluster's nodes) and, when configured, the Streamlit dashboard; it returns quickly, and its health
check never waits for the cameras.
"""

# no `from __future__ import annotations`: FastAPI must see real annotations (Request, bodies)

import base64
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
import sqlalchemy.exc

from ward.config import load_ward_config
from ward.security import LoginLimiter, install_log_redaction
from ward.serve.metrics import render_metrics
from ward.store.audit import AuditAction, AuditSource

log = logging.getLogger("ward.serve")

__all__ = ["AckBody", "WardAPI", "fastapi_app", "role_allows"]

ROLE_RANK = {"viewer": 0, "clinician": 1, "admin": 2}
# A verified credential is remembered this long: a password is then re-checked by one cheap read
# (same password hash, account enabled) instead of scrypt, and while the database is unreachable the
# credential still opens the live view. Every request re-reads the database when it can, so a
# revoked token, a disabled user or a changed role or password takes effect on the very next request.
AUTH_CACHE_S = 60.0
AUTH_DB_RETRY_S = 5.0  # after a database error, cached credentials are used without asking it this long
_AUTH_CACHE_MAX = 10_000  # entries; expired ones are dropped beyond this
_DB_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)

fastapi_app = FastAPI(title="ward", version="0.1.0",
                      description="Real-time video seizure monitoring: beds, probabilities, alarms, metrics.")
MAX_BODY_BYTES = 64 * 1024  # the largest legitimate body (an ack with a 2000-character note) is < 10 KB


@fastapi_app.middleware("http")
async def _limit_body_size(request: Request, call_next: Any) -> Any:
    """413 for bodies over MAX_BODY_BYTES (judged by Content-Length, before reading), 411 for chunked ones."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        length = request.headers.get("content-length")
        if length is None:
            if "chunked" in request.headers.get("transfer-encoding", "").lower():
                return JSONResponse({"detail": "send a Content-Length header; chunked bodies are not accepted"}, 411)
        elif not length.strip().isdigit() or int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body too large: the limit is {MAX_BODY_BYTES} bytes"}, 413)
    return await call_next(request)


@fastapi_app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field, without echoing the input (it may be huge, secret, or NaN, which
    FastAPI's default handler cannot encode and turns into a 500)."""
    return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                                     "type": str(e.get("type", ""))} for e in exc.errors()]}, status_code=422)


@fastapi_app.exception_handler(sqlalchemy.exc.OperationalError)
@fastapi_app.exception_handler(sqlalchemy.exc.InterfaceError)
async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After while the database is down: the caller learns that nothing was recorded (an
    acknowledgement must be retried), instead of a bare 500. Samples and alarms keep flowing into the
    coordinator's spill meanwhile."""
    log.error("database unreachable while serving %s %s: %s", request.method, request.url.path,
              type(exc).__name__)
    return JSONResponse({"detail": "database unreachable: nothing was recorded; retry in a few seconds"},
                        status_code=503, headers={"Retry-After": "5"})


_bearer = HTTPBearer(auto_error=False, description="API token from `ward users token`")
_basic = HTTPBasic(auto_error=False, description="username and password of a ward user")
_DOC_AUTH = [Depends(_bearer), Depends(_basic)]  # shown in /docs; checked by WardAPI._auth


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


def role_allows(role: str, needed: str) -> bool:
    """viewer < clinician < admin."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["true", "false", "unsure"]
    note: str | None = Field(None, max_length=2000)


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


HISTORY_PAGE_DEFAULT = 3600  # one hour of 1 s points
HISTORY_PAGE_MAX = 10_000  # a page a viewer may ask for: bounded in SQL, whatever since/until say


def _next_link(request: Request, **params: str) -> str:
    """RFC 8288 ``Link`` header value for the next page: this request's URL with ``params`` replaced."""
    return f'<{request.url.include_query_params(**params)}>; rel="next"'


def _alarm_cursor(alarm: Any) -> str:
    """Keyset cursor of an alarm in the newest-first order: its start and id."""
    start = alarm.start.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")  # no '+' to mangle in a URL
    return f"{start}~{alarm.id}"


def _parse_alarm_cursor(cursor: str) -> tuple[datetime, int]:
    start, sep, alarm_id = cursor.rpartition("~")
    try:
        if not sep:
            raise ValueError(cursor)
        at = datetime.fromisoformat(start)
        if at.tzinfo is None:
            raise ValueError(cursor)
        return at, int(alarm_id)
    except ValueError:
        raise HTTPException(422, "bad cursor: pass the X-Next-Cursor header of the previous page unchanged") from None


DASHBOARD_SERVICE_USER = "svc-dashboard"
DASHBOARD_TOKEN_NAME = "dashboard live view"


@serve.deployment(name="WardAPI", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(fastapi_app)
class WardAPI:
    def __init__(self, config: Mapping[str, Any], coordinator: Any, pose: Any, vsvig: Any) -> None:
        from ward.store import Store  # noqa: PLC0415

        self.cfg = load_ward_config(config, validate_paths=False)
        self.config = dict(config)
        self.coordinator = coordinator
        self.pose, self.vsvig = pose, vsvig
        self.store = Store(self.cfg.database.url)
        self.started = time.time()
        self._auth_cache: dict[str, _Verified] = {}  # sha256(Authorization header) -> last database check
        self._db_down_until = 0.0  # monotonic: skip the database for cached credentials until then
        self._limiter = LoginLimiter()  # failed logins per user name and per client address (ward.security)
        self._logged_in: set[str] = set()
        self._refusals_audited: dict[str, float] = {}  # locked limiter key -> end of the audited lockout
        install_log_redaction()
        self.cameras: list[Any] = []
        self.camera_of: dict[str, Any] = {}
        self.dashboard: Any = None
        try:
            self.app_name = serve.get_replica_context().app_name
        except Exception:  # noqa: BLE001
            self.app_name = "ward"
        self._start_cameras()
        self._start_dashboard()

    # -- supervisor ------------------------------------------------------------------------------
    def _start_cameras(self) -> None:
        import ray  # noqa: PLC0415

        from ward.serve.camera_actor import CameraActor, assign_beds  # noqa: PLC0415

        res = self.cfg.resources.camera_actors
        remote = ray.remote(CameraActor)
        groups = assign_beds([b.bed_id for b in self.cfg.beds], res.beds_per_actor)
        for beds in groups:
            actor = remote.options(num_cpus=res.num_cpus, resources=dict(res.resources) or None, max_restarts=-1,
                                   scheduling_strategy="SPREAD").remote(self.config, beds, self.app_name)
            self.cameras.append(actor)
            for b in beds:
                self.camera_of[b] = actor
        log.info("started %d camera actors for %d beds", len(self.cameras), len(self.cfg.beds))

    def _start_dashboard(self) -> None:
        if not self.cfg.dashboard.enabled:
            return
        from ward.serve.dashboard_proc import REPO_ROOT, DashboardProcess, dashboard_command, dashboard_env  # noqa: PLC0415

        app_path = REPO_ROOT / "dashboard" / "app.py"
        if not app_path.is_file():
            log.warning("dashboard.enabled but %s does not exist; not starting the dashboard", app_path)
            return
        d = self.cfg.dashboard
        env = {**dashboard_env(self.cfg), "WARD_API_TOKEN": self._dashboard_token()}
        self.dashboard = DashboardProcess(dashboard_command(d.host, d.port, app_path, d.tls_cert, d.tls_key), env=env,
                                          cwd=str(REPO_ROOT))
        self.dashboard.start()

    def _dashboard_token(self) -> str:
        """The dashboard's read-only API token (live view), replacing the one of the previous start.

        It belongs to a service account (viewer role, token login only) that never counts as a
        person's account, so the first-start admin bootstrap is unaffected by it; the earlier
        dashboard tokens are revoked as this one is made, so only one is ever valid.

        It does not expire: the dashboard process gets it once, in its environment, and lives as long
        as this replica (weeks); an expiry would silently end the live view of a long-running ward.
        What bounds it instead: it never leaves this host, it is viewer-only, and every start (and
        ``ward users revoke-token``) revokes it."""
        self.store.ensure_service_user(DASHBOARD_SERVICE_USER, role="viewer")
        return self.store.create_token(DASHBOARD_SERVICE_USER, name=DASHBOARD_TOKEN_NAME, replace=True,
                                       expires_in=None, source=AuditSource.WARD)

    def check_health(self) -> None:
        """Cheap on purpose: camera actors are supervised by Ray (max_restarts), not by this check."""
        return None

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:  # noqa: BLE001 - at interpreter exit imports fail; Ray reaps the actors anyway
            pass

    def shutdown(self) -> None:
        import ray  # noqa: PLC0415

        if getattr(self, "dashboard", None) is not None:
            self.dashboard.stop()
            self.dashboard = None
        cams, self.cameras = getattr(self, "cameras", []), []
        refs = []
        for a in cams:
            try:
                refs.append(a.stop.remote())
            except Exception:  # noqa: BLE001
                pass
        try:
            ray.wait(refs, num_returns=len(refs), timeout=5.0)
        except Exception:  # noqa: BLE001
            pass
        for a in cams:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass

    async def camera_nodes(self) -> dict[str, str]:
        """Node id of each bed's camera actor (placement checks; not an HTTP route)."""
        out = {}
        for bed, actor in self.camera_of.items():
            out[bed] = await actor.node_id.remote()
        return out

    # -- auth ------------------------------------------------------------------------------------
    def _auth(self, request: Request, needed: str) -> Any:
        """The request's user, or 401 / 403 / 429. Every request is checked against the database when
        it answers (see AUTH_CACHE_S); the login limiter is asked before any password or token check."""
        header = request.headers.get("authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="ward", Basic realm="ward"'}
        if not header:
            raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>' or HTTP Basic",
                                headers=challenge)
        cred = _parse_authorization(header)
        source = request.client.host if request.client else None
        key = hashlib.sha256(header.encode()).hexdigest()
        hit = self._auth_cache.get(key)
        fresh = hit if hit is not None and time.monotonic() - hit.at < AUTH_CACHE_S else None
        if fresh is None:
            self._check_rate_limit(cred.name, source)
        user, why = self._check_credentials(cred, key, fresh, source)
        if user is None:
            raise HTTPException(401, why, headers=challenge)
        if not role_allows(user.role, needed):
            raise HTTPException(403, f"user {user.username!r} has role {user.role!r}; this needs {needed!r} or higher")
        return user

    def _check_rate_limit(self, name: str, source: str | None) -> None:
        """429 while the user name or the address is locked by the login limiter; the first refusal
        of each lockout is audited (``login.refused``), not every one, so a flood of refused requests
        cannot flood the database."""
        decision = self._limiter.check(name or None, source)
        if decision:
            return
        wait = max(1, math.ceil(decision.retry_after_s))
        now = time.monotonic()
        locked = decision.locked_key or ""
        if self._refusals_audited.get(locked, 0.0) <= now:
            if len(self._refusals_audited) >= _AUTH_CACHE_MAX:
                self._refusals_audited = {k: t for k, t in self._refusals_audited.items() if t > now}
            self._refusals_audited[locked] = now + decision.retry_after_s
            self._audit(AuditAction.LOGIN_REFUSED, name[:64] or None,
                        {"reason": "rate limited", "locked": locked.partition(":")[0], "address": source,
                         "retry_after_s": wait})
        raise HTTPException(429, f"too many failed logins; try again in {wait} s", headers={"Retry-After": str(wait)})

    def _check_credentials(self, cred: _Credentials, key: str, fresh: _Verified | None,
                           source: str | None) -> tuple[Any, str]:
        """(user, "") or (None, why) for the 401. While the database is unreachable a credential
        verified within AUTH_CACHE_S still stands (``fresh``); a new one gets the 503."""
        now = time.monotonic()
        if fresh is not None and now < self._db_down_until:
            return fresh.user, ""
        try:
            user, credential, why = self._verify(cred, fresh, source)
        except _DB_ERRORS:
            self._db_down_until = time.monotonic() + AUTH_DB_RETRY_S
            if fresh is None:
                raise  # -> 503: nothing to vouch for this credential
            log.warning("database unreachable: accepting %r's credential verified %.0f s ago",
                        fresh.user.username, now - fresh.at)
            return fresh.user, ""
        if user is None:
            self._auth_cache.pop(key, None)
            self._logged_in.discard(key)
            self._limiter.failure(cred.name or None, source)
            return None, why
        self._limiter.success(user.username, source)
        if len(self._auth_cache) >= _AUTH_CACHE_MAX:
            self._auth_cache = {k: v for k, v in self._auth_cache.items() if now - v.at < AUTH_CACHE_S}
        self._auth_cache[key] = _Verified(time.monotonic(), user, credential)
        if key not in self._logged_in:  # one audit row per credential and replica, not per request
            self._logged_in.add(key)
            self._audit(AuditAction.LOGIN, user.username, {"method": cred.method, "address": source})
        return user, ""

    def _verify(self, cred: _Credentials, fresh: _Verified | None,
                source: str | None) -> tuple[Any, str | None, str]:
        """Ask the database: (user, password fingerprint, "") or (None, None, why); audits refusals."""
        if cred.method == "bearer" and cred.secret:
            check = self.store.check_token(cred.secret)
            if check.user is not None:
                return check.user, None, ""
            if check.refusal in ("revoked", "expired", "user disabled"):
                self._audit(AuditAction.TOKEN_REFUSED, check.owner,
                            {"token_id": check.token_id, "reason": check.refusal, "address": source})
                if check.refusal == "expired" and check.expires_at is not None:
                    return None, None, (f"token expired at {check.expires_at.isoformat()}: ask an admin for a new "
                                        "one (`ward users token`)")
                if check.refusal == "revoked":
                    return None, None, "token revoked: ask an admin for a new one (`ward users token`)"
                return None, None, "invalid credentials"
        elif cred.method == "basic" and cred.name:
            if fresh is not None and fresh.credential is not None:  # same password hash, account enabled: no scrypt
                user = self.store.current_login(cred.name, fresh.credential)
                if user is not None:
                    return user, fresh.credential, ""
            login = self.store.password_login(cred.name, cred.secret)
            if login is not None:
                return login.user, login.credential, ""
        self._audit(AuditAction.LOGIN_FAILED, cred.name[:64] or None, {"method": cred.method[:16], "address": source})
        return None, None, "invalid credentials"

    def _audit(self, action: AuditAction, user: str | None, detail: dict[str, Any]) -> None:
        """Audit an authentication event (source "api"); never blocks the decision it records."""
        try:
            self.store.audit(action, user=user, detail=detail, source=AuditSource.API)
        except Exception as exc:  # noqa: BLE001 - the DB may be down; the login decision stands
            log.warning("could not write audit row %s for %r: %s", action, user, type(exc).__name__)

    def _bed_or_404(self, bed_id: str) -> None:
        if bed_id not in {b.bed_id for b in self.cfg.beds}:
            raise HTTPException(404, f"unknown bed {bed_id!r}; beds: {[b.bed_id for b in self.cfg.beds]}")

    # -- endpoints -------------------------------------------------------------------------------
    @fastapi_app.get("/api/health")
    async def health(self) -> dict[str, Any]:
        try:
            beds = await self.coordinator.snapshot.remote()
            states: dict[str, int] = {}
            for b in beds:
                states[b["state"]] = states.get(b["state"], 0) + 1
            ok = True
        except Exception:  # noqa: BLE001
            states, ok = {}, False
        return {"status": "ok" if ok else "degraded", "coordinator": ok, "beds": len(self.cfg.beds),
                "bed_states": states, "camera_actors": len(self.cameras),
                "uptime_s": round(time.time() - self.started, 1)}

    @fastapi_app.get("/api/beds", dependencies=_DOC_AUTH)
    async def beds(self, request: Request) -> list[dict[str, Any]]:
        self._auth(request, "viewer")
        return await self.coordinator.snapshot.remote()

    @fastapi_app.get("/api/beds/{bed_id}/probabilities", dependencies=_DOC_AUTH)
    def probabilities(self, request: Request, response: Response, bed_id: str, since: datetime | None = None,
                      until: datetime | None = None,
                      resolution: Literal["1s", "1m", "1h"] = "1s",
                      limit: int = Query(HISTORY_PAGE_DEFAULT, ge=1, le=HISTORY_PAGE_MAX,
                                         description="points per page (oldest first)")) -> dict[str, Any]:
        """One page of a bed's stored history, oldest first. When more points exist, ``next_since``
        (and a ``Link: <...>; rel="next"`` header) gives the request for the next page."""
        self._auth(request, "viewer")
        self._bed_or_404(bed_id)
        until_ = _utc(until) or datetime.now(timezone.utc) + timedelta(seconds=1)
        try:
            since_ = _utc(since) or until_ - timedelta(minutes=10)
        except OverflowError:
            raise HTTPException(422, f"until ({until_.isoformat()}) is too early: give since as well") from None
        if since_ > until_:
            raise HTTPException(422, f"since ({since_.isoformat()}) is after until ({until_.isoformat()})")
        try:  # one point more than the page: its time is where the next page starts
            pts = self.store.history(bed_id, since_, until_, resolution, limit=limit + 1)
        except ValueError as exc:
            if "unknown bed" in str(exc):
                pts = []  # configured but nothing stored yet
            else:
                raise HTTPException(422, str(exc)) from None
        next_since = pts[limit].t.isoformat() if len(pts) > limit else None
        if next_since is not None:
            response.headers["Link"] = _next_link(request, since=next_since, until=until_.isoformat())
        return {"bed_id": bed_id, "since": since_.isoformat(), "until": until_.isoformat(), "resolution": resolution,
                "limit": limit, "next_since": next_since,
                "points": [{"t": p.t.isoformat(), "probability": p.p_max, "p_mean": p.p_mean, "n": p.n,
                            "accumulator": p.accumulator} for p in pts[:limit]]}

    @fastapi_app.get("/api/beds/{bed_id}/poses", dependencies=_DOC_AUTH)
    async def poses(self, request: Request, bed_id: str) -> dict[str, Any]:
        self._auth(request, "viewer")
        self._bed_or_404(bed_id)
        actor = self.camera_of.get(bed_id)
        kp = await actor.last_keypoints.remote(bed_id) if actor is not None else None
        if kp is None:
            raise HTTPException(404, f"no pose for bed {bed_id!r} yet")
        return {"bed_id": bed_id, "keypoints": [kp]}

    @fastapi_app.get("/api/alarms", dependencies=_DOC_AUTH)
    def alarms(self, request: Request, response: Response, bed_id: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               tier: Literal["alarm", "review", "technical"] | None = None,
               limit: int = Query(100, ge=1, le=10000),
               cursor: str | None = Query(None, max_length=80, description="X-Next-Cursor of the previous page")
               ) -> list[dict[str, Any]]:
        """One page of alarms, newest first. When more exist, the ``X-Next-Cursor`` header (and a
        ``Link: <...>; rel="next"`` header) gives the cursor of the next page."""
        self._auth(request, "viewer")
        if bed_id is not None:
            self._bed_or_404(bed_id)
        before = _parse_alarm_cursor(cursor) if cursor is not None else None
        try:  # one row more than the page tells whether a next page exists
            rows = self.store.list_alarms(bed=bed_id, since=_utc(since), until=_utc(until), tier=tier,
                                          limit=limit + 1, before=before)
        except ValueError as exc:
            if "unknown bed" in str(exc):
                return []
            raise HTTPException(422, str(exc)) from None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = _alarm_cursor(rows[-1])
            response.headers["X-Next-Cursor"] = nxt
            response.headers["Link"] = _next_link(request, cursor=nxt)
        return [r.as_dict() for r in rows]

    @fastapi_app.post("/api/alarms/{alarm_id}/ack", dependencies=_DOC_AUTH)
    def ack(self, request: Request, body: AckBody,
            alarm_id: int = PathParam(..., ge=1, le=2**63 - 1, description="alarm id (a 64-bit integer)")
            ) -> dict[str, Any]:
        user = self._auth(request, "clinician")
        try:
            self.store.acknowledge(alarm_id, user.username, body.verdict, body.note, source="api")
            alarm = self.store.get_alarm(alarm_id)
        except ValueError as exc:
            raise HTTPException(404 if "unknown alarm" in str(exc) else 422, str(exc)) from None
        return alarm.as_dict()

    @fastapi_app.get("/metrics", response_class=PlainTextResponse, dependencies=_DOC_AUTH)
    async def metrics(self, request: Request) -> PlainTextResponse:
        self._auth(request, "viewer")
        snap = await self.coordinator.metrics.remote()
        return PlainTextResponse(render_metrics(snap), media_type="text/plain; version=0.0.4")
