"""Credentials out of URIs: the one redaction every layer uses for camera sources and URLs in text.

Camera and database URIs carry credentials (``rtsp://user:pass@host``, ``?token=``). The config
schema, the store, the coordinator, the camera reader and the log filter of :mod:`ward.security`
all turn URIs into text; they all use these functions, so what one masks another never shows.
Pure text, no I/O: it sits in ``core`` so that any layer may use it.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "URI_SCHEME", "redact_source_text", "redact_uri", "redact_uris", "uri_secrets"]

URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
"""``scheme://`` at the start of a URI (group 1: the scheme)."""
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
    m = URI_SCHEME.match(uri)
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
    m = URI_SCHEME.match(uri)
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
