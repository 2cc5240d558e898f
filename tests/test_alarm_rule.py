"""The accumulative alarm rule on hand-made probability streams."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from ward.alarms.rule import BedRule, run_rule, trace_rule
from ward.config import RuleConfig, RuleSet


def kinds(events):
    return [e.kind for e in events]


def starts(events, tier="alarm"):
    return [e.t for e in events if e.kind == f"{tier}_start"]


def step_stream(dt=1.0, t_end=120.0, on=10.0, off=None, high=0.9, low=0.05):
    t = np.arange(0.0, t_end, dt)
    p = np.where((t >= on) & ((t < off) if off is not None else True), high, low)
    return t, p


def test_sustained_high_probability_alarms_with_hand_computed_latency():
    c = RuleConfig()
    t, p = step_stream(dt=1.0, on=10.0, high=0.9)
    events = run_rule(t, p, c)
    # sample at t=10 is held over (9, 10]; A(t) = e (1 - exp(-(t - 9) / tau_rise)) while rising
    e = (0.9 - c.p_floor) / (1 - c.p_floor)
    t_cross = 9.0 + -c.tau_rise_s * math.log(1 - c.alarm_threshold / e)
    first_above = math.ceil(t_cross)  # first 1 Hz sample with A >= threshold
    expected = first_above + c.min_duration_s
    assert starts(events) == [expected]
    start = events[0]
    assert start.accumulator == pytest.approx(e * (1 - math.exp(-(expected - 9.0) / c.tau_rise_s)))
    assert start.peak_probability == pytest.approx(0.9)
    assert 3.0 <= expected - 10.0 <= 6.0  # "a few seconds"


def test_short_spike_raises_nothing():
    for width in (1.0, 2.0):
        t, p = step_stream(on=10.0, off=10.0 + width, high=1.0)
        _, acc, _ = trace_rule(t, p)
        assert run_rule(t, p) == []
        assert acc.max() < RuleConfig().alarm_threshold


def test_alarm_ends_after_release_and_refractory_blocks_second_alarm():
    c = RuleConfig(refractory_s=60.0)
    t = np.arange(0.0, 300.0, 1.0)
    p = np.where(((t >= 10) & (t < 40)) | ((t >= 70) & (t < 100)), 0.95, 0.0)
    ev = run_rule(t, p, c)
    assert len(starts(ev)) == 1 and 12.0 <= starts(ev)[0] <= 15.0
    end = [e for e in ev if e.kind == "alarm_end"]
    assert len(end) == 1
    # after t=40 A decays from ~e with tau_decay until below release
    assert end[0].accumulator < c.release_threshold
    assert end[0].t < 70  # ended before the second burst, which falls inside the refractory period
    # without the refractory period the second burst alarms
    ev2 = run_rule(t, p, c.model_copy(update={"refractory_s": 0.0}))
    assert len(starts(ev2)) == 2 and starts(ev2)[1] > 70


def test_hysteresis_keeps_alarm_through_short_dip():
    t = np.arange(0.0, 120.0, 1.0)
    p = np.where((t >= 10) & (t < 60) & ~((t >= 30) & (t < 33)), 0.9, 0.0)
    ev = run_rule(t, p)
    assert starts(ev) == [14.0]
    ends = [e.t for e in ev if e.kind == "alarm_end"]
    assert len(ends) == 1 and ends[0] > 60  # no end during the 3 s dip
    # with a release threshold just below the alarm threshold, the dip ends the alarm
    tight = RuleConfig(alarm_threshold=0.75, release_threshold=0.7)  # A drops 0.83 -> 0.62 in the dip
    ends_tight = [e.t for e in run_rule(t, p, tight) if e.kind == "alarm_end"]
    assert ends_tight and 30 <= ends_tight[0] <= 33


def test_alarm_update_reports_new_peaks():
    t = np.arange(0.0, 60.0, 1.0)
    p = np.where(t >= 10, 0.8, 0.0)
    p[t >= 20] = 0.86
    p[t >= 25] = 0.88  # +0.02 < update_min_step: no update
    p[t >= 30] = 0.99
    ev = [e for e in run_rule(t, p) if e.kind == "alarm_update"]
    assert [e.t for e in ev] == [20.0, 30.0]
    assert [e.peak_probability for e in ev] == pytest.approx([0.86, 0.99])


def test_review_tier_for_sustained_moderate_probability_without_alarm():
    c = RuleConfig()
    t, p = step_stream(dt=1.0, t_end=200.0, on=10.0, off=150.0, high=0.6)
    ev = run_rule(t, p, c)
    assert starts(ev) == []
    assert len(starts(ev, "review")) == 1
    # R = 0.6 (1 - exp(-(t - 9) / tau_review)) crosses 0.35 at t = 9 + 10 ln(0.6 / 0.25) = 17.75 -> 18; +10 s
    assert starts(ev, "review")[0] == 28.0
    assert all(e.tier == "review" for e in ev)
    assert kinds(ev) == ["review_start", "review_end"]


def test_review_is_ended_and_suppressed_by_alarm():
    t = np.arange(0.0, 200.0, 1.0)
    p = np.where(t >= 10, 0.6, 0.0)
    p[t >= 40] = 0.95
    ev = run_rule(t, p)
    assert kinds(ev)[:3] == ["review_start", "review_end", "alarm_start"]
    assert ev[1].reason == "alarm" and ev[1].t == ev[2].t
    assert "review_start" not in kinds(ev)[3:]


def test_per_bed_override_changes_outcome():
    rules = RuleSet(default=RuleConfig(), per_bed={"bed-2": {"alarm_threshold": 0.4, "release_threshold": 0.2}})
    assert rules.config_for("bed-1") == RuleConfig()
    assert rules.config_for("bed-2").alarm_threshold == 0.4
    assert rules.config_for("bed-2").tau_rise_s == RuleConfig().tau_rise_s
    t, p = step_stream(on=10.0, high=0.7)  # e = 0.5: A tends to 0.5 < 0.55 default threshold
    assert starts(run_rule(t, p, rules.config_for("bed-1"))) == []
    assert len(starts(run_rule(t, p, rules.config_for("bed-2")))) == 1


def test_invalid_configs_are_rejected_with_clear_messages():
    with pytest.raises(ValidationError, match="release_threshold"):
        RuleConfig(alarm_threshold=0.5, release_threshold=0.6)
    with pytest.raises(ValidationError, match="review_release"):
        RuleConfig(review_threshold=0.3, review_release=0.3)
    with pytest.raises(ValidationError):
        RuleConfig(alarm_threshold=1.5)
    with pytest.raises(ValidationError):
        RuleConfig(tau_rise_s=0)
    with pytest.raises(ValidationError, match="extra"):
        RuleConfig(alarm_treshold=0.5)
    with pytest.raises(ValidationError, match="bed-3"):
        RuleSet(per_bed={"bed-3": {"release_threshold": 0.9}})
    with pytest.raises(ValidationError, match="bed-4"):
        RuleSet(per_bed={"bed-4": {"no_such_field": 1}})


def test_open_episodes_carry_the_running_peak():
    """What the coordinator derives its episodes from besides the events: each open episode as its start
    event, with the peak of every sample so far (alarm_update only reports steps of update_min_step)."""
    rule = BedRule(RuleConfig(update_min_step=0.5), bed_id="b")
    assert rule.open_episodes() == []
    starts_seen = []
    for t, p in zip(range(0, 30), [0.9] * 20 + [0.93] * 10):
        starts_seen += [e for e in rule.update(float(t), p) if e.kind == "alarm_start"]
    (start,) = starts_seen
    alarm = [e for e in rule.open_episodes() if e.tier == "alarm"]
    assert len(alarm) == 1 and alarm[0].kind == "alarm_start" and alarm[0].bed_id == "b"
    assert alarm[0].episode_start == alarm[0].t == start.t
    assert alarm[0].peak_probability == 0.93 > start.peak_probability  # no alarm_update for that step
    for t in range(30, 80):
        rule.update(float(t), 0.0)
    assert rule.open_episodes() == []


def test_state_dict_round_trip_continues_identically():
    t = np.arange(0.0, 200.0, 0.5)
    rng = np.random.default_rng(0)
    p = np.clip(np.where((t > 20) & (t < 80), 0.85, 0.2) + rng.normal(0, 0.15, t.size), 0, 1)
    whole = BedRule(RuleConfig(), "bed-1")
    ev_whole = [e for ti, pi in zip(t, p) for e in whole.update(ti, pi)]
    for cut in (30, 50, 150, 300):
        a = BedRule(RuleConfig(), "bed-1")
        ev = [e for ti, pi in zip(t[:cut], p[:cut]) for e in a.update(ti, pi)]
        saved = json.loads(json.dumps(a.state_dict()))  # must survive JSON
        b = BedRule()
        b.load_state_dict(saved)
        ev += [e for ti, pi in zip(t[cut:], p[cut:]) for e in b.update(ti, pi)]
        assert ev == ev_whole
        assert b.accumulator == whole.accumulator and b.bed_id == "bed-1"
    assert len(starts(ev_whole)) == 1
    reconfigured = BedRule(RuleConfig(alarm_threshold=0.9, release_threshold=0.5))
    reconfigured.load_state_dict(whole.state_dict(), keep_config=True)
    assert reconfigured.config.alarm_threshold == 0.9 and reconfigured.accumulator == whole.accumulator
    with pytest.raises(ValueError, match="missing"):
        BedRule().load_state_dict({"version": 1})
    with pytest.raises(ValueError, match="version"):
        BedRule().load_state_dict({"version": 99})


@pytest.mark.parametrize("on", [10.0, 17.3, 33.7])
def test_sample_rate_independence(on):
    def signal(t):  # a smooth ramp to 0.9 like the label's rise, then a plateau
        return np.clip((t - on) / 8.0, 0, 1) * 0.9

    t1 = np.arange(0.0, 120.0, 1.0)
    t5 = np.arange(0.0, 120.0, 0.2)
    a1, a5 = starts(run_rule(t1, signal(t1))), starts(run_rule(t5, signal(t5)))
    assert len(a1) == len(a5) == 1
    assert abs(a1[0] - a5[0]) <= 1.0
    _, acc1, _ = trace_rule(t1, signal(t1))
    _, acc5, _ = trace_rule(t5, signal(t5))
    # at common times the accumulators agree closely (only the sample-and-hold of the ramp differs)
    assert np.allclose(acc1[20:], acc5[::5][20:], atol=0.06)
    # for a piecewise-constant signal whose steps fall on both grids, the update is exact
    step = lambda t: np.where(t > 9.1, 0.9, 0.0)  # noqa: E731  (both grids hold 0.9 over (9, ...])
    _, b1, _ = trace_rule(t1 + 1.0, step(t1 + 1.0))
    _, b5, _ = trace_rule(t5 + 1.0, step(t5 + 1.0))
    assert np.allclose(b1[1:], b5[5::5], atol=1e-12)


def test_stale_nonfinite_and_out_of_range_samples():
    r = BedRule()
    r.update(0.0, 0.1)
    r.update(1.0, 0.9)
    acc = r.accumulator
    assert r.update(1.0, 1.0) == [] and r.update(0.5, 1.0) == []
    assert r.ignored_stale == 2 and r.accumulator == acc
    assert r.update(2.0, float("nan")) == [] and r.ignored_nonfinite == 1 and r.accumulator == acc
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        r.update(3.0, 1.7)
    with pytest.raises(ValueError, match="finite"):
        r.update(float("inf"), 0.5)
    with pytest.raises(ValueError, match="same length"):
        run_rule([0, 1, 2], [0.1, 0.2])


def test_gap_restarts_evidence_and_ends_alarm():
    c = RuleConfig(max_gap_s=5.0, refractory_s=0.0)
    # high p with a 20 s hole: without the gap rule the decay over the hole would be integrated as evidence
    t = np.concatenate([np.arange(0.0, 13.0), np.arange(33.0, 60.0)])
    p = np.where(t >= 8, 0.95, 0.0)
    r = BedRule(c)
    evs = {ti: r.update(ti, pi) for ti, pi in zip(t, p)}
    assert r.accumulator > 0.5
    e = (0.95 - c.p_floor) / (1 - c.p_floor)
    latency = -c.tau_rise_s * math.log(1 - c.alarm_threshold / e)  # 2.75 s of evidence to cross
    assert kinds(evs[math.ceil(7.0 + latency) + 1.0]) == ["alarm_start"]
    assert [(e.kind, e.reason) for e in evs[33.0]] == [("alarm_end", "gap")]
    # the restart after the gap needs the full latency again: sample 33 sets the reference
    later = [ti for ti, ev in evs.items() if "alarm_start" in kinds(ev) and ti > 33]
    assert later == [math.ceil(33.0 + latency) + c.min_duration_s]
