"""Pure view logic of the ward dashboard: no Streamlit, no database, so it is unit-testable.

The overview is built as one HTML block (a CSS grid of tiles with inline SVG sparklines) because a
wall screen of 64 beds must re-render in well under a second every refresh: one markdown element is
far cheaper than 64 x (metric + chart + text) Streamlit elements.
"""

from __future__ import annotations

import base64
import html
import io
import math
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ward.config import LAYER_NAMES, LIVE_RULE_FIELDS, EffectiveRule, RuleConfig
from ward.core.keypoints import OPENPOSE_18, OPENPOSE_INDEX, OPENPOSE_LIMBS

if TYPE_CHECKING:  # the record type only: this module stays free of database code
    from ward.store.queries import UnackedAlarms

# Colour stops of the risk scale: green (calm) -> amber -> red (seizure likely).
_STOPS = np.array([0.0, 0.5, 1.0])
_RGB = np.array([[46, 125, 50], [249, 168, 37], [198, 40, 40]], dtype=float)
LIMB_INDEX = np.array([[OPENPOSE_INDEX[a], OPENPOSE_INDEX[b]] for a, b in OPENPOSE_LIMBS], dtype=np.int64)
SIMULATED_LABEL = "trained on simulated data — not for clinical use"
# Only clinical alarms escalate (DESIGN §5); technical alarms are shown until acknowledged but do not
# escalate, and review items are a queue, not alarms.
ESCALATING_TIERS = ("alarm",)


def risk_colour(p: float | None) -> str:
    """Hex colour of a probability on the green-amber-red scale; grey for unknown/invalid values."""
    if p is None or not math.isfinite(p):
        return "#9e9e9e"
    p = min(max(float(p), 0.0), 1.0)
    rgb = [np.interp(p, _STOPS, _RGB[:, c]) for c in range(3)]
    return "#" + "".join(f"{int(round(v)):02x}" for v in rgb)


def format_age(seconds: float | None) -> str:
    """Short human age: '4 s', '3 min', '2 h', '5 d' ('never' for None)."""
    if seconds is None:
        return "never"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{int(s)} s"
    if s < 3600:
        return f"{int(s // 60)} min"
    if s < 86400:
        return f"{int(s // 3600)} h"
    return f"{int(s // 86400)} d"


def is_stale(updated_at: datetime | None, now: datetime, stale_after_s: float) -> bool:
    """True when a bed's newest probability is older than ``stale_after_s`` (or there is none)."""
    if stale_after_s <= 0:
        raise ValueError(f"stale_after_s must be > 0, got {stale_after_s}")
    return updated_at is None or (now - updated_at).total_seconds() > stale_after_s


def escalation_cutoff(now: datetime, escalate_after_s: float) -> datetime:
    """Alarms that started at or before this instant and are still unacknowledged are escalated (the
    same instant bounds the database's count of escalated alarms, so the two cannot disagree)."""
    if escalate_after_s <= 0:
        raise ValueError(f"escalate_after_s must be > 0, got {escalate_after_s}")
    return now - timedelta(seconds=escalate_after_s)


def is_escalated(start: datetime, acknowledged: bool, tier: str, now: datetime, escalate_after_s: float) -> bool:
    """An alarm escalates when it is a clinical alarm still unacknowledged ``escalate_after_s``
    after it started, whether it is still active or has ended (DESIGN §5: unacknowledged alarms
    escalate; review items never do)."""
    cutoff = escalation_cutoff(now, escalate_after_s)
    return tier in ESCALATING_TIERS and not acknowledged and start <= cutoff


def is_simulated_model(name: str | None, description: str | None) -> bool:
    """Whether a model version's provenance says it was trained on simulated data."""
    text = f"{name or ''} {description or ''}".lower()
    return any(w in text for w in ("simulated", "synthetic", "sim-", "sim_", "(sim)", " sim "))


def provenance_label(name: str | None, description: str | None) -> str:
    """Footer text for the model in use."""
    if not name:
        return "Model: none recorded yet (no probabilities stored)"
    label = f"Model: {name}"
    if description:
        label += f" — {description}"
    if is_simulated_model(name, description):
        label += f" · ⚠ {SIMULATED_LABEL}"
    return label


@dataclass(frozen=True)
class Tile:
    """Everything one overview tile shows."""

    bed: str
    name: str | None = None
    probability: float | None = None
    accumulator: float | None = None
    updated_at: datetime | None = None
    state: str = "unknown"           # online / degraded / offline / unknown
    reason: str | None = None
    since: datetime | None = None
    alarm: UnackedAlarms | None = None      # unacknowledged clinical alarms, active or ended
    technical: UnackedAlarms | None = None  # unacknowledged technical alarms (camera offline, ...)
    alarm_active_acked: bool = False  # a clinical alarm still active after it was acknowledged
    review: bool = False             # an active review item (second tier: nothing to acknowledge)
    spark: tuple[float, ...] = field(default_factory=tuple)

    @property
    def escalated(self) -> int:
        """Clinical alarms of the bed unacknowledged past the escalation limit (counted at build time)."""
        return self.alarm.overdue if self.alarm else 0

    @property
    def needs_ack(self) -> bool:
        return self.alarm is not None or self.technical is not None


def _waiting_since(u: UnackedAlarms) -> float:
    return u.oldest_start.timestamp()


def attention_rank(t: Tile) -> tuple[int, int, float]:
    """Sort key of a tile by what a nurse must do first (smaller is more urgent):
    0 escalated clinical alarm: nobody has answered within the limit (an ongoing one before an ended
      one: a seizure still in progress unanswered is the worst case);
    1 active unacknowledged clinical alarm: a seizure now, within the response time;
    2 ended unacknowledged clinical alarm: the patient may be post-ictal and unchecked;
    3 unacknowledged technical alarm (active first): the bed is, or was, not monitored;
    4 clinical alarm still active but acknowledged: staff know, the bed stays near the top;
    5 active review item; 6 the rest.
    Within a rank the longest-waiting alarm comes first; the caller breaks ties by bed key, so calm
    beds keep their place on the wall."""
    if t.alarm is not None:
        rank = 0 if t.alarm.overdue else 1 if t.alarm.active else 2
        return (rank, 0 if t.alarm.active else 1, _waiting_since(t.alarm))
    if t.technical is not None:
        return (3, 0 if t.technical.active else 1, _waiting_since(t.technical))
    if t.alarm_active_acked:
        return (4, 0, 0.0)
    return (5 if t.review else 6, 0, 0.0)


def order_tiles(tiles: Sequence[Tile]) -> list[Tile]:
    """Tiles most urgent first (see :func:`attention_rank`), then by bed key."""
    return sorted(tiles, key=lambda t: (*attention_rank(t), t.bed))


@dataclass(frozen=True)
class AlarmSummary:
    """The overview header's counts: what on the ward still needs acknowledgement."""

    unacked: int = 0            # clinical alarms, active or ended
    active: int = 0             # of them still active
    escalated: int = 0          # of them unacknowledged past the escalation limit
    technical: int = 0          # technical alarms, active or ended
    technical_active: int = 0   # of them still active

    @classmethod
    def of(cls, tiles: Sequence[Tile]) -> "AlarmSummary":
        alarms = [t.alarm for t in tiles if t.alarm is not None]
        tech = [t.technical for t in tiles if t.technical is not None]
        return cls(sum(u.count for u in alarms), sum(u.active for u in alarms), sum(u.overdue for u in alarms),
                   sum(u.count for u in tech), sum(u.active for u in tech))

    @property
    def sound(self) -> bool:
        """Whether the alarm tone should play: while any clinical alarm is unacknowledged, active or
        ended (the patient still needs to be seen), and while a technical alarm is active and
        unacknowledged (the bed is not monitored). A technical alarm that has ended stays on the
        tile and in the count until acknowledged, but silently: the camera is back."""
        return self.unacked > 0 or self.technical_active > 0

    def headline(self) -> str:
        """Markdown: 'N alarm(s) need acknowledgement (K active, E escalated) · T technical ...'."""
        return (f"**{self.unacked} alarm(s) need acknowledgement** ({self.active} active, {self.escalated} "
                f"escalated) · {self.technical} technical alarm(s) unacknowledged ({self.technical_active} active)")


def downsample_max(values: Sequence[float], n: int) -> list[float]:
    """Reduce a series to at most ``n`` points keeping each chunk's maximum (peaks must survive)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    v = np.asarray(values, dtype=float)
    if v.size <= n:
        return v.tolist()
    edges = np.linspace(0, v.size, n + 1).astype(int)
    return np.maximum.reduceat(v, edges[:-1]).tolist()


def sparkline_svg(values: Sequence[float], width: int = 160, height: int = 32, colour: str = "#ffffff",
                  threshold: float | None = None) -> str:
    """Inline SVG polyline of probabilities in [0, 1] (y axis fixed to [0, 1] so tiles compare)."""
    if len(values) == 0:
        return f'<svg width="{width}" height="{height}" class="spark"></svg>'
    v = np.clip(np.asarray(values, dtype=float), 0.0, 1.0)
    x = np.linspace(1, width - 1, v.size) if v.size > 1 else np.array([width / 2])
    y = (height - 1) - v * (height - 2)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
    th = ""
    if threshold is not None:
        ty = (height - 1) - min(max(threshold, 0.0), 1.0) * (height - 2)
        th = (f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{colour}" '
              'stroke-opacity="0.45" stroke-dasharray="3,3"/>')
    return (f'<svg width="{width}" height="{height}" class="spark" viewBox="0 0 {width} {height}">{th}'
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}"/></svg>')


def skeleton_svg(keypoints: np.ndarray, width: int = 240, height: int = 240, min_conf: float = 0.1,
                 trail: int = 5) -> str:
    """Stick figure(s) of recent poses as SVG: the newest pose solid, up to ``trail`` older ones faded.

    ``keypoints`` is (18, 3) or (T, 18, 3) in the OpenPose-18 layout, (x, y, confidence) in any pixel
    space; the figure is fitted to the box. Limbs with a joint below ``min_conf`` are not drawn."""
    k = np.asarray(keypoints, dtype=float)
    if k.ndim == 2:
        k = k[None]
    if k.ndim != 3 or k.shape[1:] != (len(OPENPOSE_18), 3):
        raise ValueError(f"expected keypoints of shape (T, 18, 3) in OpenPose order, got {tuple(k.shape)}")
    k = k[-(trail + 1):]
    ok = np.isfinite(k).all(-1) & (k[..., 2] >= min_conf)
    if not ok.any():
        return f'<svg width="{width}" height="{height}"><text x="8" y="20">no pose</text></svg>'
    xy = k[..., :2]
    lo, hi = xy[ok].min(0), xy[ok].max(0)
    scale = 0.9 * min(width, height) / max(float((hi - lo).max()), 1e-6)
    off = np.array([width, height]) / 2 - (lo + hi) / 2 * scale
    p = xy * scale + off                                    # (T, 18, 2) in SVG space
    seg = p[:, LIMB_INDEX]                                  # (T, L, 2, 2)
    seg_ok = ok[:, LIMB_INDEX].all(-1)                      # (T, L)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="skeleton">']
    n = k.shape[0]
    for ti, li in zip(*np.nonzero(seg_ok)):
        (x1, y1), (x2, y2) = seg[ti, li]
        op = 1.0 if ti == n - 1 else 0.15 + 0.5 * (ti + 1) / n
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#1565c0" '
                     f'stroke-opacity="{op:.2f}" stroke-width="3" stroke-linecap="round"/>')
    for (x, y) in p[-1][ok[-1]]:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#0d47a1"/>')
    parts.append("</svg>")
    return "".join(parts)


OVERVIEW_CSS = """
<style>
.ward-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:8px}
.tile{border-radius:8px;padding:8px 10px;color:#fff;font-family:sans-serif;line-height:1.25;
      border:3px solid transparent}
.tile .bed{font-weight:700;font-size:1.05em}
.tile .risk{font-size:2.1em;font-weight:800}
.tile .meta{font-size:.8em;opacity:.95}
.tile.stale{filter:grayscale(85%);opacity:.75}
.tile.offline{background:#616161 !important}
.tile.tech{border-color:#4fc3f7;border-style:dashed}
.tile.alarm{border-color:#fff;border-style:solid;animation:ward-flash 1s steps(2,start) infinite}
.tile.alarm.ended{animation:none;border-color:#ff1744;border-style:dashed}
.tile.alarm.acked{animation:none;border-color:#ffeb3b}
.tile.esc{box-shadow:0 0 0 4px #ffeb3b}
.tile .badge{display:inline-block;background:#000;color:#fff;border-radius:4px;padding:0 5px;
      font-size:.75em;font-weight:700;margin-right:4px}
.tile .badge.esc{background:#ffeb3b;color:#000}
.tile .badge.ended{background:#b71c1c}
.tile .badge.tech{background:#01579b}
.tile .unack{font-size:.8em;font-weight:700;background:rgba(0,0,0,.45);border-radius:4px;padding:1px 4px;
      margin-top:3px}
.tile .unack.tech{background:rgba(1,87,155,.85)}
@keyframes ward-flash{0%{background:#b71c1c}50%{background:#ff1744}100%{background:#b71c1c}}
</style>
"""


def _ago(at: datetime, now: datetime) -> str:
    return f"{at:%H:%M:%S} ({format_age((now - at).total_seconds())} ago)"


def unacked_line(u: UnackedAlarms, now: datetime, what: str) -> str:
    """'2 unacknowledged alarm(s) · latest #7 started 10:01:02 (3 min ago), ended 10:01:40 (2 min ago)'."""
    end = "still active" if u.latest_end is None else f"ended {_ago(u.latest_end, now)}"
    return (f"{u.count} unacknowledged {what} · latest #{u.latest_id} started {_ago(u.latest_start, now)}, "
            f"{end}")


def tile_classes(t: Tile, stale: bool) -> list[str]:
    """CSS classes: an unacknowledged clinical alarm flashes while active and keeps a dashed red
    frame once ended; escalation adds a yellow ring; technical alarms get a dashed blue frame."""
    cls = ["tile"]
    if t.alarm is not None:
        cls += ["alarm"] + ([] if t.alarm.active else ["ended"]) + (["esc"] if t.escalated else [])
    elif t.alarm_active_acked:
        cls += ["alarm", "acked"]
    if t.technical is not None:
        cls.append("tech")
    return cls + (["stale"] if stale else []) + (["offline"] if t.state == "offline" else [])


def tile_badges(t: Tile) -> str:
    """ALARM / ALARM ENDED / ALARM · ACK, ESCALATED, TECH ALARM / TECH ENDED, REVIEW."""
    badges = []
    if t.alarm is not None:
        badges.append('<span class="badge">ALARM</span>' if t.alarm.active
                      else '<span class="badge ended">ALARM ENDED</span>')
    elif t.alarm_active_acked:
        badges.append('<span class="badge">ALARM · ACK</span>')
    if t.escalated:
        badges.append('<span class="badge esc">ESCALATED</span>')
    if t.technical is not None:
        badges.append('<span class="badge tech">TECH ALARM</span>' if t.technical.active
                      else '<span class="badge tech">TECH ENDED</span>')
    if t.review and t.alarm is None and not t.alarm_active_acked:
        badges.append('<span class="badge">REVIEW</span>')
    return "".join(badges)


def tile_html(t: Tile, now: datetime, *, stale_after_s: float, threshold: float | None = None) -> str:
    """One tile: bed, risk number on its colour, the unacknowledged alarms (how many, when the latest
    started and ended), state + reason + since, update age, sparkline."""
    stale = is_stale(t.updated_at, now, stale_after_s)
    risk = "–" if t.probability is None else f"{t.probability:.2f}"
    unack = ""
    if t.alarm is not None:
        unack += f'<div class="unack">⚠ {unacked_line(t.alarm, now, "alarm(s)")}</div>'
    if t.technical is not None:
        unack += f'<div class="unack tech">{unacked_line(t.technical, now, "technical alarm(s)")}</div>'
    since = f" since {t.since:%H:%M:%S} ({format_age((now - t.since).total_seconds())})" if t.since else ""
    reason = f" — {html.escape(t.reason)}" if t.reason else ""
    age = format_age((now - t.updated_at).total_seconds()) if t.updated_at else "never"
    title = html.escape(t.name or t.bed)
    acc = "" if t.accumulator is None else f" · acc {t.accumulator:.2f}"
    return (f'<div class="{" ".join(tile_classes(t, stale))}" style="background:{risk_colour(t.probability)}" '
            f'data-bed="{html.escape(t.bed)}">'
            f'<div class="bed">{tile_badges(t)}{title}</div>'
            f'<div class="risk">{risk}</div>{unack}'
            f'<div class="meta">{html.escape(t.state)}{since}{reason}</div>'
            f'<div class="meta">updated {age} ago{acc}{" · STALE" if stale else ""}</div>'
            f'{sparkline_svg(t.spark, threshold=threshold)}</div>')


def overview_html(tiles: Sequence[Tile], now: datetime, *, stale_after_s: float,
                  threshold: float | None = None) -> str:
    """The whole overview grid, tiles in :func:`order_tiles` order."""
    body = "".join(tile_html(t, now, stale_after_s=stale_after_s, threshold=threshold) for t in order_tiles(tiles))
    return f'{OVERVIEW_CSS}<div class="ward-grid">{body}</div>'


def beep_wav_data_uri(freq_hz: float = 880.0, seconds: float = 0.4, rate: int = 8000) -> str:
    """A short alarm tone as a WAV data URI (generated, so no audio asset is shipped)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq_hz * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def window_bounds(center: datetime, pre_s: float, post_s: float) -> tuple[datetime, datetime]:
    """[center - pre, center + post] for event review; both must be non-negative."""
    if pre_s < 0 or post_s < 0:
        raise ValueError(f"pre/post window must be >= 0 s, got pre={pre_s} post={post_s}")
    return center - timedelta(seconds=pre_s), center + timedelta(seconds=post_s)


def history_resolution(since: datetime, until: datetime) -> str:
    """Timeline resolution for a date range: raw seconds up to 2 h, minutes up to 3 days, else hours
    (keeps a plot under ~7 200 points whatever range is chosen)."""
    span = (until - since).total_seconds()
    if span <= 0:
        raise ValueError("empty or inverted date range: 'from' must be before 'to'")
    return "1s" if span <= 7200 else "1m" if span <= 3 * 86400 else "1h"


# ------------------------------------------------------------------------------ bed view: the rule

@dataclass(frozen=True)
class RuleLine:
    """One horizontal line of the bed's rule on the timeline (which curve it applies to in the label)."""

    label: str
    value: float


@dataclass(frozen=True)
class ShownRule:
    """The rule the bed view draws: the one the ward runs (live API) when it answers, else the one
    computed from the database with the same merge function (``ward.config.effective_rule``)."""

    rule: RuleConfig
    source: str                 # layer that set it: default / ward / bed / override
    live: bool                  # True: as reported by the running ward
    note: str | None = None     # why it may differ from what the database says


def rule_lines(rule: RuleConfig) -> list[RuleLine]:
    """The lines that decide the bed's alarms: evidence starts above p_floor (probability curve); an
    alarm starts when the accumulator stays above alarm_threshold and ends below release_threshold."""
    return [RuleLine("p_floor (probability: evidence above)", rule.p_floor),
            RuleLine("alarm threshold (accumulator)", rule.alarm_threshold),
            RuleLine("release threshold (accumulator)", rule.release_threshold)]


def rule_lines_chart(lines: Sequence[RuleLine]) -> Any:
    """Altair layer of dashed rules, each value in the spec itself (``y: {datum: v}``), to add to a
    timeline chart."""
    import altair as alt  # noqa: PLC0415 (only the drawing needs it)

    colours = ("#6d4c41", "#1565c0", "#90a4ae")
    return alt.layer(*[alt.Chart(alt.Data(values=[{}])).mark_rule(strokeDash=[5, 4], color=colours[i % 3])
                       .encode(y=alt.datum(line.value), tooltip=alt.value(f"{line.label}: {line.value:g}"))
                       for i, line in enumerate(lines)])


def _rule_text(r: RuleConfig, b: str = "") -> str:
    return (f"p_floor {b}{r.p_floor:.2f}{b} · alarm threshold {b}{r.alarm_threshold:.2f}{b} · release threshold "
            f"{b}{r.release_threshold:.2f}{b} · min duration {b}{r.min_duration_s:g} s{b}")


def rule_summary(shown: ShownRule) -> str:
    """Markdown line: the live fields of the rule and where it comes from."""
    origin = "running in the ward" if shown.live else "from the ward's configuration and overrides in the database"
    return f"{_rule_text(shown.rule, '**')} — source: **{LAYER_NAMES[shown.source]}** ({origin})"


def shown_rule(live_bed: Mapping[str, Any] | None, computed: EffectiveRule) -> ShownRule:
    """Prefer the rule the ward reports for the bed (``rule``/``rule_source`` of /api/beds); fall back
    to ``computed`` when the API is not configured or its answer has no valid rule. A difference is
    explained (an override saved moments ago, or one the ward refused)."""
    if live_bed and isinstance(live_bed.get("rule"), Mapping) and live_bed.get("rule_source") in LAYER_NAMES:
        try:
            rule = RuleConfig.model_validate(live_bed["rule"])
        except ValueError:
            rule = None
        if rule is not None:
            note = live_bed.get("rule_error")
            if not note and rule != computed.config:
                note = (f"the database holds {_rule_text(computed.config)}; a change saved moments ago "
                        "applies within a few seconds")
            return ShownRule(rule, str(live_bed["rule_source"]), True, note)
    return ShownRule(computed.config, computed.source, False)


def override_from_form(values: Mapping[str, float], configured: RuleConfig) -> dict[str, float]:
    """The override an edit means: the live fields whose value differs from the configured rule (the
    others follow the ward config, also when it changes later). Empty: back to the configured rule."""
    return {k: float(v) for k, v in values.items()
            if k in LIVE_RULE_FIELDS and not math.isclose(float(v), getattr(configured, k), abs_tol=1e-12)}
