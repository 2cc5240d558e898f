"""Camera source URIs: what kind a URI is, and opening it as a capture.

Kinds: ``file`` (a path or ``file://``), ``rtsp`` (``rtsp://``, ``rtsps://``), ``http`` (MJPEG over
``http(s)://``), ``device`` (``device:N`` or ``/dev/videoN``) and ``sim`` (``sim://``, the built-in
simulator). :func:`source_kind` is pure (used by the config schema); :func:`open_source` imports
OpenCV lazily so the schema stays cheap to import.

Camera URIs carry credentials (``rtsp://user:pass@host``, ``?token=``). Only the reader ever holds
the real URI: every message, status reason, stored config and log line built from a source uses
:func:`redact_uri` (one URI) or :func:`redact_source_text` (a message about one source), and the log
redaction of :mod:`ward.security` uses :func:`redact_uris`, so the two can never disagree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["Capture", "SourceError", "SourceKind", "open_source", "redact_source_text", "redact_uri", "redact_uris",
           "source_kind", "uri_secrets"]

SourceKind = Literal["file", "rtsp", "http", "device", "sim"]

_DEVICE = re.compile(r"^device:(\d+)$")
_DEV_PATH = re.compile(r"^/dev/video(\d+)$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
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
    m = _SCHEME.match(uri)
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


# ------------------------------------------------------------------------------------------ redaction

MASK = "***"
# query / fragment keys whose values are credentials (substring match on the lower-cased, decoded key)
_SECRET_KEY = re.compile(r"token|pass|pwd|secret|key|auth|sig|cred|session|cookie")
_QUERY_PAIR = re.compile(r"([?&;#])([^=&;#?]*)=([^&;#]*)")
# a URI inside free text: scheme://... up to whitespace, a quote or an angle bracket
_URI_IN_TEXT = re.compile(r"(?i)(?<![A-Za-z0-9+.-])[a-z][a-z0-9+.-]*://[^\s'\"<>`]*")
_NO_REDACTION = ("sim", "file")
_MIN_SECRET_CHARS = 3


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the user-info part of ``rest`` (the URI after ``scheme://``), or -1.

    FFmpeg's rule (the last ``@`` before the first ``/``, ``?`` or ``#``) misses passwords that carry an
    unencoded ``/``, ``?`` or ``#`` -- exactly the URLs that fail to open and end up in an error
    message -- so this errs towards masking: the last ``@`` with no ``/`` before it, else the last
    ``@`` whose text before the first ``/`` has a ``:`` (``user:pa/ss@host``).
    """
    ats = [i for i, c in enumerate(rest) if c == "@"]
    plain = [i for i in ats if "/" not in rest[:i]]
    if plain:
        return plain[-1]
    colon = [i for i in ats if ":" in rest[:i].split("/", 1)[0]]
    return colon[-1] if colon else -1


def _password_without_host(authority: str) -> bool:
    """``user:secret`` with no ``@`` (a truncated or malformed URI): a non-numeric "port" is a password."""
    if authority.startswith("["):
        return False
    _, sep, port = authority.partition(":")
    return bool(sep) and not port.isdigit()


def _redact_query(tail: str) -> str:
    """``tail`` (path, query, fragment) with the values of credential-like keys masked."""
    from urllib.parse import unquote  # noqa: PLC0415

    def repl(m: re.Match[str]) -> str:
        if _SECRET_KEY.search(unquote(m[2]).lower()) and m[3]:
            return f"{m[1]}{m[2]}={MASK}"
        return m[0]

    q = tail.find("?")
    if q < 0:
        q = tail.find("#")
    return tail if q < 0 else tail[:q] + _QUERY_PAIR.sub(repl, tail[q:])


def redact_uri(uri: str) -> str:
    """A camera source URI safe to show, store and log: user info and credential-like query values masked.

    ``rtsp://user:pass@10.0.0.5:554/s?token=x`` becomes ``rtsp://***@10.0.0.5:554/s?token=***``;
    file paths, ``device:N`` and ``sim://`` are returned unchanged. Pure and total: odd input
    (IPv6 hosts, ``@`` or ``/`` in the password, no password, a truncated URI) never raises, and
    when the structure is ambiguous more is masked rather than less. The camera reader keeps the
    real URI; everything that turns a source into text (reasons, events, API, logs) uses this.
    """
    if not isinstance(uri, str):
        return f"<{type(uri).__name__}>"
    core = uri.strip()
    if core != uri:  # keep the surrounding whitespace visible (a config error may be about it)
        lead = uri[:len(uri) - len(uri.lstrip())]
        return lead + redact_uri(core) + uri[len(lead) + len(core):]
    m = _SCHEME.match(uri)
    if m is None:  # a path, device:N -- or a URI missing its scheme ("user:pass@host/s")
        at = _userinfo_end(uri)
        return f"{MASK}@{uri[at + 1:]}" if at >= 0 and ":" in uri[:at] else uri
    if m.group(1).lower() in _NO_REDACTION:
        return uri
    head, rest = m.group(0), uri[m.end():]
    at = _userinfo_end(rest)
    if at >= 0:
        return head + MASK + "@" + _redact_query(rest[at + 1:])
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if _password_without_host(authority):
        return head + MASK + _redact_query(rest[len(authority):])
    return head + _redact_query(rest)


def redact_uris(text: str) -> str:
    """``text`` with every ``scheme://`` URI in it passed through :func:`redact_uri` (log lines, errors)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m[0]), text)


def uri_secrets(uri: str) -> list[str]:
    """The secret parts of ``uri`` (user info, password, credential query values), raw and decoded."""
    from urllib.parse import unquote  # noqa: PLC0415

    if not isinstance(uri, str):
        return []
    m = _SCHEME.match(uri)
    if m is not None and m.group(1).lower() in _NO_REDACTION:
        return []
    rest = uri[m.end():] if m else uri
    found: list[str] = []
    at = _userinfo_end(rest)
    if at >= 0 and (m is not None or ":" in rest[:at]):
        info = rest[:at]
        found += [info, info.partition(":")[2]]
        rest = rest[at + 1:]
    elif m is not None:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if _password_without_host(authority):
            found.append(authority.partition(":")[2])
    found += [q[3] for q in _QUERY_PAIR.finditer(rest) if _SECRET_KEY.search(unquote(q[2]).lower())]
    out = {s for f in found for s in (f, unquote(f)) if len(s) >= _MIN_SECRET_CHARS}
    return sorted(out, key=len, reverse=True)


def redact_source_text(text: str, uri: str) -> str:
    """``text`` (an error or status message about camera ``uri``) without ``uri``'s credentials.

    The URI itself is replaced by its redacted form, any other URI in the text is redacted, and the
    secret parts of ``uri`` are masked wherever they still appear (a decoder may quote just the
    user name and password, or percent-decode them)."""
    if not isinstance(text, str) or not text:
        return text
    if isinstance(uri, str) and uri:
        text = text.replace(uri, redact_uri(uri))
    text = redact_uris(text)
    for secret in uri_secrets(uri):
        text = text.replace(secret, MASK)
    return text


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
