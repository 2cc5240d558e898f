"""Scenarios as data: what one simulated bed camera shows, fully determined by its fields and seed.

A Scenario can be written by hand (YAML/JSON), generated (`random_scenario`) or given as a URI usable
as a camera source in the ward config. Fields left empty (seizure times, sides, amplitudes, the
patient's appearance) are filled deterministically from the seed when the model is validated, so a
validated Scenario is always fully resolved and `model_dump()` round-trips to the same simulation.

URI grammar (``sim://[PATH][?QUERY]``):

    sim://?seed=3&duration=600&seizure=tonic_clonic@120          one tonic-clonic seizure, EEG onset at 120 s
    sim://?seed=3&seizure=focal_clonic@60:12:40&seizure=tonic      EEG onset 60 s, gap 12 s, 40 s clinical; a random-time tonic
    sim://?seed=5&seizures=0&behaviour=shivering@30+20&event=lights_off@0+600
    sim://scenarios/night.yaml?fps=6&width=640&height=360        a file (relative or sim:///absolute), with overrides

Query keys: seed (int), duration (s), fps, width, height, view (ceiling|bed_end), noise (camera noise
sigma, fraction of 255), loop (0|1: the live camera restarts at the end), patient (patient id),
seizure=TYPE[@EEG_ONSET[:GAP[:CLINICAL_DURATION]]] (repeatable; TYPE may be "random"),
seizures=N (that many random seizures when no seizure= is given; default 1), types=a,b (random seizure
types to draw from), behaviour=KIND@START+DURATION and event=KIND@START+DURATION (repeatable), auto=0|1
(default 1: fill the free time with a random behaviour and event schedule). Unknown keys are errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Sequence
from urllib.parse import unquote

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ward.sim.behaviours import BEHAVIOURS, DURATION_RANGE, SCENE_EVENTS
from ward.sim.seizures import CLINICAL_DURATION, ONSET_GAP, POST_ICTAL, SEIZURE_TYPES, SUBTLE_SIGNS, SeizurePlan

Side = Literal["left", "right"]
BGR = tuple[int, int, int]

BehaviourKind = Literal["turning_over", "reaching_cup", "scratching", "adjusting_blanket", "sitting_up",
                        "talking", "restless_legs", "shivering"]
EventKind = Literal["caregiver", "lights_off", "camera_shake", "compression"]
SeizureType = Literal["focal_clonic", "tonic", "tonic_clonic", "hypermotor", "myoclonic"]
assert set(BehaviourKind.__args__) == set(BEHAVIOURS) and set(EventKind.__args__) == set(SCENE_EVENTS)  # type: ignore[attr-defined]
assert set(SeizureType.__args__) == set(SEIZURE_TYPES)  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BehaviourSpec(_Strict):
    """One scheduled behaviour (or scene event)."""

    kind: BehaviourKind
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    side: Side | None = None
    intensity: float = Field(default=1.0, ge=0, le=2)


class EventSpec(_Strict):
    kind: EventKind
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    side: Side | None = None
    intensity: float = Field(default=1.0, ge=0, le=2)


class SeizureSpec(_Strict):
    """A seizure; any field left None is drawn from the scenario seed."""

    type: SeizureType
    eeg_onset_s: float | None = Field(default=None, ge=0)
    clinical_onset_s: float | None = Field(default=None, ge=0)
    end_s: float | None = Field(default=None, gt=0)
    post_ictal_s: float | None = Field(default=None, ge=0)
    side: Side | None = None
    amplitude: float | None = Field(default=None, gt=0, le=2)
    signs: list[Literal["head_version", "hand_twitch", "facial_twitch", "automatism"]] | None = None

    def plan(self, seed: int) -> SeizurePlan:
        """The resolved SeizurePlan (all fields must be set: validate a Scenario first)."""
        assert None not in (self.eeg_onset_s, self.clinical_onset_s, self.end_s, self.post_ictal_s,
                            self.side, self.amplitude, self.signs), "unresolved seizure: validate the Scenario"
        return SeizurePlan(self.type, float(self.eeg_onset_s), float(self.clinical_onset_s), float(self.end_s),
                           float(self.post_ictal_s), 1 if self.side == "right" else -1, float(self.amplitude),
                           tuple(self.signs or ()), seed)


class Appearance(_Strict):
    """Patient and room look; drawn from the seed when absent."""

    skin: BGR
    hair: BGR
    shirt: BGR
    trousers: BGR
    blanket: BGR
    sheet: BGR
    floor: BGR
    wall: BGR
    body_scale: float = Field(ge=0.7, le=1.2)
    pelvis_x: float = Field(ge=-0.15, le=0.15)
    blanket_top: float = Field(ge=0.5, le=2.05, description="blanket edge, m from the head end of the mattress "
                               "(0.72-0.98 drawn by default: hips and legs covered; 1.9-2.05: folded at the foot "
                               "end, legs uncovered)")
    camera_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)


class Scenario(_Strict):
    """Everything one simulated camera shows. Validation fills unset fields from `seed`."""

    seed: int = 0
    duration_s: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    fps: float = Field(default=25.0, gt=0, le=120)
    width: int = Field(default=1280, ge=64, le=3840)
    height: int = Field(default=720, ge=48, le=2160)
    view: Literal["ceiling", "bed_end"] = "ceiling"
    patient_id: str | None = None
    noise: float = Field(default=0.015, ge=0, le=0.2)
    loop: bool = False
    behaviours: list[BehaviourSpec] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    seizures: list[SeizureSpec] = Field(default_factory=list)
    appearance: Appearance | None = None

    @model_validator(mode="after")
    def _resolve(self) -> "Scenario":
        if self.patient_id is None:
            self.patient_id = f"sim{self.seed:05d}"
        if self.appearance is None:
            self.appearance = random_appearance(np.random.default_rng([self.seed, 11]))
        for i, b in enumerate([*self.behaviours, *self.events]):
            if b.side is None:
                b.side = "right" if np.random.default_rng([self.seed, 13, i]).random() < 0.5 else "left"
        self.seizures = [_resolve_seizure(s, self.seed, i, self.duration_s) for i, s in enumerate(self.seizures)]
        return self

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    def plans(self) -> list[SeizurePlan]:
        return [s.plan(self.seed * 1000 + i) for i, s in enumerate(self.seizures)]


def random_appearance(rng: np.random.Generator) -> Appearance:
    def col(lo: int, hi: int) -> BGR:
        return tuple(int(v) for v in rng.integers(lo, hi, size=3))  # type: ignore[return-value]

    skins = [(180, 200, 235), (140, 170, 215), (100, 135, 185), (70, 95, 140), (50, 70, 105)]
    sk = np.array(skins[rng.integers(len(skins))]) + rng.integers(-10, 10, size=3)
    return Appearance(
        skin=tuple(int(v) for v in np.clip(sk, 0, 255)), hair=col(10, 90), shirt=col(60, 230), trousers=col(40, 200),
        blanket=col(90, 240), sheet=tuple(int(v) for v in np.clip(235 + rng.integers(-20, 15, 3), 0, 255)),
        floor=col(80, 180), wall=col(150, 230), body_scale=float(rng.uniform(0.88, 1.08)),
        pelvis_x=float(rng.uniform(-0.08, 0.08)), blanket_top=float(rng.uniform(0.72, 0.98)),
        camera_jitter=tuple(float(v) for v in rng.uniform(-1, 1, size=3)),
    )


def _resolve_seizure(s: SeizureSpec, seed: int, index: int, duration: float) -> SeizureSpec:
    rng = np.random.default_rng([seed, 17, index])
    gap = float(rng.uniform(*ONSET_GAP))
    clin = float(rng.uniform(*CLINICAL_DURATION[s.type]))
    eeg, cl, end = s.eeg_onset_s, s.clinical_onset_s, s.end_s
    if eeg is None and cl is None:
        eeg = float(rng.uniform(0.15, 0.6) * duration)
    if eeg is None:
        eeg = max(0.0, cl - gap)  # type: ignore[operator]
    if cl is None:
        cl = eeg + gap
    if end is None:
        end = cl + clin
    if not (eeg <= cl < end):
        raise ValueError(f"seizure {index} ({s.type}): need eeg_onset_s <= clinical_onset_s < end_s, got "
                         f"{eeg}, {cl}, {end}")
    if eeg >= duration:
        raise ValueError(f"seizure {index} ({s.type}): EEG onset {eeg} s is after the scenario's end "
                         f"({duration} s): lengthen duration_s or move the seizure")
    signs = s.signs
    if signs is None:
        k = int(rng.integers(1, 3))
        signs = [SUBTLE_SIGNS[i] for i in sorted(rng.choice(len(SUBTLE_SIGNS), size=k, replace=False))]
    return s.model_copy(update=dict(
        eeg_onset_s=eeg, clinical_onset_s=cl, end_s=end,
        post_ictal_s=s.post_ictal_s if s.post_ictal_s is not None else float(rng.uniform(*POST_ICTAL[s.type])),
        side=s.side or ("right" if rng.random() < 0.5 else "left"),
        amplitude=s.amplitude if s.amplitude is not None else float(rng.uniform(0.7, 1.3)),
        signs=signs))


# ----------------------------------------------------------------------------------------- generation

def _free(busy: list[tuple[float, float]], a: float, b: float) -> bool:
    return all(b <= s or a >= e for s, e in busy)


def random_scenario(seed: int, duration_s: float = 600.0, seizure_types: Sequence[str] | None = None,
                    n_seizures: int = 1, *, seizures: Sequence[SeizureSpec] | None = None,
                    behaviours: Sequence[BehaviourSpec] = (), events: Sequence[EventSpec] = (),
                    behaviour_rate_per_min: float = 1.2, scene_events: bool = True, **fields: Any) -> Scenario:
    """A scenario with a random behaviour/event schedule around the seizures. Deterministic by seed.

    `seizures` (explicit, possibly partial specs) replace the `n_seizures` random ones; `behaviours` and
    `events` are kept and the random schedule avoids them. Extra keyword fields go to Scenario.
    """
    types = tuple(seizure_types) if seizure_types else SEIZURE_TYPES
    bad = [t for t in types if t not in SEIZURE_TYPES]
    if bad:
        raise ValueError(f"unknown seizure type(s) {bad}: choose from {', '.join(SEIZURE_TYPES)}")
    rng = np.random.default_rng([seed, 23])
    if seizures is None:
        seizures = []
        for k in range(n_seizures):
            lo, hi = duration_s * k / max(n_seizures, 1), duration_s * (k + 1) / max(n_seizures, 1)
            typ = types[int(rng.integers(len(types)))]
            eeg = lo + (hi - lo) * rng.uniform(0.1, 0.5)
            seizures.append(SeizureSpec(type=typ, eeg_onset_s=float(eeg)))  # type: ignore[arg-type]
    base = Scenario(seed=seed, duration_s=duration_s, seizures=list(seizures), behaviours=list(behaviours),
                    events=list(events), **fields)
    busy = [(s.eeg_onset_s - 8.0, s.end_s + s.post_ictal_s) for s in base.seizures]  # type: ignore[operator]
    busy += [(b.start_s - 2, b.start_s + b.duration_s + 2) for b in base.behaviours]
    new_b: list[BehaviourSpec] = []
    t = float(rng.uniform(3, 30))
    while behaviour_rate_per_min > 0 and t < duration_s:
        kind = BEHAVIOURS[int(rng.integers(len(BEHAVIOURS)))]
        d = float(rng.uniform(*DURATION_RANGE[kind]))
        if t + d <= duration_s and _free(busy, t, t + d):
            new_b.append(BehaviourSpec(kind=kind, start_s=round(t, 2), duration_s=round(d, 2),  # type: ignore[arg-type]
                                       intensity=round(float(rng.uniform(0.7, 1.2)), 3)))
            busy.append((t - 2, t + d + 2))
            t += d
        t += float(rng.exponential(60.0 / behaviour_rate_per_min))
    new_e: list[EventSpec] = []
    if scene_events:
        t = float(rng.uniform(10, 200))
        while t < duration_s:     # caregiver rounds, also during seizures (they come to help)
            d = float(rng.uniform(*DURATION_RANGE["caregiver"]))
            if t + d <= duration_s:
                new_e.append(EventSpec(kind="caregiver", start_s=round(t, 2), duration_s=round(d, 2)))
            t += d + float(rng.uniform(120, 600))
        if rng.random() < 0.35:
            s0 = float(rng.uniform(0, duration_s * 0.5))
            new_e.append(EventSpec(kind="lights_off", start_s=round(s0, 2),
                                   duration_s=round(float(rng.uniform(0.3, 1.0) * (duration_s - s0)), 2)))
        for _ in range(int(rng.poisson(duration_s / 300))):
            new_e.append(EventSpec(kind="camera_shake", start_s=round(float(rng.uniform(0, duration_s - 8)), 2),
                                   duration_s=round(float(rng.uniform(*DURATION_RANGE["camera_shake"])), 2)))
        if rng.random() < 0.3:
            new_e.append(EventSpec(kind="compression", start_s=0.0, duration_s=duration_s,
                                   intensity=round(float(rng.uniform(0.5, 1.5)), 3)))
    data = base.model_dump()
    data["behaviours"] = sorted(data["behaviours"] + [b.model_dump() for b in new_b], key=lambda b: b["start_s"])
    data["events"] = sorted(data["events"] + [e.model_dump() for e in new_e], key=lambda e: e["start_s"])
    return Scenario.model_validate(data)


# ---------------------------------------------------------------------------------------------- parsing

_SIMPLE: dict[str, tuple[str, type]] = {
    "seed": ("seed", int), "duration": ("duration_s", float), "fps": ("fps", float), "width": ("width", int),
    "height": ("height", int), "view": ("view", str), "noise": ("noise", float), "patient": ("patient_id", str),
}
_ALL_KEYS = set(_SIMPLE) | {"seizure", "seizures", "types", "behaviour", "event", "auto", "loop"}


def with_legs_uncovered(sc: Scenario, seed: int) -> Scenario:
    """``sc`` with the blanket folded at the foot end (edge 1.9-2.05 m from the head end, drawn from
    ``seed``): hips, knees and ankles in view. The default draw covers the pelvis."""
    data = sc.model_dump()
    data["appearance"]["blanket_top"] = round(float(np.random.default_rng([seed, 65]).uniform(1.9, 2.05)), 3)
    return Scenario.model_validate(data)


def legs_uncovered(seed: int, share: float) -> bool:
    """Whether the scenario of ``seed`` is drawn with uncovered legs when ``share`` of them are."""
    return bool(np.random.default_rng([seed, 64]).random() < share)


def _num(text: str, what: str, uri: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{uri}: {what} must be a number of seconds, got {text!r}") from None


def _timed(value: str, key: str, uri: str) -> tuple[str, float, float]:
    if "@" not in value or "+" not in value.split("@", 1)[1]:
        raise ValueError(f"{uri}: {key}={value!r} must look like KIND@START+DURATION, e.g. {key}=shivering@30+20")
    kind, rest = value.split("@", 1)
    start, dur = rest.split("+", 1)
    return kind, _num(start, f"{key} start", uri), _num(dur, f"{key} duration", uri)


def _seizure(value: str, uri: str) -> SeizureSpec | str:
    typ, _, times = value.partition("@")
    if typ != "random" and typ not in SEIZURE_TYPES:
        raise ValueError(f"{uri}: unknown seizure type {typ!r}: choose from {', '.join(SEIZURE_TYPES)} or random")
    parts = times.split(":") if times else []
    if len(parts) > 3:
        raise ValueError(f"{uri}: seizure={value!r}: expected TYPE[@EEG_ONSET[:GAP[:CLINICAL_DURATION]]]")
    nums = [_num(p, "seizure time", uri) for p in parts]
    if typ == "random":
        return value
    spec: dict[str, Any] = {"type": typ}
    if nums:
        spec["eeg_onset_s"] = nums[0]
    if len(nums) > 1:
        spec["clinical_onset_s"] = nums[0] + nums[1]
    if len(nums) > 2:
        spec["end_s"] = nums[0] + nums[1] + nums[2]
    return SeizureSpec(**spec)


def _bool(v: str, key: str, uri: str) -> bool:
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"{uri}: {key} must be 0 or 1, got {v!r}")


def parse_sim_uri(uri: str, base_dir: str | Path | None = None) -> Scenario:
    """Scenario from a ``sim://`` URI (grammar in the module docstring). Errors name the bad part."""
    if not isinstance(uri, str) or not uri.startswith("sim://"):
        raise ValueError(f"not a simulator URI: {uri!r} (expected sim://[PATH][?seed=..&duration=..])")
    body = uri[len("sim://"):]
    path_part, _, query = body.partition("?")
    # '+' is literal here (KIND@START+DURATION), so no form decoding (which would turn it into a space)
    pairs = [(unquote(k), unquote(v)) for k, _, v in (item.partition("=") for item in query.split("&") if item)]
    unknown = sorted({k for k, _ in pairs} - _ALL_KEYS)
    if unknown:
        raise ValueError(f"{uri}: unknown key(s) {unknown}; known keys: {', '.join(sorted(_ALL_KEYS))}")
    simple: dict[str, Any] = {}
    for k, v in pairs:
        if k in _SIMPLE:
            field, typ = _SIMPLE[k]
            try:
                simple[field] = typ(v)
            except ValueError:
                raise ValueError(f"{uri}: {k} must be {typ.__name__}, got {v!r}") from None
        elif k == "loop":
            simple["loop"] = _bool(v, k, uri)
    try:
        if path_part:
            path = Path(path_part)
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            extra = sorted({k for k, _ in pairs} - set(_SIMPLE) - {"loop"})
            if extra:
                raise ValueError(f"{uri}: a scenario file only takes simple overrides "
                                 f"({', '.join(sorted(_SIMPLE))}, loop), not {extra}")
            data = _read_file(path)
            data.update(simple)
            return Scenario.model_validate(data)
        seizures: list[SeizureSpec] = []
        n_random = 0
        for k, v in pairs:
            if k == "seizure":
                s = _seizure(v, uri)
                if isinstance(s, str):
                    n_random += 1
                else:
                    seizures.append(s)
        keys = {k for k, _ in pairs}
        if "seizures" in keys:
            try:
                n_random += int(dict(pairs)["seizures"])
            except ValueError:
                raise ValueError(f"{uri}: seizures must be an integer count") from None
        elif "seizure" not in keys:
            n_random = 1
        types = [t for t in dict(pairs).get("types", "").split(",") if t] or None
        behaviours = [BehaviourSpec(kind=k2, start_s=s, duration_s=d)  # type: ignore[arg-type]
                      for k2, s, d in (_timed(v, k, uri) for k, v in pairs if k == "behaviour")]
        events = [EventSpec(kind=k2, start_s=s, duration_s=d)  # type: ignore[arg-type]
                  for k2, s, d in (_timed(v, k, uri) for k, v in pairs if k == "event")]
        auto = _bool(dict(pairs).get("auto", "1"), "auto", uri)
        seed = simple.pop("seed", 0)
        duration = simple.pop("duration_s", 600.0)
        if n_random:
            extra_s = random_scenario(seed, duration, types, n_random).seizures
            seizures += [SeizureSpec(type=s.type, eeg_onset_s=s.eeg_onset_s) for s in extra_s]
        if auto:
            return random_scenario(seed, duration, types, seizures=seizures, behaviours=behaviours,
                                   events=events, **simple)
        return Scenario(seed=seed, duration_s=duration, seizures=seizures, behaviours=behaviours,
                        events=events, **simple)
    except ValidationError as exc:
        raise ValueError(f"{uri}: invalid scenario: {exc}") from None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"scenario file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(text)
    elif path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"scenario file {path} must be .yaml, .yml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"scenario file {path} must hold a mapping of Scenario fields")
    return data.get("scenario", data) if isinstance(data.get("scenario"), dict) else data


def load_scenario(source: str | Path) -> Scenario:
    """Scenario from a sim:// URI or a YAML/JSON file path (a ground-truth JSON written by render works too)."""
    if isinstance(source, str) and source.startswith("sim://"):
        return parse_sim_uri(source)
    try:
        return Scenario.model_validate(_read_file(Path(source)))
    except ValidationError as exc:
        raise ValueError(f"{source}: invalid scenario: {exc}") from None
