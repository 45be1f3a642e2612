"""JobQueue: batches by key, oldest key first, capacity all-or-nothing, close and drain."""

import threading
import time

import pytest

from imageapi.engine.job import BatchKey, ImageJob, Task
from imageapi.engine.queue import BatchPolicy, JobQueue, QueueClosed, QueueFull

SMALL = BatchKey("m", Task.TEXT_TO_IMAGE, 256, 256, 1, 0.0)
LARGE = BatchKey("m", Task.TEXT_TO_IMAGE, 512, 512, 1, 0.0)


def jobs(key: BatchKey, count: int, first_seed: int = 0) -> list[ImageJob]:
    return [ImageJob(key, "p", first_seed + index) for index in range(count)]


def queue(capacity: int = 100, max_images: int = 4, max_wait_s: float = 0.0) -> JobQueue:
    return JobQueue(capacity, lambda key: BatchPolicy(max_images, max_wait_s))


def test_a_batch_holds_at_most_max_images_of_one_key_in_order():
    q = queue(max_images=4)
    q.put_all(jobs(SMALL, 6))
    assert [job.seed for job in q.next_batch(0)] == [0, 1, 2, 3]
    assert [job.seed for job in q.next_batch(0)] == [4, 5]
    assert len(q) == 0


def test_jobs_of_several_requests_share_a_batch():
    q = queue(max_images=8)
    q.put_all(jobs(SMALL, 2, first_seed=0))  # one request, n=2
    q.put_all(jobs(SMALL, 3, first_seed=10))  # another, n=3
    assert [job.seed for job in q.next_batch(0)] == [0, 1, 10, 11, 12]


def test_the_oldest_job_picks_the_key_and_other_keys_wait_their_turn():
    q = queue(max_images=8)
    q.put_all(jobs(LARGE, 1, first_seed=0))
    q.put_all(jobs(SMALL, 3, first_seed=10))
    q.put_all(jobs(LARGE, 1, first_seed=1))
    first = q.next_batch(0)
    assert [(job.key, job.seed) for job in first] == [(LARGE, 0), (LARGE, 1)]
    assert [job.seed for job in q.next_batch(0)] == [10, 11, 12]


def test_keys_alternate_when_both_keep_coming():
    q = queue(max_images=2)
    q.put_all(jobs(SMALL, 4))
    q.put_all(jobs(LARGE, 1))
    keys = [q.next_batch(0)[0].key for _ in range(3)]
    assert keys == [SMALL, SMALL, LARGE]
    q.put_all(jobs(SMALL, 1))
    q.put_all(jobs(LARGE, 1))
    assert [q.next_batch(0)[0].key for _ in range(2)] == [SMALL, LARGE]


def test_a_batch_waits_for_more_jobs_up_to_max_wait():
    q = queue(max_images=4, max_wait_s=2.0)
    q.put_all(jobs(SMALL, 1))
    later = threading.Timer(0.1, lambda: q.put_all(jobs(SMALL, 3, first_seed=1)))
    later.start()
    started = time.monotonic()
    batch = q.next_batch(1)
    assert [job.seed for job in batch] == [0, 1, 2, 3]
    assert time.monotonic() - started < 1.5  # closed as soon as it was full, not at max wait


def test_a_batch_that_does_not_fill_leaves_at_max_wait():
    q = queue(max_images=4, max_wait_s=0.05)
    q.put_all(jobs(SMALL, 1))
    started = time.monotonic()
    assert len(q.next_batch(1)) == 1
    assert 0.04 <= time.monotonic() - started < 1.0


def test_capacity_refuses_a_whole_submission_and_keeps_nothing_of_it():
    q = queue(capacity=3)
    q.put_all(jobs(SMALL, 2))
    with pytest.raises(QueueFull) as refused:
        q.put_all(jobs(SMALL, 2, first_seed=10))
    assert (refused.value.waiting, refused.value.capacity) == (2, 3)
    assert len(q) == 2
    q.put_all(jobs(SMALL, 1, first_seed=20))
    assert len(q) == 3


def test_idle_timeout_returns_an_empty_batch():
    assert queue().next_batch(0.01) == []


def test_close_wakes_a_waiting_worker_and_drain_returns_what_is_left():
    q = queue(max_images=4, max_wait_s=5.0)
    q.put_all(jobs(SMALL, 2))
    result: list[list[ImageJob]] = []
    worker = threading.Thread(target=lambda: result.append(q.next_batch(5)))
    worker.start()
    time.sleep(0.1)  # the worker is now waiting for the batch to fill
    q.close()
    worker.join(2)
    assert result == [[]]
    assert [job.seed for job in q.drain()] == [0, 1]
    assert len(q) == 0
    with pytest.raises(QueueClosed):
        q.put_all(jobs(SMALL, 1))
