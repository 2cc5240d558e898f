"""The ward's real FastAPI app without Ray: for fast request-level tests (bad input, auth, properties).

Serve's ingress turns each endpoint's ``self`` into a FastAPI dependency that fetches the replica's
object from the replica context (and so does the auth dependency, ``ward.serve.auth.current_api``).
Here both are overridden with a WardAPI built by its own
``__init__`` (its supervisor not started: no camera actors, no dashboard) on a temporary SQLite store, and the
coordinator is a stand-in that answers ``snapshot`` / ``metrics`` like the real one. Everything else
(routing, validation, auth, rate limiting, the body-size middleware, the store queries) is the
production code. The same requests against the real Serve deployment are in test_serve_ward.py and
test_faults.py.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from support.serve import sim_bed


class _Remote:
    """``obj.method.remote(...)`` returning an awaitable, like a Ray actor handle's method."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return self.fn(*args, **kwargs)
        return run()


class FakeCoordinator:
    def __init__(self, beds: list[str]) -> None:
        now = datetime.now(timezone.utc).isoformat()
        self.state = [{"bed_id": b, "state": "online", "reason": None, "since": now, "probability": 0.1,
                       "updated_at": now, "accumulator": 0.0, "alarm_active": False, "samples_stored": 0}
                      for b in beds]
        self.snapshot = _Remote(lambda: self.state)
        self.metrics = _Remote(lambda: {})


def _self_dependency(app: Any) -> Callable[..., Any]:
    from ray.serve._private.http_util import _walk_fastapi_routes

    for route, _parent, _prefix in _walk_fastapi_routes(app):
        p = inspect.signature(route.endpoint).parameters.get("self")
        if p is not None and getattr(p.default, "dependency", None) is not None:
            return p.default.dependency
    raise RuntimeError("no class-based route found on the ward's FastAPI app (has Serve's ingress changed?)")


def api_client(tmp_path: Any, monkeypatch: Any, beds: tuple[str, ...] = ("bed-1", "bed-2")) -> Iterator[tuple[Any, Any, Any]]:
    """Yields (TestClient, WardAPI instance, Store); users viewer1/viewer-pass, nurse1/nurse-pass (clinician)."""
    from fastapi.testclient import TestClient

    from ward.serve import api
    from ward.serve.auth import current_api
    from ward.serve.supervisor import Supervisor
    from ward.store import Store

    args = {"beds": [sim_bed(b, i) for i, b in enumerate(beds)],
            "models": {"pose": {"path": "unused-pose.pt"}, "vsvig": {"path": "unused-vsvig.pt"}},
            "database": {"url": f"sqlite:///{tmp_path / 'api.db'}", "spill_dir": str(tmp_path / "spill")},
            "dashboard": {"enabled": False}}
    store = Store(args["database"]["url"])
    store.create_user("viewer1", "viewer-pass")
    store.create_user("nurse1", "nurse-pass", role="clinician")
    orig = next(c for c in api.WardAPI.func_or_class.__mro__ if "_bed_or_404" in c.__dict__)
    monkeypatch.setattr(Supervisor, "start", lambda self: None)
    monkeypatch.setattr(orig, "__del__", lambda self: None)
    inst = object.__new__(orig)
    orig.__init__(inst, args, FakeCoordinator(list(beds)), None, None)
    deps = (_self_dependency(api.fastapi_app), current_api)
    for dep in deps:
        api.fastapi_app.dependency_overrides[dep] = lambda: inst
    try:
        with TestClient(api.fastapi_app, raise_server_exceptions=False) as client:
            yield client, inst, store
    finally:
        for dep in deps:
            api.fastapi_app.dependency_overrides.pop(dep, None)
        inst.store.close()
        store.close()
