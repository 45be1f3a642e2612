"""A bounded queue of image jobs that hands out batches of jobs sharing one BatchKey.

The oldest waiting job picks the key of the next batch (so no key starves); the batch then waits up
to the key's max wait for more jobs of that key, and closes early when it holds max_images jobs.
Capacity is counted in images: a submission that would overflow it is refused whole, at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imageapi.engine.job import BatchKey, ImageJob


@dataclass(frozen=True)
class BatchPolicy:
    max_images: int = 8
    max_wait_s: float = 0.005


class QueueFull(Exception):
    def __init__(self, waiting: int, capacity: int) -> None:
        super().__init__(f"{waiting} images waiting, capacity {capacity}")
        self.waiting = waiting
        self.capacity = capacity


class QueueClosed(Exception):
    pass


class JobQueue:
    def __init__(self, capacity: int, policy_for: Callable[[BatchKey], BatchPolicy]) -> None:
        self._capacity = capacity
        self._policy_for = policy_for
        self._jobs: deque[ImageJob] = deque()
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._jobs)

    def put_all(self, jobs: Sequence[ImageJob]) -> None:
        with self._changed:
            if self._closed:
                raise QueueClosed
            if len(self._jobs) + len(jobs) > self._capacity:
                raise QueueFull(len(self._jobs), self._capacity)
            self._jobs.extend(jobs)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def drain(self) -> list[ImageJob]:
        with self._changed:
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def next_batch(self, idle_timeout_s: float | None = None) -> list[ImageJob]:
        """Blocks for the next batch; returns [] when closed, or when idle past `idle_timeout_s`."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._jobs or self._closed, timeout=idle_timeout_s):
                return []
            if self._closed:
                return []
            key = self._jobs[0].key
            policy = self._policy_for(key)
            deadline = time.monotonic() + policy.max_wait_s
            while self._count(key) < policy.max_images and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if self._closed:  # closing mid-wait: the jobs stay queued, for drain() to cancel
                return []
            return self._take(key, policy.max_images)

    def _count(self, key: BatchKey) -> int:
        return sum(1 for job in self._jobs if job.key == key)

    def _take(self, key: BatchKey, limit: int) -> list[ImageJob]:
        batch: list[ImageJob] = []
        kept: deque[ImageJob] = deque()
        for job in self._jobs:
            (batch if job.key == key and len(batch) < limit else kept).append(job)
        self._jobs = kept
        return batch
