"""Prometheus text exposition of the Coordinator's metrics snapshot (pure, no Ray)."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["render_metrics"]

_BED_COUNTERS = (
    ("frames_in", "ward_frames_in_total", "frames decoded from the camera"),
    ("frames_dropped", "ward_frames_dropped_total", "frames overwritten in the latest-frame slot before sampling"),
    ("frames_corrupt", "ward_frames_corrupt_total",
     "frames the decoder reported as read but that were missing or of the wrong shape (discarded)"),
    ("frames_sampled", "ward_frames_sampled_total", "frames taken at the model rate"),
    ("frames_dropped_inflight", "ward_frames_dropped_inflight_total",
     "sampled frames dropped because the bed already had max_inflight_per_bed pose requests"),
    ("pose_errors", "ward_pose_errors_total", "pose requests that failed"),
    ("clips_emitted", "ward_clips_emitted_total", "30-frame clips assembled"),
    ("clips_scored", "ward_clips_scored_total", "clips scored by VSViG"),
    ("clips_dropped", "ward_clips_dropped_total", "clips dropped because VSViG was saturated"),
    ("clips_failed", "ward_clips_failed_total", "VSViG requests that failed"),
    ("clips_pushed", "ward_clips_pushed_total", "scored clips the Coordinator acknowledged"),
    ("push_errors", "ward_push_errors_total", "scored clips that could not be handed to the Coordinator"),
    ("samples_stored", "ward_samples_stored_total", "probabilities written to the database"),
    ("reconnects", "ward_camera_reconnects_total", "camera reconnects"),
)
_BED_GAUGES = (
    ("fps_measured", "ward_camera_fps", "frame rate delivered by the camera"),
    ("fps_sampled", "ward_pose_fps", "posed frames per second (effective model rate)"),
    ("inflight", "ward_queue_depth_pose", "pose requests in flight for the bed"),
    ("vsvig_inflight", "ward_queue_depth_vsvig", "VSViG requests in flight for the bed"),
    ("push_inflight", "ward_queue_depth_push", "scored clips on their way to the Coordinator"),
    ("probability", "ward_probability", "latest seizure probability"),
    ("accumulator", "ward_accumulator", "decision-rule accumulator"),
)
_STATES = ("online", "degraded", "offline")


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: Any) -> str:
    return "NaN" if v is None else repr(float(v))


def render_metrics(snap: Mapping[str, Any]) -> str:
    """Text format 0.0.4; every family has HELP and TYPE lines."""
    out: list[str] = []
    beds: Mapping[str, Mapping[str, Any]] = snap.get("beds", {})

    def family(name: str, typ: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {typ}")

    for key, name, help_ in _BED_COUNTERS:
        family(name, "counter", help_)
        for bed, m in beds.items():
            out.append(f'{name}{{bed="{_esc(bed)}"}} {_num(m.get(key, 0))}')
    for key, name, help_ in _BED_GAUGES:
        family(name, "gauge", help_)
        for bed, m in beds.items():
            out.append(f'{name}{{bed="{_esc(bed)}"}} {_num(m.get(key))}')
    family("ward_bed_state", "gauge", "1 for the bed's current camera state")
    for bed, m in beds.items():
        for s in _STATES:
            out.append(f'ward_bed_state{{bed="{_esc(bed)}",state="{s}"}} {1 if m.get("state") == s else 0}')

    batches: Mapping[str, Mapping[str, Mapping[str, Any]]] = snap.get("batches", {})
    family("ward_batches_total", "counter", "model batches run, by deployment, replica and batch size")
    for kind, reps in batches.items():
        for rep, s in reps.items():
            for size, n in s.get("sizes", {}).items():
                out.append(f'ward_batches_total{{deployment="{kind}",replica="{_esc(rep)}",size="{size}"}} {n}')
    family("ward_batch_items_total", "counter", "requests served in batches")
    family("ward_model_busy_seconds_total", "counter", "time spent in the model")
    family("ward_queue_depth_replica", "gauge", "requests waiting or running in a model replica")
    for kind, reps in batches.items():
        for rep, s in reps.items():
            lab = f'deployment="{kind}",replica="{_esc(rep)}"'
            out.append(f"ward_batch_items_total{{{lab}}} {_num(s.get('items', 0))}")
            out.append(f"ward_model_busy_seconds_total{{{lab}}} {_num(s.get('busy_s', 0.0))}")
            out.append(f"ward_queue_depth_replica{{{lab}}} {_num(s.get('ongoing', 0))}")
    family("ward_model_engine_info", "gauge", "1 for the engine each model replica runs (backend, precision, device)")
    for kind, reps in batches.items():
        for rep, s in reps.items():
            eng = s.get("engine") or {}
            if eng:
                out.append(f'ward_model_engine_info{{deployment="{kind}",replica="{_esc(rep)}",'
                           f'backend="{_esc(str(eng.get("backend")))}",precision="{_esc(str(eng.get("precision")))}",'
                           f'device="{_esc(str(eng.get("device")))}"}} 1')

    lat = snap.get("latency")
    family("ward_end_to_end_latency_seconds", "histogram", "frame captured -> probability stored")
    if lat:
        cum = 0
        for b, c in zip(lat["buckets"], lat["counts"]):
            cum += c
            out.append(f'ward_end_to_end_latency_seconds_bucket{{le="{b:g}"}} {cum}')
        out.append(f'ward_end_to_end_latency_seconds_bucket{{le="+Inf"}} {sum(lat["counts"])}')
        out.append(f"ward_end_to_end_latency_seconds_sum {_num(lat['sum'])}")
        out.append(f"ward_end_to_end_latency_seconds_count {lat['count']}")
    family("ward_spill_pending_rows", "gauge", "samples waiting in the outage spill")
    out.append(f"ward_spill_pending_rows {_num(snap.get('spill_pending', 0))}")
    family("ward_flush_errors_total", "counter", "coordinator flushes with a storage error")
    out.append(f"ward_flush_errors_total {_num(snap.get('flush_errors', 0))}")

    ret: Mapping[str, Any] = snap.get("retention") or {}
    family("ward_retention_runs_total", "counter", "retention runs (completed or failed) since the coordinator started")
    out.append(f"ward_retention_runs_total {_num(ret.get('runs', 0))}")
    family("ward_retention_errors_total", "counter", "retention runs that failed (retried later)")
    out.append(f"ward_retention_errors_total {_num(ret.get('errors', 0))}")
    family("ward_retention_rows_deleted_total", "counter", "rows deleted by retention, per table")
    for table, n in sorted((ret.get("deleted") or {}).items()):
        out.append(f'ward_retention_rows_deleted_total{{table="{_esc(table)}"}} {_num(n)}')
    family("ward_retention_last_success_timestamp_seconds", "gauge",
           "wall time of the last completed retention run (NaN: none yet)")
    out.append(f"ward_retention_last_success_timestamp_seconds {_num(ret.get('last_success'))}")
    return "\n".join(out) + "\n"
