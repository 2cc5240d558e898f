"""Seizure onset annotation tables (CSV or XLSX): one row per seizure, or a row with empty times for a
video without seizures.

Columns (case-insensitive; spaces and dashes count as underscores): video, eeg_onset, clinical_onset,
seizure_end, optional patient_id and seizure_type. Times are seconds (``93.5``) or clock times
(``hh:mm:ss[.f]`` or ``mm:ss``; seconds, and minutes after hours, below 60) from the start of the video.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REQUIRED = ("video", "eeg_onset", "clinical_onset", "seizure_end")
OPTIONAL = ("patient_id", "seizure_type")


@dataclass(frozen=True)
class Annotation:
    """One annotated seizure (times None for a seizure-free video)."""

    video: str
    eeg_onset: float | None
    clinical_onset: float | None
    end: float | None
    patient_id: str
    seizure_type: str = "unknown"

    @property
    def has_seizure(self) -> bool:
        return self.eeg_onset is not None


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")


def parse_time(value: object, where: str) -> float | None:
    """Seconds from a number, 'hh:mm:ss[.f]' or 'mm:ss'; None for an empty cell."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value != value:   # NaN from pandas
            return None
        return float(value)
    if hasattr(value, "hour") and hasattr(value, "minute"):      # datetime.time from Excel
        return value.hour * 3600 + value.minute * 60 + value.second + getattr(value, "microsecond", 0) / 1e6
    text = str(value).strip()
    if not text or text.lower() in ("nan", "none", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        pass
    m = _CLOCK.match(text)
    if not m:
        raise ValueError(f"{where}: cannot read time {text!r}: use seconds (93.5) or hh:mm:ss / mm:ss")
    h, mi, s = m.groups()
    # "1:61" is a typo, not 2:01: reading it as 121 s would silently shift the seizure
    if float(s) >= 60:
        raise ValueError(f"{where}: time {text!r} has {s} seconds (must be below 60): write e.g. '2:01' for 121 s, "
                         "or give plain seconds")
    if h is not None and int(mi) >= 60:
        raise ValueError(f"{where}: time {text!r} has {mi} minutes with an hour field (must be below 60): "
                         "fix the hh:mm:ss value, or give plain seconds")
    return int(h or 0) * 3600 + int(mi) * 60 + float(s)


def _norm(col: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(col).strip().lower())


def _rows(path: Path) -> list[dict[str, object]]:
    suf = path.suffix.lower()
    if suf == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    if suf in (".xlsx", ".xlsm"):
        import pandas as pd

        df = pd.read_excel(path, dtype=object)
        return df.to_dict("records")
    raise ValueError(f"annotation table {path} must be .csv or .xlsx")


def load_annotations(path: str | Path, videos: Iterable[str] | None = None) -> list[Annotation]:
    """Parse and check an annotation table. `videos` (names or stems available on disk) enables the
    unknown-video check."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"annotation table not found: {path}")
    raw = _rows(path)
    if not raw:
        raise ValueError(f"annotation table {path} has no rows")
    cols = {_norm(c): c for c in raw[0].keys()}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ValueError(f"annotation table {path} lacks column(s) {missing}; found {sorted(cols)}; "
                         f"required: {list(REQUIRED)}, optional: {list(OPTIONAL)}")
    known = None
    if videos is not None:
        known = set()
        for v in videos:
            known |= {v, Path(v).name, Path(v).stem}
    out = []
    for n, r in enumerate(raw, start=2):     # row 1 is the header
        get = {k: r[c] for k, c in cols.items()}
        video = str(get["video"]).strip()
        where = f"{path.name} row {n} ({video})"
        if not video or video.lower() == "nan":
            raise ValueError(f"{path.name} row {n}: empty video name")
        if known is not None and video not in known and Path(video).stem not in known:
            raise ValueError(f"{where}: video {video!r} is not in the video folder (available e.g. "
                             f"{sorted(known)[:3]}); fix the name or add the file")
        e, c, x = (parse_time(get[k], f"{where} {k}") for k in ("eeg_onset", "clinical_onset", "seizure_end"))
        given = [v is not None for v in (e, c, x)]
        if any(given) and not all(given):
            raise ValueError(f"{where}: give all of eeg_onset, clinical_onset, seizure_end, or none (seizure-free video)")
        if all(given):
            if e > c:   # type: ignore[operator]
                raise ValueError(f"{where}: EEG onset {e} s is after clinical onset {c} s")
            if c >= x:  # type: ignore[operator]
                raise ValueError(f"{where}: clinical onset {c} s is not before seizure end {x} s")
            if e < 0:   # type: ignore[operator]
                raise ValueError(f"{where}: negative EEG onset {e} s")
        pid = get.get("patient_id")
        pid = str(pid).strip() if pid is not None and str(pid).strip() not in ("", "nan") else Path(video).stem
        st = get.get("seizure_type")
        st = str(st).strip() if st is not None and str(st).strip() not in ("", "nan") else "unknown"
        out.append(Annotation(video, e, c, x, pid, st))
    return out
