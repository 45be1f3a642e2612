"""Runs queued async tasks through the same ImagesService calls as the sync path, and delivers callbacks.

On start, tasks a crash (or a stop) left `running` are queued again and undelivered callbacks resume: the
store, not memory, says what is left to do. `task_workers` tasks run at once; a task that meets a full GPU
queue (429) or a model not ready (503) goes back to the queue instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from imageapi.errors import ImageAPIError, InternalError, ServiceUnavailable, TooManyRequests
from imageapi.service.images import ImagesService, RequestContext
from imageapi.service.requests import ImageEditRequest, ImageGenerationRequest, ImageVariationRequest
from imageapi.service.tasks import TasksService, TaskType
from imageapi.service.uploads import UploadedFile
from imageapi.tasks.records import Attempt, Delivery, TaskRow, TaskState, TaskStore
from imageapi.tasks.webhooks import RetryPolicy, WebhookSender

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
BUSY_RETRY_S = 1.0
MAX_DELIVERIES_AT_ONCE = 32


def _callback_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def outcome_bodies(row: TaskRow, response: dict[str, Any] | None, error: ImageAPIError | None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the record's flat `response`, the callback body): spec §10.5 and §10.4."""
    ids = {"task_id": row.id, "trace_id": row.trace_id}
    if error is not None:
        failure = {"success": False, **ids, "error": {"code": error.code, "message": error.message}}
        return failure, failure
    assert response is not None
    return {"success": True, **ids, **response}, {"success": True, **ids, "data": response}


class TaskRunner:
    def __init__(self, store: TaskStore, images: ImagesService, tasks: TasksService, sender: WebhookSender,
                 policy: RetryPolicy, *, workers: int) -> None:
        self._store = store
        self._images = images
        self._tasks = tasks
        self._sender = sender
        self._policy = policy
        self._workers = workers
        self._work = asyncio.Event()
        self._deliveries = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._work.set()

    async def start(self) -> None:
        recovered = await self._store.recover()
        if recovered:
            log.info("re-queued %d async tasks interrupted by a stop or crash", recovered)
        self._loops = [asyncio.create_task(self._work_loop(), name=f"task-worker-{index}")
                       for index in range(self._workers)]
        self._loops.append(asyncio.create_task(self._delivery_loop(), name="task-callbacks"))

    async def stop(self) -> None:
        """Cancels everything; interrupted tasks stay `running` in the store and run again at next start."""
        pending = [*self._loops, *self._in_flight.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._sender.aclose()

    # ----- running tasks -----

    async def _wait(self, event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    async def _work_loop(self) -> None:
        while True:
            try:
                await self._work_once()
            except Exception:  # the store failed (disk, lock): a claimed task stays running, re-run at next start
                log.exception("the async task loop could not use the task store; retrying")
                await asyncio.sleep(BUSY_RETRY_S)

    async def _work_once(self) -> None:
        if not self._images.health()[0]:  # models still loading (or failed): tasks wait in the queue
            await asyncio.sleep(0.2)
            return
        row = await self._store.claim_next()
        if row is None:
            self._work.clear()
            row = await self._store.claim_next()  # again after clear(): a wake-up in between is not lost
        if row is None:
            await self._wait(self._work, IDLE_POLL_S)
            return
        await self._run(row)

    async def _run(self, row: TaskRow) -> None:
        response, error = None, None
        try:
            response = await self._execute(row)
        except (TooManyRequests, ServiceUnavailable) as busy:
            if busy.headers.get("x-should-retry") != "false":  # busy for now: run it again later
                await asyncio.sleep(BUSY_RETRY_S)
                await self._store.requeue(row.id)
                self._work.set()
                return
            error = busy  # it can never run (e.g. the queue was made smaller since it was acknowledged)
        except ImageAPIError as failed:
            error = failed
        except Exception:
            log.exception("async task %s failed (trace %s)", row.id, row.trace_id)
            error = InternalError()
        flat, callback = outcome_bodies(row, response, error)
        state = TaskState.FAILED if error else TaskState.SUCCEEDED
        await self._store.finish(row.id, state, flat, _callback_json(callback) if row.callback_url else None)
        await asyncio.to_thread(self._tasks.remove_inputs, row.id)
        if row.callback_url:
            self._deliveries.set()

    async def _execute(self, row: TaskRow) -> dict[str, Any]:
        context = RequestContext(trace_id=row.trace_id, base_url=row.base_url)
        uploads = await asyncio.to_thread(
            lambda: [UploadedFile(item.field, Path(item.path).read_bytes()) for item in row.inputs])
        if row.type == TaskType.GENERATIONS:
            return await self._images.generate(ImageGenerationRequest.model_validate(row.request), context)
        if row.type == TaskType.EDITS:
            masks = [upload for upload in uploads if upload.field == "mask"]
            images = [upload for upload in uploads if upload.field != "mask"]
            return await self._images.edit(ImageEditRequest.model_validate(row.request), images,
                                           masks[0] if masks else None, context)
        if row.type == TaskType.VARIATIONS:
            return await self._images.variation(ImageVariationRequest.model_validate(row.request), uploads[0],
                                                context)
        raise ValueError(f"unknown task type {row.type!r}")

    # ----- callbacks -----

    async def _delivery_loop(self) -> None:
        while True:
            try:
                await self._deliver_due()
            except Exception:  # the store failed: undelivered callbacks stay due and are picked up again
                log.exception("the callback loop could not use the task store; retrying")
                await asyncio.sleep(BUSY_RETRY_S)

    async def _deliver_due(self) -> None:
        self._deliveries.clear()
        due = await self._store.due_deliveries(time.time(), MAX_DELIVERIES_AT_ONCE)
        for delivery in due:
            if delivery.task_id not in self._in_flight:
                sending = asyncio.create_task(self._deliver(delivery))
                self._in_flight[delivery.task_id] = sending
                sending.add_done_callback(lambda _, task_id=delivery.task_id: self._delivered(task_id))
        next_at = await self._store.next_delivery_at()
        wait_s = IDLE_POLL_S if next_at is None else min(IDLE_POLL_S, max(0.0, next_at - time.time()))
        if self._in_flight and wait_s == 0.0:
            wait_s = IDLE_POLL_S  # what is due is already being sent; its end sets the event
        await self._wait(self._deliveries, wait_s)

    def _delivered(self, task_id: str) -> None:
        self._in_flight.pop(task_id, None)
        self._deliveries.set()

    async def _deliver(self, delivery: Delivery) -> None:
        number = delivery.attempts + 1
        started = time.time()
        try:
            outcome = await self._sender.send(delivery.url, delivery.body)
            delivered, status, error = outcome.delivered, outcome.status_code, outcome.error
        except Exception:
            log.exception("callback of task %s: attempt %d failed unexpectedly", delivery.task_id, number)
            delivered, status, error = False, None, "internal error"
        delay = None if delivered else self._policy.delay_after(number)
        await self._store.record_attempt(delivery.task_id, Attempt(number, started, status, error),
                                         delivered=delivered,
                                         next_attempt_at=None if delay is None else time.time() + delay)
        if not delivered:
            log.info("callback of task %s: attempt %d failed (%s)%s", delivery.task_id, number, error or status,
                     "; giving up" if delay is None else f"; next in {delay:.1f}s")
