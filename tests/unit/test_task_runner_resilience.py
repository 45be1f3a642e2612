"""A transient task-store error must not stop the task workers or the callback loop for good."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from imageapi.service.task_runner import TaskRunner
from imageapi.tasks.records import NewTask, TaskState
from imageapi.tasks.store import SqliteTaskStore
from imageapi.tasks.webhooks import RetryPolicy


class ReadyImages:
    def health(self):
        return True, {}

    async def generate(self, request, context):
        return {"created": 1, "data": []}


class NoInputs:
    def remove_inputs(self, task_id):
        pass


class UnusedSender:
    async def aclose(self):
        pass


class FlakyStore(SqliteTaskStore):
    """Fails the first claim and the first look at due callbacks, as a locked or busy disk would."""

    claim_failures = 1
    delivery_failures = 1

    async def claim_next(self):
        if self.claim_failures:
            self.claim_failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().claim_next()

    async def due_deliveries(self, now, limit):
        if self.delivery_failures:
            self.delivery_failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return await super().due_deliveries(now, limit)


def test_loops_survive_a_store_error(tmp_path: Path):
    async def scenario() -> TaskState:
        store = FlakyStore(tmp_path / "tasks.sqlite3")
        runner = TaskRunner(store, ReadyImages(), NoInputs(), UnusedSender(), RetryPolicy(3, 10), workers=1)
        await runner.start()
        try:
            await asyncio.sleep(0.3)
            assert not any(loop.done() for loop in runner._loops)
            await store.add(NewTask(id="t1", type="images_generations", owner="k", trace_id="tr",
                                    request={"prompt": "x"}, base_url="http://127.0.0.1/", callback_url=None))
            runner.wake()
            for _ in range(100):
                row = await store.get("k", "t1")
                if row is not None and row.state is TaskState.SUCCEEDED:
                    break
                await asyncio.sleep(0.1)
            assert store.delivery_failures == 0 and not any(loop.done() for loop in runner._loops)
            return row.state
        finally:
            await runner.stop()
            store.close()

    assert asyncio.run(scenario()) is TaskState.SUCCEEDED
