"""Camera source URIs: what kind a URI is, and opening it as a capture.

Kinds: ``file`` (a path or ``file://``), ``rtsp`` (``rtsp://``, ``rtsps://``), ``http`` (MJPEG over
``http(s)://``), ``device`` (``device:N`` or ``/dev/videoN``) and ``sim`` (``sim://``, the built-in
simulator). :func:`source_kind` is pure (used by the config schema); :func:`open_source` imports
OpenCV lazily so the schema stays cheap to import.

Camera URIs carry credentials (``rtsp://user:pass@host``, ``?token=``). Only the reader ever holds
the real URI: every message, status reason, stored config and log line built from a source goes
through :mod:`ward.core.uris` (one redaction for every layer, the log redaction included).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Protocol

from ward.core.uris import URI_SCHEME, redact_source_text, redact_uri, uri_secrets

__all__ = ["Capture", "SourceError", "SourceKind", "open_source", "source_kind"]

SourceKind = Literal["file", "rtsp", "http", "device", "sim"]

_DEVICE = re.compile(r"^device:(\d+)$")
_DEV_PATH = re.compile(r"^/dev/video(\d+)$")
_ACCEPTED = "a file path, file://, rtsp://, rtsps://, http(s):// (MJPEG), device:N, /dev/videoN or sim://"


class SourceError(OSError):
    """A camera source could not be opened (missing file, unreachable stream, simulator unavailable)."""


class Capture(Protocol):
    """The part of cv2.VideoCapture the reader uses (also implemented by ward.sim's SimCapture)."""

    def isOpened(self) -> bool: ...  # noqa: N802,E704
    def read(self) -> tuple[bool, Any]: ...  # noqa: E704
    def get(self, prop: int) -> float: ...  # noqa: E704
    def set(self, prop: int, value: float) -> bool: ...  # noqa: E704
    def release(self) -> None: ...  # noqa: E704


def source_kind(uri: str) -> SourceKind:
    """Classify a source URI; ValueError naming the accepted forms for anything else."""
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"camera source must be a non-empty string: {_ACCEPTED}")
    if uri != uri.strip():
        raise ValueError(f"camera source has leading/trailing whitespace: {redact_uri(uri)!r}")
    if _DEVICE.match(uri) or _DEV_PATH.match(uri):
        return "device"
    m = URI_SCHEME.match(uri)
    if m:
        scheme = m.group(1).lower()
        kinds: dict[str, SourceKind] = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http",
                                        "sim": "sim", "file": "file"}
        if scheme not in kinds:
            raise ValueError(f"unsupported camera source scheme {scheme!r} in {redact_uri(uri)!r}; use {_ACCEPTED}")
        if kinds[scheme] in ("rtsp", "http") and len(uri) <= len(m.group(0)):
            raise ValueError(f"camera source {redact_uri(uri)!r} has no host; e.g. rtsp://10.0.0.5:554/stream")
        return kinds[scheme]
    if uri.startswith("device:"):
        raise ValueError(f"camera device must be device:N with N a number (got {redact_uri(uri)!r})")
    return "file"


def file_path(uri: str) -> Path:
    """The local path of a file source (``file://`` stripped)."""
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()


_NATIVE_DEBUG_VARS = ("OPENCV_VIDEOIO_DEBUG", "OPENCV_FFMPEG_DEBUG", "OPENCV_FFMPEG_LOGLEVEL")
_warned_native_debug = False


def _warn_native_debug(uri: str) -> None:
    """OpenCV's and FFmpeg's own debug output (on stderr, so in the Ray worker logs) prints the full
    URI or its Authorization header; no Python redaction reaches it. Say so once, naming the switch."""
    global _warned_native_debug
    on = [v for v in _NATIVE_DEBUG_VARS if os.environ.get(v, "").strip() not in ("", "0", "false", "FALSE")]
    if on and not _warned_native_debug and uri_secrets(uri):
        _warned_native_debug = True
        import logging  # noqa: PLC0415

        logging.getLogger("ward.serve").warning(
            "%s is set: OpenCV/FFmpeg debug output will show camera credentials (of %s) in the process's "
            "stderr logs; unset it outside a debugging session", ", ".join(on), redact_uri(uri))


def _ensure_rtsp_tcp() -> None:
    """Make OpenCV's FFmpeg use RTSP over TCP (UDP loses packets and smears frames on busy hosts)."""
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    cur = os.environ.get(key, "")
    if "rtsp_transport" not in cur:
        os.environ[key] = f"{cur}|rtsp_transport;tcp" if cur else "rtsp_transport;tcp"


def open_source(uri: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0,
                sim_realtime: bool = True) -> Capture:
    """Open a camera source; raises :class:`SourceError` when it cannot be opened (never returns closed).

    Network streams get FFmpeg open/read timeouts so a dead camera cannot block a reader forever.
    """
    kind = source_kind(uri)
    if kind == "sim":
        try:
            from ward.sim.render import open_capture  # noqa: PLC0415 (optional concern, heavy)
        except ImportError as exc:
            raise SourceError(f"sim:// sources need ward.sim (not available: {exc}); "
                              "use a file/rtsp/http/device source instead") from exc
        try:
            return open_capture(uri, realtime=sim_realtime)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 (scenario loading errors of any kind)
            raise SourceError(f"cannot open simulator source {uri!r}: {redact_source_text(str(exc), uri)}") from exc

    import cv2  # noqa: PLC0415

    if kind == "file":
        path = file_path(uri)
        if not path.is_file():
            raise SourceError(f"video file not found: {redact_uri(str(path))}")  # "user:pw@host" without rtsp://
        cap = cv2.VideoCapture(str(path))
    elif kind == "device":
        m = _DEVICE.match(uri) or _DEV_PATH.match(uri)
        assert m is not None
        cap = cv2.VideoCapture(int(m.group(1)))
    else:
        _warn_native_debug(uri)
        if kind == "rtsp":
            _ensure_rtsp_tcp()
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"could not open camera source {redact_uri(uri)!r}")
    return cap
