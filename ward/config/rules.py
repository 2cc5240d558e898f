"""The decision rule's parameters and how a bed's rule is put together: one definition, typed.

Why a module of its own: the parameters are read by the ward config (``rules:`` ward-wide and per
bed), the store (checking a dashboard override before it is saved), the dashboard (what it draws)
and the rule itself (:mod:`ward.alarms.rule`). Defining them once here, below all of those, gives
every reader the same bounds, the same cross-field checks and the same error messages.

Layers: :func:`effective_rule` merges RuleConfig's defaults < the ward config's ``rules:`` < a bed's
config ``rules`` < a live dashboard override (:class:`RuleOverride`, only the fields in
LIVE_RULE_FIELDS), and validates the result with RuleConfig. The config layers are
:class:`RulePatch` (a partial RuleConfig: each field with RuleConfig's own type and bounds, absent
meaning "not set by this layer").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_serializer, model_validator
from pydantic.fields import FieldInfo

from ward.config.errors import error_message, unknown_key_message

MAX_MIN_DURATION_S = 120.0


class RuleConfig(BaseModel):
    """Parameters of the accumulative rule (all durations and time constants in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p_floor: float = Field(0.4, ge=0.0, lt=1.0, description="probabilities at or below give no evidence")
    tau_rise_s: float = Field(3.0, gt=0.0, description="time constant while evidence exceeds A")
    tau_decay_s: float = Field(10.0, gt=0.0, description="time constant while A decays")
    alarm_threshold: float = Field(0.55, gt=0.0, lt=1.0)
    release_threshold: float = Field(0.3, gt=0.0, lt=1.0)
    min_duration_s: float = Field(1.0, ge=0.0, le=MAX_MIN_DURATION_S,
                                  description="A must stay above alarm_threshold this long (an alarm held back "
                                              "longer is no early warning)")
    refractory_s: float = Field(30.0, ge=0.0, description="no new alarm this long after one ends")
    update_min_step: float = Field(0.05, ge=0.0, le=1.0, description="peak increase that gives alarm_update")
    tau_review_s: float = Field(10.0, gt=0.0)
    review_threshold: float = Field(0.35, gt=0.0, lt=1.0)
    review_release: float = Field(0.25, gt=0.0, lt=1.0)
    review_min_duration_s: float = Field(10.0, ge=0.0)
    max_gap_s: float = Field(10.0, gt=0.0, description="longer gaps restart the accumulators")

    @model_validator(mode="after")
    def _ordering(self) -> "RuleConfig":
        if self.release_threshold >= self.alarm_threshold:
            raise ValueError(f"release_threshold ({self.release_threshold}) must be below alarm_threshold "
                             f"({self.alarm_threshold}) for hysteresis; lower release_threshold")
        if self.review_release >= self.review_threshold:
            raise ValueError(f"review_release ({self.review_release}) must be below review_threshold "
                             f"({self.review_threshold}); lower review_release")
        if self.tau_decay_s < self.tau_rise_s:
            raise ValueError(f"tau_decay_s ({self.tau_decay_s}) must be >= tau_rise_s ({self.tau_rise_s}) so "
                             "short dips do not end an alarm; raise tau_decay_s")
        return self


class _RuleValues(BaseModel):
    """A partial rule: the fields a layer sets (None: not set, the layer below applies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        return self.values().items()

    def values(self) -> dict[str, Any]:
        """The fields this layer sets."""
        return {k: v for k, v in self if v is not None}

    @property
    def empty(self) -> bool:
        return not self.values()


class _PatchBase(_RuleValues):
    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: Any) -> dict[str, Any]:
        # dumped as written (only the set fields), so a dumped ward config loads back unchanged
        return {k: v for k, v in handler(self).items() if v is not None}


def _unset(field: FieldInfo) -> FieldInfo:
    """RuleConfig's field (type, bounds, description) with "not set" as its default; the default is
    not validated, so an explicit ``null`` is still refused with RuleConfig's type message."""
    return FieldInfo.merge_field_infos(field, default=None)


RulePatch: type[_PatchBase] = create_model(  # type: ignore[call-overload]
    "RulePatch", __base__=_PatchBase, __module__=__name__,
    __doc__="A config layer of the rule (the ward's ``rules:`` or a bed's ``rules``): any RuleConfig fields, "
            "each checked alone with RuleConfig's type and bounds (the cross-field checks run on the merged rule).",
    **{name: (f.annotation, _unset(f)) for name, f in RuleConfig.model_fields.items()})


class RuleSet(BaseModel):
    """Default rule plus per-bed partial overrides (field-by-field, validated at construction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RuleConfig = Field(default_factory=RuleConfig)
    per_bed: dict[str, RulePatch] = Field(default_factory=dict)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _validate_overrides(self) -> "RuleSet":
        for bed in self.per_bed:
            try:
                self.config_for(bed)
            except ValueError as exc:
                raise ValueError(f"rule override for bed {bed!r} is invalid: {exc}") from exc
        return self

    def config_for(self, bed_id: str) -> RuleConfig:
        """The default config with this bed's overrides applied (the default if it has none)."""
        override = self.per_bed.get(bed_id)
        if override is None or override.empty:
            return self.default
        return RuleConfig.model_validate({**self.default.model_dump(), **override.values()})


# -- live per-bed overrides ------------------------------------------------------------------------
# The rule fields an admin may change on a running bed. They only change how the next samples are
# judged: the accumulator keeps its meaning, so a bed's state (A, an open episode) stays valid and the
# next sample re-evaluates it under the new values. The time constants (tau_*) would change the
# meaning of the stored accumulator and stay in the ward config.
LIVE_RULE_FIELDS: tuple[str, ...] = ("p_floor", "alarm_threshold", "release_threshold", "min_duration_s")
RuleLayer = Literal["default", "ward", "bed", "override"]
RULE_LAYERS: tuple[RuleLayer, ...] = ("default", "ward", "bed", "override")  # merge order, weakest first
LAYER_NAMES: dict[str, str] = {"default": "built-in default", "ward": "ward config rules",
                               "bed": "bed config rules", "override": "dashboard override"}


class RuleError(ValueError):
    """An invalid rule or rule override; the message names each bad field, where its value came from
    and what is allowed."""


def _rule_error(exc: ValidationError, what: str, sources: Mapping[str, str] | None = None) -> RuleError:
    """One readable RuleError from pydantic's errors (field, source layer, bound, the value given)."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not field:  # a cross-field check of RuleConfig: its message names the fields
            parts.append(msg)
            continue
        origin = f" (from the {LAYER_NAMES[sources[field]]})" if sources and field in sources else ""
        parts.append(f"{field}{origin}: {msg} (got {err.get('input')!r})")
    return RuleError(f"invalid {what}: " + "; ".join(parts))


class RuleOverride(_RuleValues):
    """A bed's live rule override: the values an admin set (None = not overridden, the configured
    value applies). Type-checked here (finite numbers, known fields only); the bounds and cross-field
    checks are RuleConfig's, applied by :func:`effective_rule` on the merged rule, so there is one
    home of rule validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    p_floor: float | None = None
    alarm_threshold: float | None = None
    release_threshold: float | None = None
    min_duration_s: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_live_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if key in RuleConfig.model_fields and key not in LIVE_RULE_FIELDS:
                    raise ValueError(f"{key} cannot be changed live (only {', '.join(LIVE_RULE_FIELDS)}); "
                                     "set it in the ward config's rules")
                if key not in LIVE_RULE_FIELDS:
                    raise ValueError(f"unknown rule field {key!r}; a live override may set "
                                     f"{', '.join(LIVE_RULE_FIELDS)}")
        return data

    @classmethod
    def parse(cls, data: "RuleOverride | Mapping[str, Any] | None") -> "RuleOverride":
        """An override from a mapping (None/empty: no override); RuleError naming the bad field."""
        if isinstance(data, RuleOverride):
            return data
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise _rule_error(exc, "rule override") from None


@dataclass(frozen=True)
class EffectiveRule:
    """The rule a bed runs, with where each non-default field came from."""

    config: RuleConfig
    source: RuleLayer                 # the most specific layer that set any field
    sources: dict[str, RuleLayer]     # field -> layer, for every field a layer set

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.config.model_dump(), "rule_source": self.source, "rule_sources": dict(self.sources)}


RuleLayerValues = _RuleValues | Mapping[str, Any] | None


def _layer_values(layer: RuleLayerValues) -> Mapping[str, Any]:
    return layer.values() if isinstance(layer, _RuleValues) else (layer or {})


def effective_rule(ward: RuleLayerValues = None, bed: RuleLayerValues = None,
                   override: RuleOverride | Mapping[str, Any] | None = None) -> EffectiveRule:
    """The rule a bed runs: RuleConfig defaults < ward config ``rules:`` < the bed's config ``rules``
    < the dashboard override, validated by RuleConfig (RuleError naming the field and its layer).

    One pure function for the coordinator (what runs), the store (checking an override before it is
    saved) and the dashboard (what it draws when the live API is not available)."""
    layers: tuple[tuple[RuleLayer, Mapping[str, Any]], ...] = (
        ("ward", _layer_values(ward)), ("bed", _layer_values(bed)),
        ("override", RuleOverride.parse(override).values()))
    merged: dict[str, Any] = {}
    sources: dict[str, RuleLayer] = {}
    for layer, values in layers:
        for key, value in values.items():
            merged[key], sources[key] = value, layer
    try:
        config = RuleConfig.model_validate(merged)
    except ValidationError as exc:
        raise _rule_error(exc, "rule", sources) from None
    source = max(sources.values(), key=RULE_LAYERS.index, default="default")
    return EffectiveRule(config, source, sources)




def validate_rule_overrides(overrides: Mapping[str, Any], rule_cls: type[BaseModel] = RuleConfig,
                            base: Mapping[str, Any] | None = None) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems (sub-key, message) of a partial rule dict applied over ``base`` and ``rule_cls``'s defaults,
    in the ward config's words (what :class:`~ward.config.WardConfig` reports at ``rules`` and
    ``beds[i].rules``).

    Unknown keys are reported by name (with the closest known field); value errors come from
    ``rule_cls`` itself, so the rule's own cross-field checks also apply to the merged layers. A
    problem of a ``base`` value the override does not touch is left out (reported once, at the base).
    """
    if not isinstance(overrides, Mapping):
        return [((), f"must be a mapping of rule parameters (got {type(overrides).__name__})")]
    known = list(rule_cls.model_fields)
    problems: list[tuple[tuple[str | int, ...], str]] = [
        ((str(key),), unknown_key_message(str(key), known)) for key in overrides if key not in known]
    if problems:
        return problems
    try:
        rule_cls.model_validate({**(base or {}), **overrides})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc and loc[0] not in overrides and base and loc[0] in base:
                continue  # the ward-wide value is reported once, at `rules`
            problems.append((loc, error_message(err)))
    return problems


__all__ = ["LAYER_NAMES", "LIVE_RULE_FIELDS", "MAX_MIN_DURATION_S", "RULE_LAYERS", "EffectiveRule", "RuleConfig",
           "RuleError", "RuleLayer", "RuleOverride", "RulePatch", "RuleSet", "effective_rule",
           "validate_rule_overrides"]
