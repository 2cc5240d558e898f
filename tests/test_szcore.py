"""ward's event metrics against the SzCORE scorer (timescoring) on hand-made events (issue 16 item 5).

Where the conventions coincide (mirrored parameters) the two must agree exactly; each documented
difference is exercised by one case where the numbers must differ by exactly that convention.
"""

from __future__ import annotations

import pytest

from ward.alarms.rule import run_rule
from ward.config import RuleConfig
from ward.evaluation.metrics import DAY_S, Recording, SeizureAnnotation, evaluate, event_intervals
from ward.evaluation.szcore import SZCORE_DEFAULT, score_recording, szcore_crosscheck


def sz(e: float, end: float, typ: str = "tonic") -> SeizureAnnotation:
    return SeizureAnnotation(typ, e, e + 0.3 * (end - e), end)


def rec(rid: str, duration: float, seizures, alarms: list[tuple[float, float]]) -> Recording:
    return Recording(rid, duration, seizures, alarm_times=[a for a, _ in alarms], alarm_intervals=alarms)


def conv(cc, name):
    return next(c for c in cc.conventions if c.name == name)


def test_ward_and_szcore_agree_on_hits_misses_and_false_alarms_across_recordings():
    recs = [
        # two seizures: the first hit twice (one detection), the second missed; two false alarms
        rec("a", 3600, [sz(600, 660), sz(2000, 2040)], [(612.3, 615), (710.7, 715), (1500.2, 1510), (3000.4, 3010)]),
        # an alarm 95 s after the seizure's end (past the 60 s post tolerance): a false alarm and a miss
        rec("b", 1800, [sz(300, 330, "myoclonic")], [(425.1, 430)]),
        # seizure-free footage with one false alarm, and one recording that is all quiet
        rec("c", 7200, [], [(4000.5, 4100)]),
        rec("d", 900, [], []),
    ]
    ward = evaluate(recs)
    assert (ward["n_seizures"], ward["n_detected"], ward["false_alarms"]) == (3, 1, 4)
    cc = szcore_crosscheck(recs)
    assert cc.mirrored_agrees
    m = cc.szcore_mirrored
    assert (m.n_seizures, m.n_detected, m.false_alarms) == (3, 1, 4)
    assert m.sensitivity == ward["sensitivity"] == pytest.approx(1 / 3)
    # the same false alarms per 24 h once both use ward's non-seizure denominator ...
    assert m.false_alarms_per_24h_non_seizure == pytest.approx(ward["false_alarms_per_24h"])
    # ... while SzCORE's own figure divides by the whole recording time (summed over recordings)
    total_s = 3600 + 1800 + 7200 + 900
    assert m.hours == pytest.approx(total_s / 3600)
    assert m.false_alarms_per_24h == pytest.approx(4 / total_s * DAY_S)
    assert cc.ward.hours == pytest.approx(ward["hours_non_seizure"])
    # no convention bites on these events, so SzCORE's defaults give the same counts too
    for name in ("event merging", "event splitting", "detection window", "time grid"):
        assert conv(cc, name).occurrences == 0, name
    d = cc.szcore_default
    assert (d.n_seizures, d.n_detected, d.false_alarms) == (3, 1, 4)
    # aggregation = sums over recordings of timescoring's own per-recording counts
    per = [score_recording(r, SZCORE_DEFAULT) for r in recs]
    assert sum(s.tp for s in per) == d.n_detected and sum(s.fp for s in per) == d.false_alarms


def test_merging_closer_than_90_s_joins_seizures_and_alarms():
    # seizures 60 s apart: SzCORE counts one event; the alarm on the first detects "both".
    # alarms 80 s apart (first ends 150, second starts 230): merged, the second is no false alarm.
    r = rec("m", 3600, [sz(100, 160), sz(220, 240)], [(120, 150), (330, 340)])
    cc = szcore_crosscheck([r])
    assert (cc.ward.n_seizures, cc.ward.n_detected, cc.ward.false_alarms) == (2, 1, 1)  # 330 > 240 + 60
    assert cc.mirrored_agrees
    d = cc.szcore_default
    assert (d.n_seizures, d.n_detected) == (1, 1)  # the two seizures merged into one, detected
    assert d.false_alarms == 1  # 330-340: 180 s after the first alarm (not merged), past 240 + 60 s
    assert conv(cc, "event merging").occurrences == 1  # the seizure gap (the alarm gap is 180 s)
    r2 = rec("m2", 3600, [sz(100, 160)], [(120, 150), (230, 235)])
    cc2 = szcore_crosscheck([r2])
    assert cc2.ward.false_alarms == 1  # 230 > 160 + 60
    assert cc2.szcore_default.false_alarms == 0  # merged into the detecting alarm (gap 80 s < 90 s)
    assert cc2.szcore_mirrored.false_alarms == 1 and conv(cc2, "event merging").occurrences == 1


def test_splitting_longer_than_5_min_counts_a_long_seizure_several_times():
    r = rec("s", 3600, [sz(100, 800)], [(150, 160)])
    cc = szcore_crosscheck([r])
    assert (cc.ward.n_seizures, cc.ward.n_detected) == (1, 1)
    assert (cc.szcore_mirrored.n_seizures, cc.szcore_mirrored.n_detected) == (1, 1)
    # 100-400, 400-700, 700-800: the alarm overlaps only the first widened piece (70-460)
    assert (cc.szcore_default.n_seizures, cc.szcore_default.n_detected) == (3, 1)
    assert conv(cc, "event splitting").occurrences == 1


def test_overlap_instead_of_start_in_window():
    # the alarm starts 10 s before EEG onset and lasts into the seizure
    r = rec("o", 3600, [sz(100, 160)], [(90, 130)])
    cc = szcore_crosscheck([r])
    assert (cc.ward.n_detected, cc.ward.false_alarms) == (0, 1)  # pre tolerance 0: a false alarm and a miss
    assert (cc.szcore_mirrored.n_detected, cc.szcore_mirrored.false_alarms) == (0, 1) and cc.mirrored_agrees
    assert (cc.szcore_default.n_detected, cc.szcore_default.false_alarms) == (1, 0)
    assert conv(cc, "detection window").occurrences == 1
    # with ward's pre tolerance at 30 s, ward detects it too and the mirrored scorer follows
    cc30 = szcore_crosscheck([r], pre_tolerance_s=30.0)
    assert (cc30.ward.n_detected, cc30.szcore_mirrored.n_detected, cc30.ward.false_alarms) == (1, 1, 0)


def test_false_alarm_denominator_is_the_only_difference_in_the_rate():
    r = rec("f", 86400, [sz(1000, 1100)], [(1010, 1020), (5000, 5005), (9000, 9005)])
    cc = szcore_crosscheck([r])
    assert cc.ward.false_alarms == cc.szcore_default.false_alarms == 2
    assert cc.szcore_default.false_alarms_per_24h == pytest.approx(2.0)  # per 24 h of recording
    non_seizure = 86400 - (1100 + 60 - 1000)
    assert cc.ward.false_alarms_per_24h == pytest.approx(2 / non_seizure * DAY_S)
    assert cc.szcore_default.false_alarms_per_24h_non_seizure == pytest.approx(cc.ward.false_alarms_per_24h)


def test_time_grid_edge_is_the_documented_disagreement():
    # an alarm exactly at end + post: inside ward's closed window, outside timescoring's half-open one
    r = rec("g", 3600, [sz(100, 160)], [(220.0, 225.0)])
    cc = szcore_crosscheck([r])
    assert (cc.ward.n_detected, cc.ward.false_alarms) == (1, 0)
    assert (cc.szcore_mirrored.n_detected, cc.szcore_mirrored.false_alarms) == (0, 1)
    assert not cc.mirrored_agrees and conv(cc, "time grid").occurrences == 1


def test_alarm_intervals_come_from_the_rule_and_open_alarms_end_with_the_recording():
    t = [i / 6 for i in range(6 * 120)]
    p = [0.95 if 20 <= x < 40 or x >= 100 else 0.0 for x in t]
    ev = run_rule(t, p, RuleConfig())
    iv = event_intervals(ev, 120.0)
    assert len(iv) == 2 and 20 < iv[0][0] < iv[0][1] < 60 and 100 < iv[1][0] and iv[1][1] == 120.0
    assert [a for a, _ in iv] == [e.t for e in ev if e.kind == "alarm_start"]


def test_cross_check_table_prints(capsys):
    from rich.console import Console

    from ward.evaluation.run import print_szcore

    cc = szcore_crosscheck([rec("o", 3600, [sz(100, 160)], [(90, 130)])]).to_dict()
    print_szcore(cc, Console(width=200))
    out = capsys.readouterr().out
    assert "SzCORE default" in out and "detection window (1)" in out
