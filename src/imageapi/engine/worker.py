"""The engine: a bounded job queue and the one worker thread that owns the device.

The worker loads every backend, then runs batch after batch. A batch that raises fails only its own
jobs; the worker goes on. Nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Protocol

import numpy as np

from imageapi.engine.job import BatchKey, ImageJob
from imageapi.engine.models import ModelInfo
from imageapi.engine.queue import BatchPolicy, JobQueue
from imageapi.engine.tuning import WarmupBatch

log = logging.getLogger(__name__)


class ImageBackend(Protocol):
    def load(self) -> None: ...

    def run(self, jobs: Sequence[ImageJob]) -> list[np.ndarray]: ...


class EngineState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class BatchSizeMismatch(RuntimeError):
    pass


class Engine:
    def __init__(self, models: Sequence[ModelInfo], backend_factory: Callable[[str], ImageBackend],
                 policies: Mapping[str, BatchPolicy], capacity: int,
                 warmup: Sequence[WarmupBatch] = ()) -> None:
        self.models: dict[str, ModelInfo] = {model.name: model for model in models}
        self._backend_factory = backend_factory
        self._policies = dict(policies)
        self._queue = JobQueue(capacity, self._policy_for)
        self.queue_capacity = capacity  # most images waiting at once: a request for more can never be queued
        self._backends: dict[str, ImageBackend] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.state = EngineState.LOADING
        self.batch_sizes: Counter[int] = Counter()
        self._seconds_per_image = 1.0  # refined as batches complete; used to estimate Retry-After
        self.warmup = tuple(warmup)
        self.warmed_up = 0  # warm-up batches done; the engine is READY only after all of them

    def _policy_for(self, key: BatchKey) -> BatchPolicy:
        return self._policies.get(key.model, BatchPolicy())

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def estimated_wait_s(self, extra_images: int = 0) -> float:
        return (self.queue_depth + extra_images) * self._seconds_per_image

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="imageapi-device-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._queue.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
        for job in self._queue.drain():
            job.result.cancel()
        self.state = EngineState.STOPPED

    def submit(self, jobs: Sequence[ImageJob]) -> None:
        """Queues every job or none (raises QueueFull). Results arrive on each job's future."""
        self._queue.put_all(jobs)

    def _run(self) -> None:
        try:
            for name in self.models:
                backend = self._backend_factory(name)
                backend.load()
                self._backends[name] = backend
            self._warm_up()
        except Exception:
            log.exception("loading or warming up the models failed")
            self.state = EngineState.FAILED
            return
        if self._stopping.is_set():  # stopped while loading: stay stopped
            return
        self.state = EngineState.READY
        log.info("models ready: %s", ", ".join(self.models))
        while not self._stopping.is_set():
            batch = self._queue.next_batch(idle_timeout_s=1.0)
            if batch:
                self._run_batch(batch)

    def _warm_up(self) -> None:
        """One call per shape a compiled model will see, so no request waits for a compilation."""
        for shape in self.warmup:
            if self._stopping.is_set():
                return
            started = time.perf_counter()
            jobs = [ImageJob(shape.key, "warm-up", seed) for seed in range(shape.images)]
            images = self._backends[shape.key.model].run(jobs)
            if len(images) != len(jobs):
                raise BatchSizeMismatch(f"warm-up returned {len(images)} images for {len(jobs)} jobs")
            self.warmed_up += 1
            log.info("warmed up %s %dx%d batch %d in %.1fs (%d/%d)", shape.key.model, shape.key.width,
                     shape.key.height, shape.images, time.perf_counter() - started, self.warmed_up, len(self.warmup))

    def _run_batch(self, batch: list[ImageJob]) -> None:
        live = [job for job in batch if job.result.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            images = self._backends[live[0].key.model].run(live)
            if len(images) != len(live):
                raise BatchSizeMismatch(f"backend returned {len(images)} images for {len(live)} jobs")
        except Exception as error:
            log.exception("batch of %d failed (%s)", len(live), live[0].key)
            for job in live:
                job.result.set_exception(error)
            return
        for job, image in zip(live, images, strict=True):
            job.result.set_result(image)
        elapsed = time.perf_counter() - started
        self.batch_sizes[len(live)] += 1
        self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * elapsed / len(live)
