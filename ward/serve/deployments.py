"""Batched model deployments shared by all beds: ``Pose`` (Lightweight OpenPose) and ``VSViG``.

Both collect requests from many camera actors with ``@serve.batch`` (batch size and wait come from
``user_config`` through :meth:`reconfigure`, so they change without a restart), run the blocking
model work in a thread (``asyncio.to_thread``) so the replica keeps accepting requests while the
model runs, and report batch-size histograms to the Coordinator about every 2 s for ``/metrics``
(through the Coordinator's handle that ``build_app`` binds to them).

Each replica runs its network on the engine the config's ``backend``/``precision`` resolve to on its
device (:func:`ward.vision.engines.resolve`: torch, or OpenVINO on CPUs), with the replica's CPU
share as its thread budget; it logs that choice once at start and reports it with its batch
statistics (``stats()["engine"]``, ``ward_model_engine_info`` in ``/metrics``).

The pure parts (:func:`pose_batch`, :func:`vsvig_batch`, :class:`BatchStats`) are plain functions
over a model, testable without Ray.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from pydantic import ValidationError
from ray import serve

from ward.config import BatchConfig, ConfigError, format_validation_error

log = logging.getLogger("ward.serve")

__all__ = ["BatchStats", "Pose", "VSViG", "apply_batch_config", "model_threads", "pose_batch",
           "vsvig_batch"]

STATS_PERIOD_S = 2.0


# ------------------------------------------------------------------------------------- pure logic

class BatchStats:
    """Counts of batch sizes and time spent in the model (cumulative, for Prometheus counters)."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}
        self.items = 0
        self.batches = 0
        self.busy_s = 0.0

    def add(self, size: int, seconds: float) -> None:
        self.sizes[size] = self.sizes.get(size, 0) + 1
        self.items += size
        self.batches += 1
        self.busy_s += seconds

    def snapshot(self) -> dict[str, Any]:
        return {"sizes": {str(k): v for k, v in sorted(self.sizes.items())}, "items": self.items,
                "batches": self.batches, "busy_s": self.busy_s}


def apply_batch_config(method: Any, user_config: Mapping[str, Any] | None) -> BatchConfig:
    """Validate a ``user_config`` (``max_batch_size``, ``batch_wait_timeout_s``) and apply it to a
    ``@serve.batch`` method; unknown keys raise ConfigError instead of being ignored."""
    try:
        cfg = BatchConfig.model_validate(dict(user_config or {}))
    except ValidationError as exc:
        problems = format_validation_error(exc, BatchConfig)
        raise ConfigError("invalid user_config: " + "; ".join(problems), problems) from None
    method.set_max_batch_size(cfg.max_batch_size)
    method.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
    return cfg


def pose_batch(estimator: Any, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """People per frame for frames of possibly different sizes (one network call per size).

    Returns one (n_people, 18, 3) float32 array per frame (x, y, score in frame pixels; -1 missing).
    """
    out: list[np.ndarray | None] = [None] * len(frames)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"pose input {i} must be an (H, W, 3) uint8 BGR frame, got "
                             f"{getattr(f, 'dtype', type(f).__name__)} {getattr(f, 'shape', '')}")
        groups.setdefault(f.shape, []).append(i)
    for idx in groups.values():
        batch = np.stack([frames[i] for i in idx])
        people = estimator(batch)
        for i, ppl in zip(idx, people):
            out[i] = np.stack(ppl).astype(np.float32) if ppl else np.zeros((0, 18, 3), np.float32)
    return out  # type: ignore[return-value]


def vsvig_batch(model: Any, patches: Sequence[np.ndarray], kpts: Sequence[np.ndarray],
                device: torch.device | None = None) -> list[float]:
    """Seizure probability per clip: patches (30, 15, 3, 32, 32) uint8, kpts (30, 15, 3) float32.

    ``model``: a VSViG scorer (:func:`ward.vision.vsvig_engine.load_vsvig_scorer`: numpy in, p out, on
    its own engine), or a torch VSViG module run in fp32 on ``device``."""
    if not isinstance(model, torch.nn.Module):
        return [float(x) for x in model(np.stack(patches), np.stack(kpts))]
    p = torch.from_numpy(np.stack(patches)).to(device=device, dtype=torch.float32)
    k = torch.from_numpy(np.stack(kpts)).to(device=device, dtype=torch.float32)
    with torch.inference_mode():
        probs = model(p, k)
    return [float(x) for x in probs.detach().cpu().numpy()]


def _torch_threads(num_cpus: float) -> int:
    env = os.environ.get("WARD_TORCH_THREADS")
    if env:
        return max(1, int(env))
    return max(1, math.ceil(num_cpus))


def model_threads(model: Mapping[str, Any]) -> int | None:
    """A CPU replica's thread budget for torch and OpenVINO (its num_cpus, or $WARD_TORCH_THREADS);
    None on a GPU. Sets torch's intra-op threads to it."""
    if str(model.get("device", "cpu")).split(":", 1)[0] != "cpu":
        return None
    n = _torch_threads(float(model.get("num_cpus", 1.0)))
    torch.set_num_threads(n)
    return n


class _Reporter:
    """Sends a replica's batch stats to the Coordinator every STATS_PERIOD_S (fire and forget)."""

    def __init__(self, kind: str, coordinator: Any, engine: Any) -> None:
        self.kind = kind
        self.engine = dataclasses.asdict(engine)  # what the replica reports (stats, /metrics)
        self.stats = BatchStats()
        self.ongoing = 0
        self._last = 0.0
        self._coord = coordinator  # the Coordinator's handle, bound by build_app
        ctx = serve.get_replica_context()
        self.replica = ctx.replica_tag if hasattr(ctx, "replica_tag") else str(ctx.replica_id)

    def maybe_report(self) -> None:
        now = time.monotonic()
        if now - self._last < STATS_PERIOD_S:
            return
        self._last = now
        try:
            snap = self.stats.snapshot()
            snap["ongoing"] = self.ongoing
            snap["engine"] = self.engine
            self._coord.report_batches.remote(self.kind, self.replica, snap)
        except Exception as exc:  # noqa: BLE001 (metrics must never break inference)
            log.debug("batch stats not reported: %s", exc)


# ------------------------------------------------------------------------------------ deployments

class _ReplicaInfo:
    """What tests and the benchmark ask every model replica: its batch statistics and its node."""

    reporter: _Reporter

    def stats(self) -> dict[str, Any]:
        return {**self.reporter.stats.snapshot(), "ongoing": self.reporter.ongoing, "engine": self.reporter.engine}

    def node_id(self) -> str:
        import ray  # noqa: PLC0415

        return ray.get_runtime_context().get_node_id()


@serve.deployment(name="Pose", max_ongoing_requests=16, ray_actor_options={"num_cpus": 0.5})
class Pose(_ReplicaInfo):
    """Lightweight OpenPose over frames from all beds, batched across beds."""

    def __init__(self, model: Mapping[str, Any], coordinator: Any) -> None:
        from ward.vision.pose import PoseEstimator  # noqa: PLC0415

        self.estimator = PoseEstimator.from_checkpoint(
            model["path"], model.get("config"), model.get("refinement_stages"),
            height=int(model.get("input_height", 256)), device=str(model.get("device", "cpu")),
            backend=model.get("backend", "auto"), precision=model.get("precision", "auto"),
            num_threads=model_threads(model))
        log.info("Pose replica runs %s", self.estimator.engine)
        self.reporter = _Reporter("pose", coordinator, self.estimator.engine)

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        apply_batch_config(self._estimate_batch, user_config)

    async def __call__(self, frame: np.ndarray) -> np.ndarray:
        return await self.estimate(frame)

    async def estimate(self, frame: np.ndarray) -> np.ndarray:
        """People on one frame: (n, 18, 3) float32 in frame pixels."""
        self.reporter.ongoing += 1
        try:
            return await self._estimate_batch(frame)
        finally:
            self.reporter.ongoing -= 1

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.02)
    async def _estimate_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = await asyncio.to_thread(pose_batch, self.estimator, frames)
        self.reporter.stats.add(len(frames), time.perf_counter() - t0)
        self.reporter.maybe_report()
        return out


@serve.deployment(name="VSViG", max_ongoing_requests=16, ray_actor_options={"num_cpus": 0.25})
class VSViG(_ReplicaInfo):
    """VSViG over 30-frame clips from all beds, batched across beds."""

    def __init__(self, model: Mapping[str, Any], coordinator: Any) -> None:
        from ward.vision.vsvig_engine import load_vsvig_scorer  # noqa: PLC0415

        self.scorer = load_vsvig_scorer(
            model["path"], variant=model.get("variant"), graph_mode=model.get("graph_mode"),
            partition_order=model.get("partition_order"), device=str(model.get("device", "cpu")),
            backend=model.get("backend", "auto"), precision=model.get("precision", "auto"),
            num_threads=model_threads(model))
        log.info("VSViG replica runs %s", self.scorer.engine)
        self.reporter = _Reporter("vsvig", coordinator, self.scorer.engine)

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        apply_batch_config(self._score_batch, user_config)

    async def score(self, patches: np.ndarray, kpts: np.ndarray) -> float:
        """Seizure probability of one clip."""
        self.reporter.ongoing += 1
        try:
            return await self._score_batch((patches, kpts))
        finally:
            self.reporter.ongoing -= 1

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _score_batch(self, items: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        t0 = time.perf_counter()
        out = await asyncio.to_thread(vsvig_batch, self.scorer, [i[0] for i in items], [i[1] for i in items])
        self.reporter.stats.add(len(items), time.perf_counter() - t0)
        self.reporter.maybe_report()
        return out

