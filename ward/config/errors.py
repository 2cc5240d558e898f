"""How a bad ward configuration is reported: one ConfigError listing every problem by dotted key.

Why a module of its own: the messages are the ward's user interface for configuration (a typo must
read ``beds[1].fsp: unknown key; did you mean 'fps'?``, never a pydantic dump), and every part that
validates config-like input (the loader, the rule layers, ``ward db retention``, the batch settings
of a running deployment) reports through these same helpers.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Mapping, Sequence, Union

from pydantic import BaseModel, ValidationError

from ward.core.uris import redact_uris

__all__ = ["ConfigError", "NestedError", "dotted", "error_message", "format_validation_error", "unknown_key_message"]


class ConfigError(ValueError):
    """The ward configuration is invalid; ``problems`` holds one ``"dotted.key: message"`` per issue."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems)


class NestedError(ValueError):
    """Raised inside validators for problems below the validated field (exact dotted keys)."""

    def __init__(self, problems: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{dotted(loc)}: {msg}" for loc, msg in problems))
        self.problems = list(problems)


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (allowed: {', '.join(allowed)})"


def _short(v: Any) -> str:
    s = redact_uris(repr(v))  # a camera source in a config error must not show its credentials
    return s if len(s) <= 60 else s[:57] + "..."


_TYPE_NAMES = {"int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
               "dict": "a mapping", "list": "a list", "tuple": "a list", "model": "a mapping"}


def error_message(err: Mapping[str, Any]) -> str:
    """One human message for one pydantic error (``must be > 0 (got 0)`` style)."""
    typ: str = err["type"]
    ctx = err.get("ctx") or {}
    got = f" (got {_short(err.get('input'))})"
    for op, sym in (("greater_than_equal", ">="), ("greater_than", ">"), ("less_than_equal", "<="), ("less_than", "<")):
        if typ == op:
            key = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[op]
            bound = ctx.get(key)
            return f"must be {sym} {bound:g}{got}" if isinstance(bound, (int, float)) else f"must be {sym} {bound}{got}"
    if typ == "missing":
        return "required key is missing"
    if typ == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if typ == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (letters, digits, '_', '.', '-'; quote it in YAML){got}"
    if typ in ("too_short", "string_too_short"):
        return f"must not be empty{got}" if ctx.get("min_length") in (1, None) else f"{err['msg'].lower()}{got}"
    if typ.endswith("_type") or typ in ("model_attributes_type", "dict_type"):
        base = typ.removesuffix("_type").removesuffix("_attributes")
        want = _TYPE_NAMES.get(base)
        if want:
            return f"must be {want}{got}"
    if typ == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg']}{got}"


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class found by walking ``loc`` from ``model`` (for 'allowed keys' hints)."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            args = typing.get_args(cur)
            cur = args[0] if args else None
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        cur = cur.model_fields[part].annotation
        # unwrap Optional[X]
        if typing.get_origin(cur) in (Union, types.UnionType):
            non_none = [a for a in typing.get_args(cur) if a is not type(None)]
            cur = non_none[0] if len(non_none) == 1 else None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """``["beds[2].fps: must be > 0 (got 0)", ...]`` for a pydantic error on ``model`` (for the allowed keys)."""
    lines: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, NestedError):
            lines += [f"{dotted(loc + sub)}: {msg}" for sub, msg in inner.problems]
            continue
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = [f.alias or name for name, f in parent.model_fields.items()] if parent else []
            lines.append(f"{dotted(loc)}: {unknown_key_message(str(loc[-1]), allowed)}")
            continue
        lines.append(f"{dotted(loc) or '<top level>'}: {error_message(err)}")
    return lines


