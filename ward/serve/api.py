"""``WardAPI``: the ward's HTTP API (FastAPI behind Ray Serve), routes only.

Endpoints (JSON; OpenAPI at /docs, every answer described by a pydantic model below):

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

Authentication (:mod:`ward.serve.auth`, the one login flow of :mod:`ward.security.login`):
``Authorization: Bearer <token>`` (``ward users token``) or HTTP Basic. Viewers read, clinicians
also acknowledge, admins may do everything. Missing or bad credentials give 401 (also an expired or
revoked token, or a disabled user, from the very next request on), a temporary password or a
too-low role 403, too many failed logins 429.

The replica owns a :class:`~ward.serve.supervisor.Supervisor` that starts the camera actors and,
when configured, the Streamlit dashboard; ``__init__`` returns quickly, and the health check never
waits for the cameras.
"""

# no `from __future__ import annotations`: FastAPI must see real annotations (Request, bodies)

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping

import sqlalchemy.exc
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from ward.config import load_ward_config
from ward.security import install_log_redaction
from ward.serve.auth import ApiAuth, require
from ward.serve.metrics import render_metrics
from ward.serve.supervisor import Supervisor

log = logging.getLogger("ward.serve")

__all__ = ["AckBody", "WardAPI", "fastapi_app"]

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


# ------------------------------------------------------------------------------ bodies and answers

class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["true", "false", "unsure"]
    note: str | None = Field(None, max_length=2000)


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the coordinator does not answer")
    coordinator: bool
    beds: int
    bed_states: dict[str, int] = Field(description="number of beds per state")
    camera_actors: int
    uptime_s: float


class BedState(BaseModel):
    """A bed's live state as the coordinator keeps it (more fields than named here may follow)."""

    model_config = ConfigDict(extra="allow")
    bed_id: str
    state: str
    reason: str | None = None
    since: str | None = Field(None, description="ISO 8601, UTC: when the bed entered this state")
    probability: float | None = None
    updated_at: str | None = None
    accumulator: float | None = None
    alarm_active: bool = False
    rule: dict[str, Any] | None = Field(None, description="every RuleConfig field of the rule the bed runs")
    rule_source: str | None = Field(None, description="default / ward / bed / override")


class HistoryPointOut(BaseModel):
    t: str = Field(description="ISO 8601, UTC")
    probability: float = Field(description="highest probability in the point (1s: the sample)")
    p_mean: float
    n: int = Field(description="samples in the point")
    accumulator: float | None


class HistoryPage(BaseModel):
    bed_id: str
    since: str
    until: str
    resolution: Literal["1s", "1m", "1h"]
    limit: int
    next_since: str | None = Field(description="since of the next page (also in the Link header); None: last page")
    points: list[HistoryPointOut]


class Poses(BaseModel):
    bed_id: str
    keypoints: list[Any] = Field(description="the latest patient keypoints (joints x [x, y, confidence])")


class Alarm(BaseModel):
    id: int
    bed: str
    tier: str = Field(description="alarm, review or technical")
    start: str
    end: str | None
    peak: float
    state: str
    reason: str | None
    acknowledged: bool
    verdict: str | None


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



@serve.deployment(name="WardAPI", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(fastapi_app)
class WardAPI:
    """``coordinator``, ``pose``, ``vsvig``: the deployment handles build_app bound."""

    def __init__(self, config: Mapping[str, Any], coordinator: Any, pose: Any, vsvig: Any) -> None:
        from ward.store import Store  # noqa: PLC0415

        self.cfg = load_ward_config(config, validate_paths=False)
        self.coordinator = coordinator
        self.store = Store(self.cfg.database.url)
        self.auth = ApiAuth(self.store)
        self.started = time.time()
        install_log_redaction()  # again: handlers Serve added after this module was imported
        self.bed_ids = [b.bed_id for b in self.cfg.beds]
        self.supervisor = Supervisor(self.cfg, config, {"Coordinator": coordinator, "Pose": pose, "VSViG": vsvig},
                                     self.store)
        self.supervisor.start()

    def check_health(self) -> None:
        """Cheap on purpose: camera actors are supervised by Ray (max_restarts), not by this check."""
        return None

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:  # noqa: BLE001 - at interpreter exit imports fail; Ray reaps the actors anyway
            pass

    def shutdown(self) -> None:
        supervisor = getattr(self, "supervisor", None)
        if supervisor is not None:
            supervisor.stop()

    async def camera_nodes(self) -> dict[str, str]:
        """Node id of each bed's camera actor (placement checks; not an HTTP route)."""
        return await self.supervisor.camera_nodes()

    def _bed_or_404(self, bed_id: str) -> None:
        if bed_id not in self.bed_ids:
            raise HTTPException(404, f"unknown bed {bed_id!r}; beds: {self.bed_ids}")

    # -- routes ----------------------------------------------------------------------------------
    @fastapi_app.get("/api/health", response_model=Health)
    async def health(self) -> dict[str, Any]:
        try:
            beds = await self.coordinator.snapshot.remote()
            states: dict[str, int] = {}
            for b in beds:
                states[b["state"]] = states.get(b["state"], 0) + 1
            ok = True
        except Exception:  # noqa: BLE001
            states, ok = {}, False
        return {"status": "ok" if ok else "degraded", "coordinator": ok, "beds": len(self.bed_ids),
                "bed_states": states, "camera_actors": len(self.supervisor.cameras),
                "uptime_s": round(time.time() - self.started, 1)}

    @fastapi_app.get("/api/beds", response_model=list[BedState])
    async def beds(self, user: Any = require("viewer")) -> list[dict[str, Any]]:
        return await self.coordinator.snapshot.remote()

    @fastapi_app.get("/api/beds/{bed_id}/probabilities", response_model=HistoryPage)
    def probabilities(self, request: Request, response: Response, bed_id: str, since: datetime | None = None,
                      until: datetime | None = None,
                      resolution: Literal["1s", "1m", "1h"] = "1s",
                      limit: int = Query(HISTORY_PAGE_DEFAULT, ge=1, le=HISTORY_PAGE_MAX,
                                         description="points per page (oldest first)"),
                      user: Any = require("viewer")) -> dict[str, Any]:
        """One page of a bed's stored history, oldest first. When more points exist, ``next_since``
        (and a ``Link: <...>; rel="next"`` header) gives the request for the next page."""
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

    @fastapi_app.get("/api/beds/{bed_id}/poses", response_model=Poses)
    async def poses(self, bed_id: str, user: Any = require("viewer")) -> dict[str, Any]:
        self._bed_or_404(bed_id)
        kp = await self.supervisor.last_keypoints(bed_id)
        if kp is None:
            raise HTTPException(404, f"no pose for bed {bed_id!r} yet")
        return {"bed_id": bed_id, "keypoints": [kp]}

    @fastapi_app.get("/api/alarms", response_model=list[Alarm])
    def alarms(self, request: Request, response: Response, bed_id: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               tier: Literal["alarm", "review", "technical"] | None = None,
               limit: int = Query(100, ge=1, le=10000),
               cursor: str | None = Query(None, max_length=80, description="X-Next-Cursor of the previous page"),
               user: Any = require("viewer")) -> list[dict[str, Any]]:
        """One page of alarms, newest first. When more exist, the ``X-Next-Cursor`` header (and a
        ``Link: <...>; rel="next"`` header) gives the cursor of the next page."""
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

    @fastapi_app.post("/api/alarms/{alarm_id}/ack", response_model=Alarm)
    def ack(self, body: AckBody,
            alarm_id: int = PathParam(..., ge=1, le=2**63 - 1, description="alarm id (a 64-bit integer)"),
            user: Any = require("clinician")) -> dict[str, Any]:
        try:
            self.store.acknowledge(alarm_id, user.username, body.verdict, body.note, source="api")
            alarm = self.store.get_alarm(alarm_id)
        except ValueError as exc:
            raise HTTPException(404 if "unknown alarm" in str(exc) else 422, str(exc)) from None
        return alarm.as_dict()

    @fastapi_app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(self, user: Any = require("viewer")) -> PlainTextResponse:
        snap = await self.coordinator.metrics.remote()
        return PlainTextResponse(render_metrics(snap), media_type="text/plain; version=0.0.4")
