"""Every figure the docs quote comes from a committed JSON that exists, and the headline ones match it.

The docs (README.md, docs/**/*.md, models/*.md) name the JSON in docs/results/ behind each measured
figure and the benchmark script that wrote it. These tests fail when such a file is missing (a moved
or deleted JSON, a renamed script), when docs/results/ holds a file its index does not list, when a
benchmark JSON lacks the record of what it was measured on, and when a headline detection figure in
the docs differs from its JSON (a number edited by hand, or a JSON re-measured without the doc).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "models").glob("*.md")])
RESULT_REF = re.compile(r"docs/(?:results|eval)/[\w.\-]+\.(?:json|png|yaml)")
OUTPUT_REF = re.compile(r"--json\s+(docs/(?:results|eval)/[\w.\-]+\.json)")
SCRIPT_REF = re.compile(r"benchmarks/\w+\.py")
NOT_MEASURED = "not re-measured"
MACHINE_KEYS = ("cpu_model", "loadavg_start", "loadavg_end", "time_utc", "git_commit", "command")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def blocks(text: str) -> list[str]:
    """Paragraphs and code blocks: text split at blank lines."""
    return re.split(r"\n\s*\n", text)


def load(name: str) -> dict[str, Any]:
    path = RESULTS / name
    assert path.is_file(), f"{rel(path)} is missing: the docs quote figures from it"
    return json.loads(path.read_text())


def doc_number(doc: str, pattern: str, after: str | None = None) -> list[str]:
    """The groups of the first match of `pattern` in `doc` (after the text `after`, when given).

    Runs of whitespace count as one space, so reflowing a paragraph does not break the test.
    """
    text = " ".join((ROOT / doc).read_text().split())
    if after is not None:
        assert after in text, f"{doc}: expected the text {after!r}; update this test if the doc was reworded"
        text = text[text.index(after):]
    m = re.search(pattern, text)
    assert m, f"{doc}: no line matches {pattern!r}; update this test if the doc was reworded"
    return list(m.groups())


def same(shown: str, value: float, scale: float = 1.0) -> bool:
    """Whether `shown` (as the doc prints it) is `value * scale` rounded to the digits shown."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(float(shown) - value * scale) <= 0.5 * 10 ** -decimals + 1e-9


def check(where: str, shown: str, value: float, scale: float = 1.0) -> None:
    """Fail with both numbers when the doc's figure is not the JSON's value."""
    assert same(shown, value, scale), f"{where}: the doc says {shown}, the JSON has {value * scale:g}"


def test_docs_exist() -> None:
    assert (ROOT / "README.md") in DOCS and len(DOCS) > 10


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_referenced_results_and_benchmarks_exist(doc: Path) -> None:
    """A doc may name a JSON it has not measured yet only as a `--json` target after 'not re-measured'."""
    missing: list[str] = []
    parts = blocks(doc.read_text())
    for i, block in enumerate(parts):
        planned = {m for m in OUTPUT_REF.findall(block)
                   if NOT_MEASURED in (block + (parts[i - 1] if i else "")).lower()}
        for ref in RESULT_REF.findall(block):
            if not (ROOT / ref).is_file() and ref not in planned:
                missing.append(ref)
        missing += [ref for ref in SCRIPT_REF.findall(block) if not (ROOT / ref).is_file()]
    assert not missing, f"{rel(doc)} names files that do not exist: {sorted(set(missing))}"


def test_results_index_lists_every_file() -> None:
    index = (RESULTS / "README.md").read_text()
    unlisted = [p.name for p in sorted(RESULTS.iterdir()) if p.name != "README.md" and f"`{p.name}`" not in index]
    assert not unlisted, f"docs/results/README.md does not list {unlisted}: say which command wrote them"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("bench_*.json")), ids=lambda p: p.name)
def test_benchmark_json_records_the_machine(path: Path) -> None:
    machine = json.loads(path.read_text()).get("machine", {})
    lacking = [k for k in MACHINE_KEYS if k not in machine]
    assert not lacking, f"{path.name}: machine record lacks {lacking}; re-run it with benchmarks/_util.report"


def test_detection_headline_matches_eval_24h() -> None:
    ev, doc = load("eval_24h.json"), "docs/detection.md"
    sens, det, n = doc_number(doc, r"\| VSViG \+ chosen rule \| \*\*(\d+) %\*\* \((\d+)/(\d+)\)")
    check(f"{doc} sensitivity", sens, ev["sensitivity"], 100)
    assert (int(det), int(n)) == (ev["n_detected"], ev["n_seizures"]), f"{doc}: detected {det}/{n}"
    fa, n_fa, hours = doc_number(doc, r"\| \*\*([\d.]+)\*\* \((\d+) in ([\d.]+) h\) \|")
    check(f"{doc} false alarms/24 h", fa, ev["false_alarms_per_24h"])
    check(f"{doc} false alarms", n_fa, ev["false_alarms"])
    check(f"{doc} hours without seizures", hours, ev["hours_non_seizure"])
    b = ev["baseline"]
    bsens, bfa, bn = doc_number(doc, r"\| motion baseline, same rule[^|]*\| (\d+) % \|"
                                r"(?:[^|]*\|){3} ([\d.]+) \((\d+)\) \|")
    check(f"{doc} baseline sensitivity", bsens, b["sensitivity"], 100)
    check(f"{doc} baseline false alarms/24 h", bfa, b["false_alarms_per_24h"])
    check(f"{doc} baseline false alarms", bn, b["false_alarms"])
    (review,) = doc_number(doc, r"Review events \(the non-alarm tier, not false alarms\): ([\d.]+) per 24 h")
    check(f"{doc} review events/24 h", review, ev["review_events_per_24h"])


def test_full_path_figures_match_eval_full_6h() -> None:
    """The held-out full path's row in docs/detection.md, the README and the VSViG card are its JSON's."""
    ev, doc = load("eval_full_6h.json"), "docs/detection.md"
    hours, sens, det, n, fa, n_fa, review = doc_number(
        doc, r"\| full path, ([\d.]+) h without seizures \| (\d+) % \((\d+)/(\d+)\) \|(?:[^|]*\|){3} "
        r"([\d.]+) \((\d+)\) \| ([\d.]+) \|")
    check(f"{doc} full-path hours without seizures", hours, ev["hours_non_seizure"])
    check(f"{doc} full-path sensitivity", sens, ev["sensitivity"], 100)
    assert (int(det), int(n)) == (ev["n_detected"], ev["n_seizures"]), f"{doc}: full path detected {det}/{n}"
    check(f"{doc} full-path false alarms/24 h", fa, ev["false_alarms_per_24h"])
    check(f"{doc} full-path false alarms", n_fa, ev["false_alarms"])
    check(f"{doc} full-path review events/24 h", review, ev["review_events_per_24h"])
    rsens, rdet, rfa, rreview = doc_number("README.md", r"Through the pose model \(the full path, [\d.]+ h held-out\) "
                                           r"it also detected (\d+) % \((\d+)/\d+\), with \d+ false alarms? in "
                                           r"[\d.]+ h \(([\d.]+) per 24 h\) and ([\d.]+) review events")
    check("README.md full-path sensitivity", rsens, ev["sensitivity"], 100)
    assert int(rdet) == ev["n_detected"], f"README.md: full path detected {rdet}"
    check("README.md full-path false alarms/24 h", rfa, ev["false_alarms_per_24h"])
    check("README.md full-path review events/24 h", rreview, ev["review_events_per_24h"])
    card = "models/ward-vsvig-light.md"
    csens, chours, cfa = doc_number(card, r"\| VSViG \| all \| \d+ \| \d+ \| (\d+) % \|.*?False alarms per 24 h on "
                                    r"([\d.]+) h of non-seizure footage: VSViG ([\d.]+)", after="Held-out full path")
    check(f"{card} full-path sensitivity", csens, ev["sensitivity"], 100)
    check(f"{card} full-path hours", chours, ev["hours_non_seizure"])
    check(f"{card} full-path false alarms/24 h", cfa, ev["false_alarms_per_24h"])


def test_false_alarm_causes_match_their_json() -> None:
    summary, doc = load("eval_24h_false_alarms.json")["summary"], "docs/detection.md"
    turning, total = doc_number(doc, r"(\d+) of the (\d+) false alarms started within 30 s after")
    check(f"{doc} false alarms after a turning-over", turning, summary["preceded_by_turning_over"])
    check(f"{doc} false alarms", total, summary["false_alarms"])
    check(f"{doc} false alarms (eval_24h.json)", total, load("eval_24h.json")["false_alarms"])
    before, total2 = doc_number(doc, r"a caregiver was in the room during those 30 s for (\d+) of the (\d+)")
    check(f"{doc} false alarms with a caregiver before", before, summary["preceded_by_kind"].get("caregiver", 0))
    check(f"{doc} false alarms", total2, summary["false_alarms"])
    (care,) = doc_number(doc, r"a caregiver was in the room at the alarm's start for (\d+)")
    check(f"{doc} false alarms with a caregiver at the start", care, summary["caregiver_at_start"])


def test_validation_figures_match_their_json() -> None:
    val, doc = load("eval_validation.json"), "docs/detection.md"
    sens, fa, n_fa = doc_number(doc, r"On validation \(`docs/results/eval_validation.json`\): "
                                r"([\d.]+) % sensitivity, ([\d.]+) false alarms/24 h \((\d+) in")
    check(f"{doc} validation sensitivity", sens, val["sensitivity"], 100)
    check(f"{doc} validation false alarms/24 h", fa, val["false_alarms_per_24h"])
    check(f"{doc} validation false alarms", n_fa, val["false_alarms"])
    dflt = load("eval_validation_default_rule.json")
    dsens, dfa = doc_number(doc, r"with the built-in default rule[^:]*: (\d+) % sensitivity and "
                            r"([\d.]+) false alarms/24 h")
    check(f"{doc} validation sensitivity, default rule", dsens, dflt["sensitivity"], 100)
    check(f"{doc} validation false alarms/24 h, default rule", dfa, dflt["false_alarms_per_24h"])


def test_model_cards_match_their_json() -> None:
    ev, card = load("eval_24h.json"), "models/ward-vsvig-light.md"
    hours, fa, n_fa = doc_number(card, r"False alarms per 24 h on ([\d.]+) h of non-seizure "
                                 r"footage: VSViG ([\d.]+) \((\d+) alarms\)", after="Held-out detection benchmark")
    check(f"{card} hours without seizures", hours, ev["hours_non_seizure"])
    check(f"{card} false alarms/24 h", fa, ev["false_alarms_per_24h"])
    check(f"{card} false alarms", n_fa, ev["false_alarms"])
    pose = load("model_ward-pose-small.json")["metrics"]
    for doc in ("models/ward-pose-small.md", "models/README.md", "docs/detection.md"):
        (pck,) = doc_number(doc, r"PCK@0\.1 (0\.\d+)")
        check(f"{doc} PCK@0.1", pck, pose["pck@0.1"])
