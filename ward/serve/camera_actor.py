"""Camera actors: the Ray side of the live clip path, and nothing else.

One :class:`CameraActor` (a plain Ray actor, restarted by Ray if it dies) serves
``beds_per_actor`` beds. Each bed is a :class:`CameraBed`: a :class:`ward.camera.reader.CameraReader`
and :class:`~ward.camera.reader.FrameSampler` feeding the one bed pipeline (:mod:`ward.pipeline`);
this module only adapts them to the Ray Serve deployments:

    CameraReader (thread, latest-frame slot) -> FrameSampler (model fps) -> resize once
      -> Pose deployment (at most ``max_inflight_per_bed`` requests in flight; extra frames are dropped
         and counted) -> ward.pipeline.BedPipeline (patient, patches, clip) -> VSViG deployment
      -> Coordinator (:class:`ward.core.messages.ClipScore`)

Every bed runs its own coroutine on the actor's event loop (in a background thread started by the
constructor, so a restarted actor resumes by itself): a slow or dead camera only stalls its own
bed, and nothing waits for all cameras at start. Pose results are consumed in submission order so
the patient tracker and the clip ring always see frames in time order. Camera state, reason and
counters go to the Coordinator every second (:class:`ward.core.messages.CameraReport`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from ward.camera.reader import CameraReader, Frame, FrameSampler, reader_from_config, resize_to_height
from ward.config import BedConfig, WardConfig, load_ward_config
from ward.core.clip import Clip
from ward.core.messages import CameraReport, ClipScore
from ward.pipeline import BedPipeline

log = logging.getLogger("ward.serve")

__all__ = ["CameraActor", "CameraBed", "assign_beds"]

STATUS_PERIOD_S = 1.0
CALL_TIMEOUT_S = 30.0


def assign_beds(bed_ids: list[str], per_actor: int) -> list[list[str]]:
    """Beds grouped into consecutive chunks of ``per_actor`` (one chunk per camera actor)."""
    if per_actor < 1:
        raise ValueError(f"beds_per_actor must be >= 1 (got {per_actor})")
    return [bed_ids[i:i + per_actor] for i in range(0, len(bed_ids), per_actor)]


class CameraBed:
    """One bed inside a camera actor: its reader, sampler, pipeline and counters (no Ray)."""

    def __init__(self, bed: BedConfig, cfg: WardConfig, *,
                 reader_factory: Callable[..., CameraReader] = reader_from_config) -> None:
        self.bed = bed
        self.cfg = cfg
        self.max_inflight = cfg.ingest.max_inflight_per_bed
        self.reader = reader_factory(cfg, bed.bed_id)
        self.sampler = FrameSampler(bed.fps)
        # a clip never spans a hole longer than a few sampled frames (camera gap, pose outage)
        self.pipeline = BedPipeline(bed.bed_roi, stride_frames=cfg.resolved_bed(bed.bed_id).stride_frames,
                                    max_gap_s=max(1.0, 4.0 / bed.fps))
        self.wall_offset = 0.0                    # wall - reader clock, for clip times
        self.inflight = 0
        self.vsvig_inflight = 0
        self.push_inflight = 0
        self.counters = {"frames_sampled": 0, "frames_dropped_inflight": 0, "pose_done": 0, "pose_errors": 0,
                         "clips_emitted": 0, "clips_scored": 0, "clips_dropped": 0, "clips_failed": 0,
                         "clips_pushed": 0, "push_errors": 0}
        self._pose_times: deque[float] = deque(maxlen=256)

    @property
    def last_keypoints(self) -> np.ndarray | None:
        return self.pipeline.last_keypoints

    # -- per frame -----------------------------------------------------------------------------
    def prepare(self, frame: Frame) -> np.ndarray:
        """Resize once to the working height (what Pose receives)."""
        self.wall_offset = frame.wall - frame.t
        return np.ascontiguousarray(resize_to_height(frame.image, self.bed.height))

    def simulator_people(self, frame: Frame, img: np.ndarray) -> list[np.ndarray]:
        """The simulator's ground-truth patient as the only detected person, in working-frame pixels
        (bed keypoints: simulator). Invisible joints become -1 rows, like the pose decoder's output."""
        truth = frame.truth_keypoints
        if truth is None:
            return []
        scale = img.shape[0] / frame.image.shape[0]
        person = truth.astype(np.float32, copy=True)
        person[:, :2] *= scale
        person[person[:, 2] <= 0] = -1.0
        return [person]

    def on_pose(self, frame: Frame, img: np.ndarray, people: np.ndarray) -> Clip | None:
        """One posed frame (in time order) through the bed pipeline; the clip when one is due."""
        self.counters["pose_done"] += 1
        self._pose_times.append(time.monotonic())
        posed = self.pipeline.push(img[None], [frame.t], people=[people])
        self.reader.set_patient_found(bool(posed.found[0]))
        self.counters["clips_emitted"] += len(posed.clips)
        # one frame completes at most one clip at a stride of >= 1 frame; were there more, only the
        # newest is scored and the others are counted as dropped, never lost silently
        self.counters["clips_dropped"] += max(0, len(posed.clips) - 1)
        return posed.clips[-1] if posed.clips else None

    def clip_request(self, clip: Clip) -> tuple[np.ndarray, np.ndarray, Callable[[float], ClipScore]]:
        """VSViG inputs (patches uint8, normalised keypoints) and the clip's ClipScore given its probability."""
        patches, kpts = self.pipeline.vsvig_inputs(clip)
        t_end = clip.t_end + self.wall_offset
        score = partial(ClipScore, self.bed.bed_id, t_end, capture_wall=t_end, clip_index=clip.index,
                        pose_quality=clip.valid_fraction)
        return patches, kpts, lambda p: score(probability=float(p))

    # -- status --------------------------------------------------------------------------------
    def pose_fps(self, window_s: float = 5.0) -> float:
        now = time.monotonic()
        recent = [t for t in self._pose_times if now - t <= window_s]
        return len(recent) / window_s if recent else 0.0

    def status(self) -> CameraReport:
        """Reader state, with 'degraded' when pose cannot keep up with the model rate."""
        st = self.reader.status()
        state, reason, since_wall = st.state, st.reason, st.since_wall
        fps = self.pose_fps()
        slow = self.reader.health.pose_verdict(st.state, st.duration_s, fps)
        if slow is not None:
            (state, reason), since_wall = slow, time.time()
        return CameraReport(state=state, reason=reason, since_wall=since_wall, fps_measured=st.fps_measured,
                            fps_sampled=fps, frames_in=st.frames_in, frames_dropped=st.frames_dropped,
                            frames_corrupt=st.frames_corrupt, reconnects=st.reconnects, inflight=self.inflight,
                            vsvig_inflight=self.vsvig_inflight, push_inflight=self.push_inflight,
                            keypoints_source=self.bed.keypoints,
                            **self.counters)


class _Loop:
    """The actor's asyncio loop on a background thread: one coroutine per bed plus status reports."""

    def __init__(self, cfg: WardConfig, pipelines: dict[str, CameraBed], handles: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.pipelines = pipelines
        self.handles = dict(handles)  # "Pose", "VSViG", "Coordinator": the handles build_app bound
        self.stop = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(pipelines) + 2, thread_name_prefix="ward-wait")
        self.thread = threading.Thread(target=self._run, name="ward-camera-loop", daemon=True)
        self.thread.start()

    def _handle(self, name: str) -> Any:
        return self.handles[name]

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        tasks = [asyncio.create_task(self._bed(p)) for p in self.pipelines.values()]
        tasks.append(asyncio.create_task(self._report()))
        while not self.stop.is_set():
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _bed(self, p: CameraBed) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        consumer = asyncio.create_task(self._consume(p, queue))
        try:
            while not self.stop.is_set():
                frame = await loop.run_in_executor(self.pool, p.sampler.next_frame, p.reader, 0.5)
                if frame is None:
                    continue
                p.counters["frames_sampled"] += 1
                if p.inflight >= p.max_inflight:
                    p.counters["frames_dropped_inflight"] += 1
                    continue
                img = p.prepare(frame)
                p.inflight += 1
                if p.bed.keypoints == "simulator":
                    people: asyncio.Future = loop.create_future()
                    people.set_result(p.simulator_people(frame, img))
                else:
                    people = asyncio.ensure_future(self._pose(img))
                queue.put_nowait((frame, img, people))
        finally:
            consumer.cancel()

    async def _pose(self, img: np.ndarray) -> np.ndarray:
        return await asyncio.wait_for(self._handle("Pose").estimate.remote(img), CALL_TIMEOUT_S)

    async def _consume(self, p: CameraBed, queue: asyncio.Queue) -> None:
        while True:
            frame, img, fut = await queue.get()
            try:
                people = await fut
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (replica died, backpressure, timeout: keep going)
                p.counters["pose_errors"] += 1
                log.warning("bed %s: pose failed: %s", p.bed.bed_id, type(exc).__name__)
                continue
            finally:
                p.inflight -= 1
            try:
                clip = p.on_pose(frame, img, people)
            except Exception:  # noqa: BLE001
                log.exception("bed %s: frame processing failed", p.bed.bed_id)
                continue
            if clip is None:
                continue
            if p.vsvig_inflight >= p.max_inflight:
                p.counters["clips_dropped"] += 1
                continue
            p.vsvig_inflight += 1
            asyncio.ensure_future(self._score(p, clip))

    async def _score(self, p: CameraBed, clip: Clip) -> None:
        try:
            patches, kpts, clip_score = p.clip_request(clip)
            prob = await asyncio.wait_for(self._handle("VSViG").score.remote(patches, kpts), CALL_TIMEOUT_S)
            p.counters["clips_scored"] += 1
        except Exception as exc:  # noqa: BLE001
            p.counters["clips_failed"] += 1
            log.warning("bed %s: VSViG failed: %s", p.bed.bed_id, type(exc).__name__)
            return
        finally:
            p.vsvig_inflight -= 1
        # scored -> in flight -> pushed or push_errors, with no await between the steps of each
        # transition, so one status() snapshot always balances (tests/test_serve_cluster.py)
        p.push_inflight += 1
        try:
            await asyncio.wait_for(self._handle("Coordinator").push.remote(clip_score(prob)),
                                   CALL_TIMEOUT_S)
            p.counters["clips_pushed"] += 1
        except Exception as exc:  # noqa: BLE001
            p.counters["push_errors"] += 1
            log.warning("bed %s: coordinator push failed: %s", p.bed.bed_id, type(exc).__name__)
        finally:
            p.push_inflight -= 1

    async def _report(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(STATUS_PERIOD_S)
            try:
                statuses = {b: p.status() for b, p in self.pipelines.items()}
                await asyncio.wait_for(self._handle("Coordinator").report_status.remote(statuses), 10.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("camera status not reported: %s", type(exc).__name__)


class CameraActor:
    """Reads ``bed_ids`` of the ward; everything runs on a background loop started here."""

    def __init__(self, config: Mapping[str, Any], bed_ids: list[str], handles: Mapping[str, Any]) -> None:
        import torch  # noqa: PLC0415

        torch.set_num_threads(1)
        cfg = load_ward_config(config, validate_paths=False)
        self.pipelines = {b: CameraBed(cfg.bed(b), cfg) for b in bed_ids}
        self.loop = _Loop(cfg, self.pipelines, handles)

    def status(self) -> dict[str, CameraReport]:
        return {b: p.status() for b, p in self.pipelines.items()}

    def node_id(self) -> str:
        import ray  # noqa: PLC0415

        return ray.get_runtime_context().get_node_id()

    def last_keypoints(self, bed_id: str) -> list | None:
        kp = self.pipelines[bed_id].last_keypoints
        return None if kp is None else kp.tolist()

    def stop(self) -> None:
        self.loop.stop.set()
        for p in self.pipelines.values():
            p.reader.stop(timeout=2.0)
        self.loop.thread.join(timeout=5.0)
