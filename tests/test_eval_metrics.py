"""Detection-metric arithmetic on a tiny hand-built case (every expected value computed by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ward.alarms.rule import run_rule
from ward.evaluation.metrics import Recording, SeizureAnnotation, clip_rmse, evaluate, event_times, summary_rows

TC, FC = "tonic_clonic", "focal_clonic"


def recordings():
    a = Recording("A", 3600.0,
                  [SeizureAnnotation(TC, 100.0, 115.0, 175.0), SeizureAnnotation(FC, 1000.0, 1020.0, 1060.0)],
                  alarm_times=[104.0, 130.0, 1030.0, 1500.0, 3000.0], review_times=[150.0])
    b = Recording("B", 7200.0, [SeizureAnnotation(TC, 500.0, 505.0, 600.0)],
                  alarm_times=[499.0], review_times=[2000.0])
    return [a, b]


def test_hand_built_case():
    r = evaluate(recordings(), pre_tolerance_s=0.0, post_tolerance_s=60.0)
    assert {"sensitivity", "median_latency_after_eeg_s", "median_advance_before_clinical_s",
            "false_alarms_per_24h", "hours_non_seizure", "per_type", "baseline"} <= r.keys()
    assert r["sensitivity"] == pytest.approx(2 / 3)
    # detected: A/TC by the alarm at 104 (latency 4, advance 11), A/FC by 1030 (latency 30, advance -10)
    assert [s["latency_after_eeg_s"] for s in r["seizures"]] == [4.0, 30.0, None]
    assert [s["advance_before_clinical_s"] for s in r["seizures"]] == [11.0, -10.0, None]
    assert r["seizures"][0]["alarms_in_window"] == 2  # the alarm at 130 is not a false alarm
    assert r["median_latency_after_eeg_s"] == pytest.approx(17.0)
    assert r["mean_latency_after_eeg_s"] == pytest.approx(17.0)
    assert r["median_advance_before_clinical_s"] == pytest.approx(0.5)
    # windows: A [100, 235] + [1000, 1120] = 255 s, B [500, 660] = 160 s
    non_seizure = 3600 - 135 - 120 + 7200 - 160
    assert r["hours_non_seizure"] == pytest.approx(non_seizure / 3600)
    assert r["hours_total"] == pytest.approx(3.0)
    assert r["false_alarms"] == 3  # 1500, 3000 in A; 499 in B is 1 s before its EEG onset
    assert r["false_alarms_per_24h"] == pytest.approx(3 / non_seizure * 86400)
    assert r["review_events_per_24h"] == pytest.approx(1 / non_seizure * 86400)
    assert r["review_events_in_seizures"] == 1
    tc, fc = r["per_type"][TC], r["per_type"][FC]
    assert (tc["n_seizures"], tc["n_detected"], tc["sensitivity"]) == (2, 1, 0.5)
    assert tc["median_latency_after_eeg_s"] == 4.0 and tc["median_advance_before_clinical_s"] == 11.0
    assert (fc["sensitivity"], fc["median_latency_after_eeg_s"], fc["median_advance_before_clinical_s"]) == \
        (1.0, 30.0, -10.0)
    assert r["baseline"] is None
    json.dumps(r, allow_nan=False)  # valid JSON, no NaN
    rows = summary_rows(r)
    assert [row["group"].strip() for row in rows] == ["all", FC, TC]


def test_pre_tolerance_moves_early_alarm_into_window():
    r = evaluate(recordings(), pre_tolerance_s=5.0, post_tolerance_s=60.0)
    assert r["sensitivity"] == 1.0
    assert r["seizures"][2]["latency_after_eeg_s"] == -1.0
    assert r["seizures"][2]["advance_before_clinical_s"] == 6.0
    non_seizure = 3600 - 140 - 125 + 7200 - 165
    assert r["false_alarms"] == 2
    assert r["false_alarms_per_24h"] == pytest.approx(2 / non_seizure * 86400)


def test_overlapping_and_clipped_windows_count_once():
    rec = Recording("C", 1000.0, [SeizureAnnotation("tonic", 100, 110, 150), SeizureAnnotation("tonic", 180, 185, 200),
                                  SeizureAnnotation("myoclonic", 950, 955, 990)], alarm_times=[190.0])
    r = evaluate([rec], post_tolerance_s=60.0)
    # [100, 210] U [180, 260] = [100, 260]; [950, 1050] clipped to [950, 1000]
    assert r["hours_non_seizure"] == pytest.approx((1000 - 160 - 50) / 3600)
    # the alarm at 190 lies in both windows: it detects both tonic seizures (latencies 90 and 10)
    assert [s["latency_after_eeg_s"] for s in r["seizures"]] == [90.0, 10.0, None]
    assert r["false_alarms"] == 0 and r["false_alarms_per_24h"] == 0.0
    assert r["per_type"]["myoclonic"]["sensitivity"] == 0.0
    assert r["per_type"]["myoclonic"]["median_latency_after_eeg_s"] is None


def test_undefined_figures_are_none():
    only_seizure = Recording("D", 100.0, [SeizureAnnotation("tonic", 0, 5, 50)], alarm_times=[200.0])
    r = evaluate([only_seizure], post_tolerance_s=60.0)
    assert r["hours_non_seizure"] == 0.0 and r["false_alarms_per_24h"] is None
    quiet = evaluate([Recording("E", 86400.0, alarm_times=[10.0, 20.0])])
    assert quiet["sensitivity"] is None and quiet["false_alarms_per_24h"] == pytest.approx(2.0)


def test_clip_rmse_and_rule_events_feed_the_metrics():
    assert clip_rmse([0.0, 1.0, 0.5], [0.0, 0.0, 1.0]) == pytest.approx(np.sqrt(1.25 / 3))
    with pytest.raises(ValueError, match="same length"):
        clip_rmse([0.1], [0.1, 0.2])
    t = np.arange(0.0, 600.0, 1.0)
    p = np.where((t >= 200) & (t < 260), 0.95, 0.02)
    ev = run_rule(t, p)
    rec = Recording("F", 600.0, [SeizureAnnotation(TC, 195.0, 205.0, 260.0)],
                    alarm_times=event_times(ev), review_times=event_times(ev, "review_start"))
    r = evaluate([rec], clip_pred=p, clip_target=(p > 0.5).astype(float))
    alarm = event_times(ev)[0]
    assert r["seizures"][0]["latency_after_eeg_s"] == alarm - 195.0
    assert r["clip_rmse"] == pytest.approx(np.sqrt(np.mean(np.where(p > 0.5, 0.05, 0.02) ** 2)))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="eeg_onset <= clinical_onset"):
        SeizureAnnotation("tonic", 10.0, 5.0, 20.0)
    with pytest.raises(ValueError, match="duration_s"):
        Recording("x", 0.0)
    with pytest.raises(ValueError, match="tolerances"):
        evaluate(recordings(), pre_tolerance_s=-1)
    with pytest.raises(ValueError, match="both"):
        evaluate(recordings(), clip_pred=[0.1])


def test_roc_auc_matches_the_pairwise_count_with_ties():
    from ward.evaluation.metrics import roc_auc

    rng = np.random.default_rng(3)
    pos = rng.integers(0, 6, 40) / 5.0          # few distinct values: many ties within and across classes
    neg = rng.integers(0, 4, 55) / 5.0
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(pos, neg) == pytest.approx(pairs / (len(pos) * len(neg)), abs=1e-12)
    assert roc_auc([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert roc_auc([0.1], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5
    assert roc_auc([], [0.1]) is None and roc_auc([0.1], []) is None
    with pytest.raises(ValueError, match="finite"):
        roc_auc([float("nan")], [0.1])
