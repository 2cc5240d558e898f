"""The decision rule: one bed's seizure-probability stream in, alarm and review events out.

Pure and stateful per bed (no I/O, no Ray), so the coordinator can run one `BedRule` per bed,
persist it with `state_dict()` and recover it with `load_state_dict()`, and offline evaluation can
replay a recorded stream with `run_rule()`.

Formula (every time constant is in seconds, so the result does not depend on the sample rate):

    evidence      e_t = max(0, p_t - p_floor) / (1 - p_floor)              rectified weighting
    accumulator   A_t = e_t + (A_prev - e_t) * exp(-dt / tau),   tau = tau_rise_s  if e_t >= A_prev
                                                                       tau_decay_s otherwise
    review level  R_t = p_t + (R_prev - p_t) * exp(-dt / tau_review_s)

dt = t - t_prev; the sample at t is held over (t_prev, t] (a VSViG probability describes the clip
that ends at t), for which the update above is exact, so splitting an interval into more samples of
the same signal gives the same A. A stays in [0, 1]: it rises towards the evidence while evidence
persists (time constant tau_rise_s) and decays otherwise (tau_decay_s, slower, so short dips in the
probability do not end an alarm).

Alarm tier: an alarm starts at the first sample where A has stayed >= alarm_threshold for at least
min_duration_s (measured from the first sample at or above the threshold), unless a previous alarm
ended less than refractory_s ago. It ends (hysteresis) at the first sample with A < release_threshold.
While active, `alarm_update` reports each new probability peak that exceeds the last reported peak by
at least update_min_step.

Review tier: a review event starts when R has stayed >= review_threshold for review_min_duration_s and
no alarm is active or in its refractory period; it ends when R < review_release or when an alarm starts
(reason "alarm"). Review events never sound an alarm.

With the defaults (p_floor 0.4, tau_rise 3 s, alarm_threshold 0.55, min_duration 1 s) a probability
jumping to 0.9 gives e = 0.833 and an alarm after -3 ln(1 - 0.55/0.833) + 1 = 4.24 s; a 2 s spike to
1.0 lifts A to 1 - exp(-2/3) = 0.49 only, so it raises nothing.

Bad samples: a timestamp <= the last accepted one (duplicate or out of order) is ignored and counted
(`ignored_stale`); a NaN/inf probability is ignored and counted (`ignored_nonfinite`) because a stream
hiccup must not stop a bed's monitoring; a finite probability outside [0, 1] or a non-finite time is a
caller bug and raises ValueError. A gap longer than max_gap_s does not integrate across the gap: A and
R restart from 0 at the new sample (an active alarm or review ends there with reason "gap").
The first sample (and the first after a gap) only sets the reference time.

Per-bed rules: :func:`effective_rule` merges RuleConfig's defaults < the ward config's ``rules:`` < a
bed's config ``rules`` < a live dashboard override (:class:`RuleOverride`, only the fields in
LIVE_RULE_FIELDS), and validates the result with RuleConfig; :meth:`BedRule.reconfigure` applies a new
rule to a running bed without losing its state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

EventKind = Literal["alarm_start", "alarm_update", "alarm_end", "review_start", "review_end"]
STATE_VERSION = 1
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


class RuleSet(BaseModel):
    """Default rule plus per-bed partial overrides (field-by-field, validated at construction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RuleConfig = Field(default_factory=RuleConfig)
    per_bed: dict[str, dict[str, Any]] = Field(default_factory=dict)

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
        if not override:
            return self.default
        return RuleConfig.model_validate({**self.default.model_dump(), **override})


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


class RuleOverride(BaseModel):
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

    def values(self) -> dict[str, float]:
        """The fields this override sets."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    @property
    def empty(self) -> bool:
        return not self.values()


@dataclass(frozen=True)
class EffectiveRule:
    """The rule a bed runs, with where each non-default field came from."""

    config: RuleConfig
    source: RuleLayer                 # the most specific layer that set any field
    sources: dict[str, RuleLayer]     # field -> layer, for every field a layer set

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.config.model_dump(), "rule_source": self.source, "rule_sources": dict(self.sources)}


def effective_rule(ward: Mapping[str, Any] | None = None, bed: Mapping[str, Any] | None = None,
                   override: RuleOverride | Mapping[str, Any] | None = None) -> EffectiveRule:
    """The rule a bed runs: RuleConfig defaults < ward config ``rules:`` < the bed's config ``rules``
    < the dashboard override, validated by RuleConfig (RuleError naming the field and its layer).

    One pure function for the coordinator (what runs), the store (checking an override before it is
    saved) and the dashboard (what it draws when the live API is not available)."""
    layers: tuple[tuple[RuleLayer, Mapping[str, Any]], ...] = (
        ("ward", ward or {}), ("bed", bed or {}), ("override", RuleOverride.parse(override).values()))
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


@dataclass(frozen=True)
class RuleEvent:
    """One decision of the rule; `peak_probability` is the highest p of the episode so far."""

    kind: EventKind
    t: float
    tier: Literal["alarm", "review"]
    accumulator: float
    peak_probability: float
    episode_start: float
    bed_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_STATE_KEYS = ("last_t", "accumulator", "review_level", "above_since", "review_above_since",
               "alarm_active", "alarm_start", "alarm_peak", "alarm_reported_peak", "last_alarm_end",
               "review_active", "review_start", "review_peak", "ignored_stale", "ignored_nonfinite", "n_samples")


class BedRule:
    """The rule's state for one bed; feed it samples in time order with `update`."""

    def __init__(self, config: RuleConfig | None = None, bed_id: str | None = None) -> None:
        self.config = config if config is not None else RuleConfig()
        self.bed_id = bed_id
        self.reset()

    def reset(self) -> None:
        """Forget everything (as for a new bed)."""
        self.last_t: float | None = None
        self.accumulator = 0.0
        self.review_level = 0.0
        self.above_since: float | None = None
        self.review_above_since: float | None = None
        self.alarm_active = False
        self.alarm_start: float | None = None
        self.alarm_peak = 0.0
        self.alarm_reported_peak = 0.0
        self.last_alarm_end: float | None = None
        self.review_active = False
        self.review_start: float | None = None
        self.review_peak = 0.0
        self.ignored_stale = 0
        self.ignored_nonfinite = 0
        self.n_samples = 0

    def reconfigure(self, config: RuleConfig) -> RuleConfig:
        """Run the next samples under ``config`` (a live rule change); returns the previous config.

        The state is kept: the accumulator, an open alarm or review episode and the refractory clock
        carry over, and the next sample re-evaluates them under the new thresholds (e.g. an active
        alarm whose accumulator is below a raised release_threshold ends there)."""
        old, self.config = self.config, config
        return old

    # -- events -------------------------------------------------------------------------------------
    def _alarm_event(self, kind: EventKind, t: float, reason: str | None = None) -> RuleEvent:
        return RuleEvent(kind, t, "alarm", self.accumulator, self.alarm_peak, float(self.alarm_start), self.bed_id,
                         reason)

    def _review_event(self, kind: EventKind, t: float, reason: str | None = None) -> RuleEvent:
        return RuleEvent(kind, t, "review", self.review_level, self.review_peak, float(self.review_start),
                         self.bed_id, reason)

    def _end_all(self, t: float, reason: str) -> list[RuleEvent]:
        events: list[RuleEvent] = []
        if self.alarm_active:
            events.append(self._alarm_event("alarm_end", t, reason))
            self.alarm_active = False
            self.last_alarm_end = t
        if self.review_active:
            events.append(self._review_event("review_end", t, reason))
            self.review_active = False
        return events

    # -- the rule -----------------------------------------------------------------------------------
    def update(self, t: float, p: float) -> list[RuleEvent]:
        """Add the probability p of the clip ending at time t (s); return the events it causes."""
        t = float(t)
        p = float(p)
        if not math.isfinite(t):
            raise ValueError(f"sample time must be finite, got {t}")
        if self.last_t is not None and t <= self.last_t:
            self.ignored_stale += 1
            return []
        if not math.isfinite(p):
            self.ignored_nonfinite += 1
            return []
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {p} at t={t}; apply a sigmoid/clip upstream")
        c = self.config
        events: list[RuleEvent] = []
        self.n_samples += 1
        if self.last_t is None or t - self.last_t > c.max_gap_s:
            if self.last_t is not None:
                events += self._end_all(t, "gap")
            self.last_t = t
            self.accumulator = 0.0
            self.review_level = 0.0
            self.above_since = None
            self.review_above_since = None
            return events

        dt = t - self.last_t
        self.last_t = t
        e = max(0.0, p - c.p_floor) / (1.0 - c.p_floor)
        tau = c.tau_rise_s if e >= self.accumulator else c.tau_decay_s
        self.accumulator = e + (self.accumulator - e) * math.exp(-dt / tau)
        self.review_level = p + (self.review_level - p) * math.exp(-dt / c.tau_review_s)
        a = self.accumulator

        # alarm tier
        if a >= c.alarm_threshold:
            if self.above_since is None:
                self.above_since = t
        else:
            self.above_since = None
        if self.alarm_active:
            self.alarm_peak = max(self.alarm_peak, p)
            if a < c.release_threshold:
                events.append(self._alarm_event("alarm_end", t))
                self.alarm_active = False
                self.last_alarm_end = t
            elif self.alarm_peak >= self.alarm_reported_peak + c.update_min_step and self.alarm_peak > \
                    self.alarm_reported_peak:
                self.alarm_reported_peak = self.alarm_peak
                events.append(self._alarm_event("alarm_update", t))
        else:
            refractory = self.last_alarm_end is not None and t < self.last_alarm_end + c.refractory_s
            if self.above_since is not None and t - self.above_since >= c.min_duration_s and not refractory:
                if self.review_active:
                    events.append(self._review_event("review_end", t, "alarm"))
                    self.review_active = False
                self.alarm_active = True
                self.alarm_start = t
                self.alarm_peak = p
                self.alarm_reported_peak = p
                events.append(self._alarm_event("alarm_start", t))

        # review tier
        r = self.review_level
        if r >= c.review_threshold:
            if self.review_above_since is None:
                self.review_above_since = t
        else:
            self.review_above_since = None
        if self.review_active:
            self.review_peak = max(self.review_peak, p)
            if r < c.review_release:
                events.append(self._review_event("review_end", t))
                self.review_active = False
        else:
            in_refractory = self.last_alarm_end is not None and t < self.last_alarm_end + c.refractory_s
            if (not self.alarm_active and not in_refractory and self.review_above_since is not None
                    and t - self.review_above_since >= c.review_min_duration_s):
                self.review_active = True
                self.review_start = t
                self.review_peak = p
                events.append(self._review_event("review_start", t))
        return events

    # -- persistence --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (with the config) for persisting and recovering a bed."""
        return {"version": STATE_VERSION, "bed_id": self.bed_id, "config": self.config.model_dump(),
                **{k: getattr(self, k) for k in _STATE_KEYS}}

    def load_state_dict(self, state: Mapping[str, Any], keep_config: bool = False) -> None:
        """Restore a state saved by `state_dict`; raises ValueError if it does not fit.

        The saved config is restored too, unless keep_config (the bed's rule was reconfigured since).
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"rule state version {state.get('version')!r} is not supported (expected "
                             f"{STATE_VERSION}); start the bed with a fresh BedRule")
        missing = [k for k in (*_STATE_KEYS, "config") if k not in state]
        if missing:
            raise ValueError(f"rule state is missing {', '.join(missing)}; it was not made by BedRule.state_dict")
        if not keep_config:
            self.config = RuleConfig.model_validate(state["config"])
        self.bed_id = state.get("bed_id", self.bed_id)
        for k in _STATE_KEYS:
            setattr(self, k, state[k])


def run_rule(times: Iterable[float] | np.ndarray, probs: Iterable[float] | np.ndarray,
             config: RuleConfig | None = None, bed_id: str | None = None) -> list[RuleEvent]:
    """Replay a whole probability stream through a fresh BedRule (offline evaluation)."""
    return trace_rule(times, probs, config, bed_id)[0]


def trace_rule(times: Iterable[float] | np.ndarray, probs: Iterable[float] | np.ndarray,
               config: RuleConfig | None = None, bed_id: str | None = None
               ) -> tuple[list[RuleEvent], np.ndarray, np.ndarray]:
    """Like `run_rule`, also returning the accumulator A and review level R after each sample (for plots)."""
    t_arr = np.asarray(times, dtype=float).ravel()
    p_arr = np.asarray(probs, dtype=float).ravel()
    if t_arr.shape != p_arr.shape:
        raise ValueError(f"times and probs must have the same length, got {t_arr.size} and {p_arr.size}")
    rule = BedRule(config, bed_id)
    events: list[RuleEvent] = []
    acc = np.empty(t_arr.size)
    rev = np.empty(t_arr.size)
    for i, (t, p) in enumerate(zip(t_arr.tolist(), p_arr.tolist())):
        events += rule.update(t, p)
        acc[i] = rule.accumulator
        rev[i] = rule.review_level
    return events, acc, rev
