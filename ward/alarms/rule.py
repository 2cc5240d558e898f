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

The parameters (RuleConfig) and how a bed's rule is merged from its layers (``effective_rule``:
defaults < ward config < bed config < live dashboard override) are :mod:`ward.config.rules`, the one
definition every reader shares; :meth:`BedRule.reconfigure` applies a new rule to a running bed
without losing its state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from ward.config.rules import RuleConfig

EventKind = Literal["alarm_start", "alarm_update", "alarm_end", "review_start", "review_end"]
STATE_VERSION = 1


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

    def open_episodes(self) -> list[RuleEvent]:
        """The episodes open now, each as its ``*_start`` event carrying the peak so far.

        What a consumer of the events needs besides them: the coordinator opens the episodes a
        replayed (recovered) rule holds from these, and follows each open episode's peak with every
        sample (``alarm_update`` only reports steps of update_min_step), so the rule stays the one
        bookkeeping of start, peak and end."""
        out = []
        if self.alarm_active:
            out.append(self._alarm_event("alarm_start", float(self.alarm_start)))
        if self.review_active:
            out.append(self._review_event("review_start", float(self.review_start)))
        return out

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
