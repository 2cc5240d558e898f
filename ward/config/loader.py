"""Reading a ward configuration: YAML (duplicate keys refused), a whole Serve config, or a dict.

Why a module of its own: Ray Serve reads the same file and silently ignores what it does not know,
and PyYAML silently keeps the last of two equal keys; the loader is where the ward refuses both
(one :class:`~ward.config.errors.ConfigError` naming each problem) before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from ward.config.errors import ConfigError, format_validation_error
from ward.config.schema import WardConfig

__all__ = ["SHIPPED_CONFIG", "engine_defaults", "load_ward_config", "read_yaml", "shipped_config", "ward_args"]

SHIPPED_CONFIG = Path("serve_configs/ward.yaml")
"""The ward the repository ships (relative to the repository root)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read ward config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read ward config {path}: not UTF-8 text (byte {exc.start}); "
                          "save the file as UTF-8") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from exc


def ward_args(data: Mapping[str, Any], origin: str) -> Mapping[str, Any]:
    """The ward's part of a document: the document itself, or a Serve config's application ``args``."""
    if "applications" not in data:
        return data
    apps = data["applications"]
    if not isinstance(apps, list) or not apps:
        raise ConfigError(f"{origin}: applications: must be a non-empty list of Serve applications")
    ward_apps = [(i, a) for i, a in enumerate(apps)
                 if isinstance(a, Mapping) and str(a.get("import_path", "")).startswith("ward.")]
    if len(apps) == 1 and isinstance(apps[0], Mapping):
        ward_apps = [(0, apps[0])]
    if len(ward_apps) != 1:
        raise ConfigError(f"{origin}: expected exactly one application whose import_path starts with 'ward.' "
                          f"(found {len(ward_apps)})")
    i, app = ward_apps[0]
    args = app.get("args")
    if not isinstance(args, Mapping):
        raise ConfigError(f"{origin}: applications[{i}].args: must be the ward configuration mapping "
                          f"(got {type(args).__name__})")
    return args


def _duplicate_ids(beds: Any) -> list[str]:
    """Duplicate bed ids in raw data (reported even when other bed errors stop pydantic's list check)."""
    if not isinstance(beds, list):
        return []
    first: dict[str, int] = {}
    out = []
    for i, bed in enumerate(beds):
        bid = bed.get("bed_id") if isinstance(bed, Mapping) else None
        if not isinstance(bid, str):
            continue
        if bid in first:
            out.append(f"beds[{i}].bed_id: duplicate bed id {bid!r} (also beds[{first[bid]}]); bed ids must be unique")
        else:
            first[bid] = i
    return out


def load_ward_config(source: str | os.PathLike[str] | Mapping[str, Any] | WardConfig, *,
                     validate_paths: bool = True, base_dir: str | os.PathLike[str] | None = None) -> WardConfig:
    """Validate a ward configuration: a YAML path, a dict, or a whole Serve config (its ward ``args``).

    ``validate_paths`` checks that model weight files exist and are readable (and makes them absolute,
    relative to ``base_dir``, default the current directory); turn it off only for offline checks.
    Every problem is collected into one :class:`ConfigError`.
    """
    if isinstance(source, WardConfig):
        source = source.model_dump(mode="python")
    if isinstance(source, Mapping):
        data: Any = source
        origin = "ward config"
    else:
        path = Path(source)
        data = read_yaml(path)
        origin = str(path)
    if data is None:
        raise ConfigError(f"{origin}: empty configuration (expected a mapping with beds and models)")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: the configuration must be a mapping (got {type(data).__name__})")
    data = ward_args(data, origin)
    ctx = {"validate_paths": validate_paths, "base_dir": str(base_dir) if base_dir is not None else None}
    try:
        return WardConfig.model_validate(dict(data), context=ctx)
    except ValidationError as exc:
        problems = format_validation_error(exc, WardConfig)
        problems += [p for p in _duplicate_ids(data.get("beds")) if p not in problems]
        n = len(problems)
        raise ConfigError(f"invalid ward configuration ({origin}), {n} problem{'s' if n != 1 else ''}:\n  "
                          + "\n  ".join(problems), problems) from None


def shipped_config() -> Path | None:
    """serve_configs/ward.yaml from the working directory, else from the repository ward runs from."""
    for p in (SHIPPED_CONFIG, Path(__file__).resolve().parents[2] / SHIPPED_CONFIG):
        if p.is_file():
            return p
    return None


def engine_defaults(model: str, backend: str | None = None, precision: str | None = None, *,
                    source: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(backend, precision) for ``model`` (``pose`` or ``vsvig``) in an offline tool (``ward eval``,
    ``ward dataset build``): what the command line gives, else ``models.<model>`` of a ward/Serve config
    (by default the shipped one, so the tool runs the engine the ward serves), else ``auto``."""
    if backend is not None and precision is not None:
        return backend, precision
    path = shipped_config() if source is None else Path(source)
    b, p = "auto", "auto"
    if path is not None and path.is_file():
        m = getattr(load_ward_config(path, validate_paths=False).models, model)
        b, p = m.backend, m.precision
    return backend or b, precision or p
