"""Per-bed rule overrides: the merge and its validation (pure), the override store (SQLite and
PostgreSQL), the coordinator applying them live and after a restart (no Ray), the bed view's helpers.

The ward's rule here is serve_configs/ward.yaml's (p_floor 0.8, alarm threshold 0.95, tau_rise 1.5 s):
a stream of p = 0.9 gives evidence (0.9 - 0.8) / 0.2 = 0.5, so the accumulator never reaches 0.95 and
nothing alarms. The override p_floor 0.4 / alarm threshold 0.55 makes the same stream's evidence
0.833 > 0.55: an alarm within seconds. The difference can only come from the override being applied.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from support.serve import sim_bed, ward_args
from test_alarm_coordinator import Clock
from ward.dashboard.view import override_from_form, rule_lines, shown_rule
from ward.alarms.rule import BedRule
from ward.config import LIVE_RULE_FIELDS, RuleConfig, RuleError, RuleOverride, effective_rule
from ward.core.messages import ClipScore
from ward.store import Store
from ward.store.models import BedRuleOverride
from ward.store.records import StoreError, UnknownBedError
from ward.store.rules import (OverrideDenied, bed_rule, camera_rules, current_overrides, override_history,
                              set_rule_override)

WARD_RULES = {"p_floor": 0.8, "alarm_threshold": 0.95, "tau_rise_s": 1.5, "min_duration_s": 1.0}
LIVE = {"p_floor": 0.4, "alarm_threshold": 0.55}
PW = "long-enough-pw"


# ------------------------------------------------------------------------------------------ pure
def test_merge_order_defaults_ward_bed_override() -> None:
    eff = effective_rule({"p_floor": 0.8, "alarm_threshold": 0.95, "tau_rise_s": 1.5},
                         {"alarm_threshold": 0.9, "refractory_s": 60.0},
                         {"alarm_threshold": 0.7, "min_duration_s": 5.0})
    c = eff.config
    assert (c.p_floor, c.tau_rise_s, c.refractory_s) == (0.8, 1.5, 60.0)       # ward, ward, bed
    assert (c.alarm_threshold, c.min_duration_s) == (0.7, 5.0)                   # override beats bed beats ward
    assert c.release_threshold == RuleConfig().release_threshold                 # default
    assert eff.sources == {"p_floor": "ward", "alarm_threshold": "override", "tau_rise_s": "ward",
                           "refractory_s": "bed", "min_duration_s": "override"}
    assert eff.source == "override"
    assert effective_rule({"p_floor": 0.8}, {"p_floor": 0.5}).source == "bed"
    assert effective_rule({"p_floor": 0.8}).source == "ward"
    none = effective_rule(None, None, None)
    assert none.config == RuleConfig() and none.source == "default" and none.sources == {}
    assert effective_rule({}, {}, RuleOverride()).source == "default"  # an empty override (reset) sets nothing


@pytest.mark.parametrize("override, expected", [
    ({"alarm_threshold": 1.5}, r"alarm_threshold \(from the dashboard override\): Input should be less than 1 "
                               r"\(got 1.5\)"),
    ({"p_floor": -0.1}, r"p_floor \(from the dashboard override\): Input should be greater than or equal to 0"),
    ({"min_duration_s": 600}, r"min_duration_s .*less than or equal to 120"),
    ({"release_threshold": 0.96}, r"release_threshold \(0.96\) must be below alarm_threshold \(0.95\)"),
    ({"p_floor": float("nan")}, r"p_floor: Input should be a finite number"),
    ({"min_duration_s": float("inf")}, r"min_duration_s: Input should be a finite number"),
    ({"alarm_threshold": "high"}, r"alarm_threshold: Input should be a valid number"),
    ({"tau_rise_s": 1.0}, r"tau_rise_s cannot be changed live \(only p_floor, alarm_threshold, release_threshold, "
                          r"min_duration_s\); set it in the ward config's rules"),
    ({"threshold": 0.5}, r"unknown rule field 'threshold'"),
])
def test_bad_override_is_a_rule_error_naming_the_field(override: dict[str, Any], expected: str) -> None:
    with pytest.raises(RuleError, match=expected):
        effective_rule(WARD_RULES, {}, override)


def test_override_fields_are_the_live_fields_and_the_table_columns() -> None:
    assert tuple(RuleOverride.model_fields) == LIVE_RULE_FIELDS
    assert set(LIVE_RULE_FIELDS) <= set(RuleConfig.model_fields)
    cols = set(BedRuleOverride.__table__.columns.keys())
    assert set(LIVE_RULE_FIELDS) <= cols
    assert RuleOverride.parse(None).empty and RuleOverride.parse({}).values() == {}
    assert RuleOverride.parse({"p_floor": 0.5}).values() == {"p_floor": 0.5}


def test_reconfigure_keeps_the_state_and_judges_the_next_sample_by_the_new_rule() -> None:
    rule = BedRule(RuleConfig(**LIVE))
    events = [e for t in range(12) for e in rule.update(1000.0 + t, 0.9)]
    assert [e.kind for e in events] == ["alarm_start"]
    acc, start = rule.accumulator, rule.alarm_start
    old = rule.reconfigure(effective_rule({}, {}, {"release_threshold": 0.5, "alarm_threshold": 0.99}).config)
    assert old == RuleConfig(**LIVE)
    assert rule.accumulator == acc and rule.alarm_active and rule.alarm_start == start  # nothing lost
    assert rule.update(1012.0, 0.9) == []  # A stays ~0.83 > release 0.5: the open alarm continues
    ends = [e for t in range(1013, 1040) for e in rule.update(float(t), 0.0)]
    assert [e.kind for e in ends] == ["alarm_end"]
    assert 0.3 < ends[0].accumulator < 0.5  # ended under the new release threshold (the old one was 0.3)


def test_bed_view_helpers() -> None:
    computed = effective_rule(WARD_RULES, {}, LIVE)
    lines = rule_lines(computed.config)
    assert [line.value for line in lines] == [0.4, 0.55, RuleConfig().release_threshold]
    assert "p_floor" in lines[0].label and "alarm" in lines[1].label and "release" in lines[2].label
    # no API, or an API answer without a valid rule: the database's rule, marked as not live
    for live in (None, {}, {"rule": {"p_floor": 7}, "rule_source": "ward"}, {"rule": {}, "rule_source": "nonsense"}):
        shown = shown_rule(live, computed)
        assert shown.rule == computed.config and shown.source == "override" and not shown.live
    # the running ward's rule wins; a difference is explained
    running = effective_rule(WARD_RULES).config
    shown = shown_rule({"rule": running.model_dump(), "rule_source": "ward"}, computed)
    assert shown.live and shown.rule == running and shown.source == "ward"
    assert "applies within a few seconds" in shown.note and "alarm threshold 0.55" in shown.note
    assert shown_rule({"rule": computed.config.model_dump(), "rule_source": "override"}, computed).note is None
    refused = {"rule": running.model_dump(), "rule_source": "ward", "rule_error": "invalid rule: ..."}
    assert shown_rule(refused, computed).note == "invalid rule: ..."
    # an edit overrides only what differs from the configured rule
    configured = effective_rule(WARD_RULES).config
    form = {"p_floor": 0.8, "alarm_threshold": 0.9, "release_threshold": 0.3, "min_duration_s": 1.0}
    assert override_from_form(form, configured) == {"alarm_threshold": 0.9}
    assert override_from_form({**form, "alarm_threshold": 0.95}, configured) == {}


# ----------------------------------------------------------------------------------------- store
@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    s.upsert_bed("bed-1", camera={"source": "sim://", "rules": camera_rules(WARD_RULES, {})})
    s.upsert_bed("bed-2", camera={"source": "sim://", "rules": camera_rules(WARD_RULES, {"alarm_threshold": 0.9})})
    s.upsert_bed("bed-3")  # registered without a recorded rule (e.g. by a script)
    s.create_user("boss", PW, role="admin")
    s.create_user("nurse", PW, role="clinician")
    s.ensure_service_user("svc-robot", role="admin")
    yield s
    s.close()


def _n(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_override_is_stored_with_history_and_audit(store: Store) -> None:
    assert current_overrides(store) == {}
    info = bed_rule(store, "bed-2")
    assert info.config_known and info.override is None and info.effective.source == "bed"
    assert (info.configured.p_floor, info.configured.alarm_threshold) == (0.8, 0.9)

    rec = set_rule_override(store, "bed-2", LIVE, user="boss", source="dashboard")
    assert rec is not None and rec.override.values() == LIVE and rec.username == "boss"
    assert set_rule_override(store, "bed-2", LIVE, user="boss") is None  # no change: nothing written
    assert len(override_history(store, "bed-2")) == 1
    cur = current_overrides(store)
    assert list(cur) == ["bed-2"] and cur["bed-2"].override.values() == LIVE and cur["bed-2"].source == "dashboard"
    info = bed_rule(store, "bed-2")
    assert info.effective.config == effective_rule(WARD_RULES, {"alarm_threshold": 0.9}, LIVE).config
    assert info.effective.source == "override" and info.configured.alarm_threshold == 0.9

    set_rule_override(store, "bed-2", {"min_duration_s": 3.0}, user="boss")
    set_rule_override(store, "bed-2", None, user="boss")  # reset to the configured rule
    assert [h.override.values() for h in override_history(store, "bed-2")] == [LIVE, {"min_duration_s": 3.0}, {}]
    assert bed_rule(store, "bed-2").effective.config == bed_rule(store, "bed-2").configured
    audit = [a for a in store.audit_log() if a.action == "rule.override"]
    assert [(a.username, a.detail["bed"], a.detail["old"], a.detail["new"]) for a in reversed(audit)] == [
        ("boss", "bed-2", None, LIVE), ("boss", "bed-2", LIVE, {"min_duration_s": 3.0}),
        ("boss", "bed-2", {"min_duration_s": 3.0}, None)]
    assert audit[-1].source == "dashboard" and audit[-1].detail["effective"]["alarm_threshold"] == 0.55
    # the rule as of a past time: the first change was in effect right after it was made
    first = override_history(store, "bed-2")[0]
    assert bed_rule(store, "bed-2", at=first.at).effective.config.alarm_threshold == 0.55


@pytest.mark.parametrize("user, override, error, expected", [
    ("boss", {"release_threshold": 0.97}, RuleError, "release_threshold \\(0.97\\) must be below alarm_threshold"),
    ("boss", {"alarm_threshold": 1.0}, RuleError, "alarm_threshold \\(from the dashboard override\\)"),
    ("boss", {"tau_decay_s": 5.0}, RuleError, "tau_decay_s cannot be changed live"),
    ("nurse", LIVE, OverrideDenied, "user 'nurse' has role 'clinician'; changing a bed's rule needs admin"),
    ("ghost", LIVE, OverrideDenied, "unknown user 'ghost'"),
    ("svc-robot", LIVE, OverrideDenied, "'svc-robot' is a service account"),
    ("", LIVE, StoreError, "needs the acting user's name"),
])
def test_refused_change_stores_nothing(store: Store, user: str, override: dict[str, Any], error: type,
                                       expected: str) -> None:
    before = (_n(store, "bed_rule_overrides"), _n(store, "audit_log"))
    with pytest.raises(error, match=expected):
        set_rule_override(store, "bed-1", override, user=user)
    assert (_n(store, "bed_rule_overrides"), _n(store, "audit_log")) == before
    assert bed_rule(store, "bed-1").effective.config == effective_rule(WARD_RULES).config


def test_user_disabled_after_login_cannot_change_a_rule(store: Store) -> None:
    session_user = store.authenticate("boss", PW)  # what the dashboard keeps for the session
    assert session_user is not None and session_user.role == "admin"
    store.disable_user("boss")
    with pytest.raises(OverrideDenied, match="user 'boss' is disabled"):
        set_rule_override(store, "bed-1", LIVE, user=session_user.username)
    assert current_overrides(store) == {}


def test_override_is_checked_against_the_beds_recorded_rule(store: Store) -> None:
    # bed-2's own rules make alarm_threshold 0.9: a release of 0.92 fits the ward rule but not bed-2's
    set_rule_override(store, "bed-1", {"release_threshold": 0.92}, user="boss")
    with pytest.raises(RuleError, match="must be below alarm_threshold \\(0.9\\)"):
        set_rule_override(store, "bed-2", {"release_threshold": 0.92}, user="boss")
    # no recorded rule: checked against the built-in defaults, and the view says it does not know
    info = bed_rule(store, "bed-3")
    assert not info.config_known and info.configured == RuleConfig()
    with pytest.raises(UnknownBedError, match="unknown bed 'bed-9'"):
        set_rule_override(store, "bed-9", LIVE, user="boss")


# ----------------------------------------------------------------------------------- coordinator
def _ward(tmp_path: Any, rules: dict[str, Any] = WARD_RULES) -> Any:
    from ward.config import load_ward_config

    beds = [sim_bed("bed-1", 1), sim_bed("bed-2", 2, rules={"min_duration_s": 2.0})]
    return load_ward_config(ward_args(tmp_path, beds, rules=rules))


def _start(cfg: Any, clock: Clock, store: Store | None = None) -> tuple[Any, Store]:
    """What the Coordinator deployment does at start: register the beds, then recover."""
    from ward.alarms.coordinator import WardCoordinator
    from ward.store import SpillingWriter

    store = store or Store(cfg.database.url)
    core = WardCoordinator(cfg, store, SpillingWriter(store, cfg.database.spill_dir), clock=clock)
    core.register_beds()
    core.recover()
    return core, store


def _feed(core: Any, clock: Clock, n: int, p: float) -> list[str]:
    kinds = []
    for _ in range(n):
        clock.t += 1.0
        kinds += [e["kind"] for e in core.push(ClipScore(bed_id="bed-1", t=clock.t, probability=p))
                  if e["tier"] == "alarm"]  # (p = 0.9 also opens a review item, under any of these rules)
    return kinds


def _snap(core: Any, bed: str) -> dict[str, Any]:
    return next(b for b in core.snapshot() if b["bed_id"] == bed)


def test_override_applies_live_to_the_next_samples(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    core, store = _start(_ward(tmp_path), clock)
    store.create_user("boss", PW, role="admin")
    snap = _snap(core, "bed-1")
    assert snap["rule"] == effective_rule(WARD_RULES).config.model_dump() and snap["rule_source"] == "ward"
    assert _snap(core, "bed-2")["rule_source"] == "bed" and _snap(core, "bed-2")["rule"]["min_duration_s"] == 2.0
    assert _feed(core, clock, 30, 0.9) == []  # the ward's rule: p = 0.9 never alarms
    acc = core.beds["bed-1"].rule.accumulator
    assert acc == pytest.approx(0.5, abs=1e-3)

    set_rule_override(store, "bed-1", LIVE, user="boss", source="dashboard")
    assert _feed(core, clock, 3, 0.9) == []  # not read yet: the ward still runs its configured rule
    with caplog.at_level(logging.INFO, logger="ward.serve"):
        changes = core.refresh_rules()
    assert [(c["bed_id"], c["override"], c["error"]) for c in changes] == [("bed-1", LIVE, None)]
    assert changes[0]["changed"] == {"p_floor": [0.8, 0.4], "alarm_threshold": [0.95, 0.55]}
    assert "bed bed-1: rule override {'p_floor': 0.4, 'alarm_threshold': 0.55} by boss" in caplog.text
    assert core.beds["bed-1"].rule.accumulator == pytest.approx(acc, abs=1e-3)  # state kept
    snap = _snap(core, "bed-1")
    assert snap["rule"] == effective_rule(WARD_RULES, {}, LIVE).config.model_dump()
    assert snap["rule_source"] == "override" and snap["rule_sources"]["p_floor"] == "override"
    assert snap["rule_override"]["values"] == LIVE and snap["rule_override"]["by"] == "boss"
    assert _snap(core, "bed-2")["rule_source"] == "bed"  # other beds untouched
    assert core.refresh_rules() == []  # nothing new: nothing reapplied

    kinds = _feed(core, clock, 10, 0.9)
    assert kinds == ["alarm_start"]  # the same stream now alarms, under the override
    core.flush()
    alarms = store.list_alarms(bed="bed-1", tier="alarm")
    assert len(alarms) == 1 and alarms[0].state == "active"

    # the dashboard's own computation of the rule agrees with what runs, for every bed
    for bed in ("bed-1", "bed-2"):
        assert bed_rule(store, bed).effective.config == core.beds[bed].rule.config

    # a restart (new coordinator, same database) runs the override again and keeps the one alarm
    core2, _ = _start(core.cfg, clock, store)
    assert _snap(core2, "bed-1")["rule_source"] == "override"
    assert core2.beds["bed-1"].rule.config == effective_rule(WARD_RULES, {}, LIVE).config
    assert core2.beds["bed-1"].rule.alarm_active and _feed(core2, clock, 3, 0.9) == []
    core2.flush()
    assert len(store.list_alarms(bed="bed-1", tier="alarm")) == 1

    # reset: back to the ward's rule, live
    set_rule_override(store, "bed-1", None, user="boss")
    assert core2.refresh_rules()[0]["override"] == {}
    snap = _snap(core2, "bed-1")
    assert snap["rule_source"] == "ward" and snap["rule"] == effective_rule(WARD_RULES).config.model_dump()
    assert snap["rule_override"]["values"] == {} and snap["rule_override"]["by"] == "boss"


def test_override_that_no_longer_fits_the_config_is_not_applied(tmp_path: Any,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    core, store = _start(_ward(tmp_path), clock)
    store.create_user("boss", PW, role="admin")
    set_rule_override(store, "bed-1", {"release_threshold": 0.9}, user="boss")  # fits alarm_threshold 0.95
    core.refresh_rules()
    assert core.beds["bed-1"].rule.config.release_threshold == 0.9
    # the ward config is changed (alarm threshold 0.85) and the ward restarted
    lowered = {**WARD_RULES, "alarm_threshold": 0.85}
    with caplog.at_level(logging.ERROR, logger="ward.serve"):
        core2, _ = _start(_ward(tmp_path, lowered), clock, store)
    snap = _snap(core2, "bed-1")
    assert snap["rule"] == effective_rule(lowered).config.model_dump() and snap["rule_source"] == "ward"
    assert "release_threshold (0.9) must be below alarm_threshold (0.85)" in snap["rule_error"]
    assert "running the configured rule instead" in snap["rule_error"] and "not applied" in caplog.text
    # the dashboard's view of the database agrees: the configured rule runs
    assert bed_rule(store, "bed-1").effective.config == core2.beds["bed-1"].rule.config


def test_poll_survives_an_unreadable_override_table(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    core, store = _start(_ward(tmp_path), clock)
    before = core.beds["bed-1"].rule.config
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE bed_rule_overrides RENAME TO bed_rule_overrides_away")
    with caplog.at_level(logging.WARNING, logger="ward.serve"):
        assert core.poll_rules() is False and core.poll_rules() is False
    assert caplog.text.count("cannot read rule overrides") == 1  # logged once, not at every poll
    assert core.beds["bed-1"].rule.config == before  # the bed keeps running its rule
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE bed_rule_overrides_away RENAME TO bed_rule_overrides")
    assert core.poll_rules() is True and core.rule_poll_error is None


def test_configured_rule_layers_are_recorded_with_the_bed(tmp_path: Any) -> None:
    clock = Clock()
    core, store = _start(_ward(tmp_path), clock)
    cams = {b.key: b.camera for b in store.list_beds()}
    assert cams["bed-1"]["rules"] == {"ward": WARD_RULES, "bed": {}}
    assert cams["bed-2"]["rules"] == {"ward": WARD_RULES, "bed": {"min_duration_s": 2.0}}
    core.register_beds()  # a restart with the same config adds no config history row
    assert len(store.camera_config_history("bed-1")) == 1
    assert math.isclose(bed_rule(store, "bed-2").configured.min_duration_s, 2.0)


# ------------------------------------------------------------------------------------- real Ray ward
@pytest.mark.ray
def test_real_ward_applies_a_dashboard_override_live(tmp_path: Any) -> None:
    """End to end on a small real Ray: the model here answers p = 0.98 for every clip (constant
    weights, support.serve.make_weights), and the bed's configured alarm threshold 0.99 is out of its
    reach (evidence (0.98 - 0.4) / 0.6 = 0.967), so nothing alarms until an admin's override (alarm
    threshold 0.9), written to the database as the dashboard does, reaches the running coordinator
    through its poll: /api/beds then reports it and an alarm is stored."""
    import os

    import httpx
    import ray
    from ray import serve

    from support.serve import free_port, wait_for
    from ward.serve.app import build_app

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # simulator keypoints: the override path is what is tested, not pose (whose share of a busy machine's
    # CPU once kept this bed from 5 stored samples in 180 s)
    args = ward_args(tmp_path, [sim_bed("bed-1", 1, rules={"alarm_threshold": 0.99, "release_threshold": 0.5},
                                        keypoints="simulator")],
                     vsvig_bias=3.9)
    store = Store(args["database"]["url"])
    store.create_user("boss", PW, role="admin")
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="ward", route_prefix="/")

        def bed() -> dict[str, Any]:
            r = httpx.get(f"http://127.0.0.1:{port}/api/beds", auth=("boss", PW), timeout=10)
            return r.json()[0]

        wait_for(lambda: bed()["samples_stored"] >= 5, 180, what="5 stored samples of bed-1")
        assert bed()["rule_source"] == "bed" and bed()["rule"]["alarm_threshold"] == 0.99
        assert store.list_alarms(bed="bed-1", tier="alarm") == []
        set_rule_override(store, "bed-1", {"alarm_threshold": 0.9}, user="boss", source="dashboard")
        live = wait_for(lambda: (b := bed())["rule_source"] == "override" and b, 30,  # polled every 2 s
                        what="the override in /api/beds")
        assert live["rule"]["alarm_threshold"] == 0.9 and live["rule_override"]["by"] == "boss"
        wait_for(lambda: store.list_alarms(bed="bed-1", tier="alarm"), 60, what="an alarm under the override")
    finally:
        serve.shutdown()
        ray.shutdown()
        store.close()
