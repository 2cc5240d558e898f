"""Log redaction: no password, token or frame reaches a log, whatever code wrote the record.

:func:`redact` scrubs secrets from text: passwords (``password=...``, ``"password": "..."``),
bearer and basic ``Authorization`` values, ward API tokens (``wt_...``) and URL credentials
(``postgresql://user:secret@host``, ``rtsp://...?token=``; via :func:`ward.core.uris.redact_uris`).
:class:`RedactingFilter` applies it to log records (also their exception text) and replaces array /
bytes arguments by a short summary so frames never reach a log.
:func:`install_log_redaction` makes every record created in the process pass through it (a record
factory, because logger filters do not see records propagated from child loggers) and also attaches
the filter to the handlers that exist.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any, Callable, Iterable

from ward.core.uris import redact_uris

__all__ = ["MASK", "RedactingFilter", "install_log_redaction", "redact"]

MASK = "***"


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

    URIs (``scheme://user:pass@host``, ``?token=``) go through :func:`ward.core.uris.redact_uris`, the
    same function that redacts camera sources in status reasons, events and the stored config, so the
    log net and the source redaction cannot diverge."""
    if not text:
        return text
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


