"""Camera credentials never leave the camera module: ``redact_uri`` and every path a source URI takes.

A camera URI such as ``rtsp://nurse:S3cret-pw@10.0.0.5/bed`` is needed by the reader only. Every
text built from it -- SourceError messages, reader status reasons, camera-health events, technical
alarm reasons, the per-bed camera config in the database, API responses, the dashboard, config
errors and logs -- must show ``rtsp://***@10.0.0.5/bed`` instead. The unit tests pin the function
and the messages; ``test_ward_never_shows_camera_credentials`` runs a small real ward (Ray, SQLite,
the FastAPI ingress, the Streamlit dashboard) with a credentialed camera that cannot be reached and
looks for the password everywhere, logs of the Ray session included. ``test_rtsp_camera_with_login``
checks that a real camera needing that login still works: the reader gets the full URI.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from support.serve import free_port, sim_bed, wait_for, ward_args
from test_rtsp import port  # noqa: F401 (fixture: a free port, or a clear failure without GStreamer)
from ward.camera.sources import SourceError, open_source, source_kind
from ward.core.uris import redact_source_text, redact_uri, redact_uris
from ward.core.messages import CameraReport

SECRET = "S3cret-pw"
TOKEN = "T0kenValue9"
MODELS = {"pose": {"path": "pose.pt"}, "vsvig": {"path": "vsvig.pt"}}


def _assert_clean(blob: str | bytes, where: str, secrets: tuple[str, ...] = (SECRET, TOKEN)) -> None:
    """No secret in ``blob`` (text or raw bytes); the failure names the place and shows the context."""
    for secret in secrets:
        if isinstance(blob, bytes):
            i = blob.find(secret.encode())
            ctx = blob[max(0, i - 80):i + 80].decode("utf-8", "replace") if i >= 0 else ""
        else:
            i = blob.find(secret)
            ctx = blob[max(0, i - 80):i + 80] if i >= 0 else ""
        assert i < 0, f"camera secret {secret!r} leaked into {where}: ...{ctx}..."


# ------------------------------------------------------------------------------------------ redact_uri

@pytest.mark.parametrize("uri,expected", [
    # the brief's example: user info and the token value masked, host, port and path kept
    ("rtsp://user:pass@10.0.0.5:554/s?token=x", "rtsp://***@10.0.0.5:554/s?token=***"),
    ("rtsps://user:pass@cam.local/s", "rtsps://***@cam.local/s"),
    ("http://admin:pw@10.0.0.9/mjpg/video.mjpg", "http://***@10.0.0.9/mjpg/video.mjpg"),
    ("https://cam.local/mjpg?user=a&password=b&fps=5", "https://cam.local/mjpg?user=a&password=***&fps=5"),
    ("http://cam/x?passwd=1&pwd=2&api_key=3&auth=4&sig=5&resolution=640x480",
     "http://cam/x?passwd=***&pwd=***&api_key=***&auth=***&sig=***&resolution=640x480"),
    ("http://cam/x?channel=1#access_token=zz", "http://cam/x?channel=1#access_token=***"),
    ("RTSP://U:P@H/S?TOKEN=abc", "RTSP://***@H/S?TOKEN=***"),
    # odd user info: '@', '/', '?', '#' or percent-escapes in the password, no password, empty parts
    ("rtsp://user:p@ss@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://user:pa/ss@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://user:p?ss@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://user:p#ss@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://u%3Ax:p%40ss@h/s", "rtsp://***@h/s"),
    ("rtsp://admin@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
    ("rtsp://u:@h/s", "rtsp://***@h/s"),
    ("rtsp://@h/s", "rtsp://***@h/s"),
    ("rtsp://nurse:S3cret", "rtsp://***"),  # truncated (no host): a non-numeric "port" is a password
    ("user:pass@10.0.0.5:554/s", "***@10.0.0.5:554/s"),  # scheme forgotten
    # IPv6 hosts (with a zone), with and without credentials
    ("rtsp://u:pw@[::1]:554/s", "rtsp://***@[::1]:554/s"),
    ("rtsp://[fe80::1%25eth0]:554/s", "rtsp://[fe80::1%25eth0]:554/s"),
    # nothing to hide: unchanged
    ("rtsp://10.0.0.5:554/s", "rtsp://10.0.0.5:554/s"),
    ("http://h/p?email=a@b.com", "http://h/p?email=a@b.com"),
    ("videos/bed-1.mp4", "videos/bed-1.mp4"),
    ("/data/bed@1.mp4", "/data/bed@1.mp4"),
    ("file:///v/a@b.mp4", "file:///v/a@b.mp4"),
    ("device:0", "device:0"),
    ("/dev/video2", "/dev/video2"),
    ("sim://?seed=1&seizure=tonic_clonic@5&key=3", "sim://?seed=1&seizure=tonic_clonic@5&key=3"),
    # degenerate input never raises
    ("", ""),
    ("rtsp://", "rtsp://"),
    (" rtsp://u:pw@h/s ", " rtsp://***@h/s "),
])
def test_redact_uri_table(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert redact_uri(expected) == expected  # idempotent: a redacted URI stays as it is


def test_redact_uri_is_total_and_conservative() -> None:
    assert redact_uri(None) == "<NoneType>" and redact_uri(b"rtsp://u:p@h") == "<bytes>"  # type: ignore[arg-type]
    # ambiguous: '@' in the path after a port -- more is masked rather than a password shown
    assert "live" not in redact_uri("rtsp://u:1234/live@cam/s")
    for uri in ("rtsp://a:b@c@d:e@f/g", "rtsp://:@", "rtsp://@@@", "http://[::1", "rtsp://u:p@[", "::://@@",
                "rtsp://u:p@h/s?token", "rtsp://h/s?=x&&token=", "\x00rtsp://u:p@h"):
        assert isinstance(redact_uri(uri), str)


def test_redact_uris_in_text_and_the_log_net_agree() -> None:
    """The log redaction (ward.security.redact) uses the same function: both give the same text."""
    from ward.security import redact

    uri = f"rtsp://nurse:{SECRET}@10.0.0.5:554/bed?token={TOKEN}"
    line = f"open failed: could not open camera source '{uri}' (postgresql://ward:pg-pw@db/ward, sim://?seed=1)"
    out = redact_uris(line)
    assert out == ("open failed: could not open camera source 'rtsp://***@10.0.0.5:554/bed?token=***' "
                   "(postgresql://***@db/ward, sim://?seed=1)")
    assert redact(line) == out
    for u in ("rtsp://user:p@ss@10.0.0.5/s", "http://cam/x?sig=5&fps=2", "rtsp://[::1]:554/s"):
        assert redact(f"camera {u} down") == f"camera {redact_uri(u)} down"


def test_redact_source_text_masks_quoted_and_decoded_secrets() -> None:
    uri = f"rtsp://nurse:{SECRET}%40x@10.0.0.5/bed?token={TOKEN}"
    text = (f"401 for user nurse password {SECRET}@x at {uri} (raw {SECRET}%40x), "
            f"token {TOKEN}; other rtsp://a:b-pass@h2/s")
    out = redact_source_text(text, uri)
    _assert_clean(out, "redact_source_text", (SECRET, TOKEN, "b-pass"))
    assert "rtsp://***@10.0.0.5/bed?token=***" in out and "rtsp://***@h2/s" in out and "401 for user nurse" in out


# ------------------------------------------------------------------------------------------ messages

def test_source_errors_never_quote_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    port = free_port()  # nothing listens: connection refused
    uri = f"rtsp://nurse:{SECRET}@127.0.0.1:{port}/bed?token={TOKEN}"
    with pytest.raises(SourceError) as err:
        open_source(uri, open_timeout_s=2)
    _assert_clean(str(err.value), "SourceError")
    assert f"rtsp://***@127.0.0.1:{port}/bed?token=***" in str(err.value)
    with pytest.raises(SourceError, match="video file not found") as err:  # rtsp:// forgotten: taken as a path
        open_source(f"nurse:{SECRET}@127.0.0.1:{port}/bed")
    _assert_clean(str(err.value), "SourceError")
    for bad in (f"rtspx://nurse:{SECRET}@h/s", f" rtsp://nurse:{SECRET}@h/s", f"device:nurse:{SECRET}@h"):
        with pytest.raises(ValueError) as verr:
            source_kind(bad)
        _assert_clean(str(verr.value), f"source_kind({bad[:8]}...)")
        assert "***" in str(verr.value)


def test_native_debug_output_is_warned_about(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """OpenCV's own debug switch prints the full URI to stderr (no Python redaction reaches it): warn."""
    import ward.camera.sources as sources

    monkeypatch.setattr(sources, "_warned_native_debug", False)
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "48")  # (not opening anything: OpenCV may cache the level)
    with caplog.at_level(logging.WARNING, logger="ward.serve"):
        sources._warn_native_debug("rtsp://127.0.0.1/no-credentials")
        assert not caplog.text
        sources._warn_native_debug(f"rtsp://nurse:{SECRET}@127.0.0.1/bed")
        sources._warn_native_debug(f"rtsp://nurse:{SECRET}@127.0.0.1/bed2")
    assert caplog.text.count("is set") == 1  # once per process
    assert "OPENCV_FFMPEG_LOGLEVEL is set" in caplog.text and "rtsp://***@127.0.0.1" in caplog.text
    _assert_clean(caplog.text, "the warning")


def test_config_errors_never_quote_credentials() -> None:
    from ward.config import ConfigError, load_ward_config

    for bed in ({"bed_id": "b1", "source": f"rtspx://nurse:{SECRET}@10.0.0.5/s"},
                {"bed_id": "b1", "source": f"rtsp://nurse:{SECRET}@10.0.0.5/s", "keypoints": "simulator"},
                {"bed_id": "b1", "source": f"rtsp://nurse:{SECRET}@10.0.0.5/s", "fps": -1}):
        with pytest.raises(ConfigError) as err:
            load_ward_config({"beds": [bed], "models": MODELS}, validate_paths=False)
        _assert_clean(str(err.value), "ConfigError")


def _wait(pred: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def test_reader_status_is_redacted_but_the_opener_gets_the_full_uri() -> None:
    from ward.camera.reader import CameraReader

    port = free_port()
    uri = f"rtsp://nurse:{SECRET}@127.0.0.1:{port}/bed?token={TOKEN}"
    seen: list[str] = []

    def opener(u: str) -> Any:
        seen.append(u)
        return open_source(u, open_timeout_s=2)

    with CameraReader(uri, opener=opener, backoff_initial_s=0.05, backoff_max_s=0.2, jitter=0) as r:
        assert _wait(lambda: r.status().reconnects >= 2, 20), r.status()
        reasons = [r.status().reason for _ in range(3)]
        names = [t.name for t in threading.enumerate()]
    assert seen and set(seen) == {uri}  # the capture is opened with the credentials
    assert r.uri == uri and r.display_uri == f"rtsp://***@127.0.0.1:{port}/bed?token=***"
    assert r.status().state == "offline"
    for reason in reasons:
        _assert_clean(reason, "reader status reason")
    assert any(f"rtsp://***@127.0.0.1:{port}/bed" in x for x in reasons), reasons
    _assert_clean(" ".join(names), "thread names")


def test_reader_scrubs_errors_that_quote_the_uri() -> None:
    """A decoder error quoting the URI, or just the password (percent-decoded), is masked too."""
    from ward.camera.reader import CameraReader

    uri = f"rtsp://nurse:{SECRET}%21@10.0.0.5/bed"

    def opener(u: str) -> Any:
        raise RuntimeError(f"DESCRIBE {u} failed: 401 for nurse/{SECRET}!")

    with CameraReader(uri, opener=opener, backoff_initial_s=0.05, backoff_max_s=0.1, jitter=0) as r:
        assert _wait(lambda: r.status().reconnects >= 2, 10)
        reason = r.status().reason
    _assert_clean(reason, "reader status reason")
    assert "DESCRIBE rtsp://***@10.0.0.5/bed failed: 401 for nurse/***" in reason


# ------------------------------------------------------------------------------------------ coordinator

class _Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _text_columns(url: str) -> str:
    """Every column of every table of the database, as text (JSON configs included)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        out = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    out.append(f"{table.name}: " + " | ".join(str(v) for v in row))
        return "\n".join(out)
    finally:
        engine.dispose()


def _db_bytes(db: Path) -> bytes:
    """The SQLite file and its WAL / journal, raw (deleted pages and free space included)."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")) if p.is_file())


def test_coordinator_stores_and_shows_only_redacted_text(tmp_path: Path) -> None:
    """Camera config, status reason, health events, technical alarm and snapshot of a credentialed bed."""
    from ward.config import load_ward_config
    from ward.alarms.coordinator import WardCoordinator
    from ward.serve.metrics import render_metrics
    from ward.store import SpillingWriter, Store

    uri = f"rtsp://nurse:{SECRET}@10.0.0.5:554/bed?token={TOKEN}"
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    cfg = load_ward_config({"beds": [{"bed_id": "bed-c", "source": uri, "offline_alarm_after_s": 5}],
                            "models": MODELS, "database": {"url": url, "spill_dir": str(tmp_path / "spill")}},
                           validate_paths=False)
    clock = _Clock()
    store = Store(url)
    core = WardCoordinator(cfg, store, SpillingWriter(store, cfg.database.spill_dir), clock=clock)
    core.register_beds()
    core.register_beds()  # a restart: same redacted config, no new history row
    assert [c["source"] for _, c in store.camera_config_history("bed-c")] == [
        "rtsp://***@10.0.0.5:554/bed?token=***"]
    # a camera actor (another process, maybe older code) reports a reason quoting the URI
    core.report_status({"bed-c": CameraReport(state="offline", reason=f"open failed: could not open {uri!r}",
                                  since_wall=clock.t)})
    clock.t += 10
    core.flush()
    core.report_status({"bed-c": CameraReport(state="offline", reason=f"reconnecting; last problem: {SECRET}",
                                  since_wall=clock.t - 10)})
    clock.t += 1
    core.flush()
    snap = core.snapshot()[0]
    assert snap["state"] == "offline" and snap["technical_alarm"] is True
    first = store.health_events(bed="bed-c")[0].reason
    assert "open failed: could not open 'rtsp://***@10.0.0.5:554/bed?token=***'" in first
    tech = store.list_alarms(bed="bed-c")
    assert tech and tech[0].tier == "technical" and "rtsp://***@10.0.0.5" in tech[0].reason
    _assert_clean(repr(snap), "coordinator snapshot")
    _assert_clean(repr(core.metrics()), "coordinator metrics")
    _assert_clean(render_metrics(core.metrics()), "/metrics text")
    store.close()
    _assert_clean(_text_columns(url), "database text columns")
    _assert_clean(_db_bytes(tmp_path / "ward.db"), "SQLite file bytes")


def test_store_never_keeps_a_credentialed_camera_source(tmp_path: Path) -> None:
    """Whoever registers a bed (coordinator, scripts, the dashboard's threshold edits) stores it redacted."""
    from ward.store import Store

    store = Store(f"sqlite:///{tmp_path / 'ward.db'}")
    store.upsert_bed("bed-1", camera={"source": f"http://cam:{SECRET}@10.0.0.7/mjpg", "fps": 6,
                                      "snapshot_url": f"https://cam.local/snap.jpg?auth={TOKEN}"})
    store.upsert_bed("bed-2", camera={"source": f"nurse:{SECRET}@10.0.0.8:554/s"})  # scheme forgotten
    assert [b.camera for b in store.list_beds()] == [
        {"source": "http://***@10.0.0.7/mjpg", "fps": 6, "snapshot_url": "https://cam.local/snap.jpg?auth=***"},
        {"source": "***@10.0.0.8:554/s"}]
    store.close()
    _assert_clean(_db_bytes(tmp_path / "ward.db"), "SQLite file bytes")


# ------------------------------------------------------------------------------------------ real RTSP

@pytest.fixture()
def camera_with_login(port: int) -> Iterator[str]:
    """A real RTSP camera on loopback that needs ``nurse:S3cret-pw`` (GStreamer's RTSP server)."""
    from support.rtsp import stop_server as _stop
    from test_rtsp import _start_server

    proc = _start_server(port, "--auth", f"nurse:{SECRET}")
    try:
        yield f"127.0.0.1:{port}/bed1"
    finally:
        _stop(proc)


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_rtsp_camera_with_login(camera_with_login: str) -> None:
    """The reader opens the full URI (the camera answers 401 without the password); only text is redacted."""
    from ward.camera.reader import CameraReader

    where = camera_with_login
    kw: dict[str, Any] = dict(model_fps=6, no_frame_timeout_s=3.0, backoff_initial_s=0.2, backoff_max_s=1.0,
                              open_timeout_s=5.0)
    with CameraReader(f"rtsp://nurse:{SECRET}@{where}", name="bed-c", **kw) as good, \
            CameraReader(f"rtsp://nurse:Wr0ng-pw@{where}", name="bed-w", **kw) as wrong:
        assert _wait(lambda: good.status().state == "online", 30), good.status()
        frame = good.wait_frame(0, timeout=10)
        assert frame is not None and frame.image.shape == (576, 768, 3)
        assert _wait(lambda: wrong.status().reconnects >= 1, 30), wrong.status()
        st = wrong.status()
    assert st.state == "offline" and st.frames_in == 0
    assert f"rtsp://***@{where}" in st.reason
    _assert_clean(st.reason, "reason of the wrong-password reader", ("Wr0ng-pw", SECRET))
    _assert_clean(good.status().reason, "reason of the working reader")


# ------------------------------------------------------------------------------------------ real ward

def _dashboard_text(store: Any, bed: str) -> str:
    """Everything the dashboard renders (overview, the bed's page, alarms) for a logged-in viewer."""
    from streamlit.testing.v1 import AppTest

    from ward.dashboard.auth import open_session
    from ward.dashboard.ui import TOKEN_KEY

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    out = []
    for page in (None, "views/bed.py", "views/alarms.py"):
        at = AppTest.from_file(app, default_timeout=60)
        at.session_state[TOKEN_KEY] = open_session(store, store.authenticate("viewer1", "viewer-pass"))
        at.session_state["bed"] = bed
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception, at.exception
        out.append(_tree_text(at._tree))
    return "\n".join(out)


def _tree_text(node: Any) -> str:
    """The protobuf text of every element under ``node`` (markdown, metrics, tables as Arrow bytes)."""
    parts = [str(getattr(node, "proto", "") or "")]
    children = getattr(node, "children", {}) or {}
    for child in (children.values() if isinstance(children, dict) else children):
        parts.append(_tree_text(child))
    return "\n".join(parts)


@pytest.mark.ray
@pytest.mark.timeout(400)
def test_ward_never_shows_camera_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A credentialed camera that cannot be reached, in a real 2-bed ward: the secret is nowhere."""
    import httpx
    import ray
    from ray import serve

    from ward.serve.app import build_app
    from ward.store import Store

    cam_port, port = free_port(), free_port()
    cam = f"rtsp://nurse:{SECRET}@127.0.0.1:{cam_port}/bed?token={TOKEN}"
    shown = f"rtsp://***@127.0.0.1:{cam_port}/bed?token=***"
    beds = [sim_bed("bed-1", 1, keypoints="simulator"),
            {"bed_id": "bed-c", "source": cam, "offline_alarm_after_s": 3.0}]
    args = ward_args(tmp_path, beds)
    store = Store(args["database"]["url"])
    store.create_user("viewer1", "viewer-pass")
    auth = ("viewer1", "viewer-pass")
    # address="local": a fresh cluster of our own, even when someone's `ray start` cluster is running
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20, log_to_driver=False)
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="ward", route_prefix="/")
        base = f"http://127.0.0.1:{port}"

        def ready() -> dict[str, Any] | None:
            beds = {b["bed_id"]: b for b in httpx.get(base + "/api/beds", auth=auth, timeout=10).json()}
            tech = httpx.get(base + "/api/alarms", auth=auth, params={"bed_id": "bed-c"}, timeout=10).json()
            ok = beds["bed-1"]["samples_stored"] >= 1 and beds["bed-c"]["technical_alarm"] and tech
            return beds if ok else None

        beds = wait_for(ready, 240, what="bed-1 storing samples and a technical alarm for bed-c")
        assert beds["bed-c"]["state"] == "offline" and shown in beds["bed-c"]["reason"], beds["bed-c"]
        responses = {path: httpx.get(base + path, auth=auth, timeout=10).text
                     for path in ("/api/beds", "/api/alarms", "/api/alarms?bed_id=bed-c", "/api/health", "/metrics")}
        for path, body in responses.items():
            _assert_clean(body, f"GET {path}")
        # the dashboard on the ward's database, refined by the live API (bed-c's live reason has the URI)
        monkeypatch.setenv("WARD_DB_URL", args["database"]["url"])
        monkeypatch.setenv("WARD_API_URL", base)
        monkeypatch.setenv("WARD_API_TOKEN", store.create_token("viewer1"))
        page = _dashboard_text(store, "bed-c")
        _assert_clean(page, "the dashboard")
        health = store.health_events(bed="bed-c")
        assert health and health[0].state == "offline" and "bed-c" in page
        if shown in (health[-1].reason or ""):  # the first status report came after the first open failed
            assert shown in page  # the stored reason is rendered: the look was real
    finally:
        serve.shutdown()
        ray.shutdown()
    store.close()
    db = tmp_path / "ward.db"
    _assert_clean(_text_columns(args["database"]["url"]), "database text columns")
    _assert_clean(_db_bytes(db), "SQLite file bytes")
    for p in sorted(tmp_path.rglob("*")):  # spill journal and anything else the ward wrote here
        if p.is_file():
            _assert_clean(p.read_bytes(), str(p.relative_to(tmp_path)))
    logs = [p for p in (session / "logs").rglob("*") if p.is_file()]
    assert any(p.name.startswith("worker-") for p in logs), "no Ray worker logs found"
    for p in logs:
        _assert_clean(p.read_bytes(), f"Ray log {p.relative_to(session)}")
