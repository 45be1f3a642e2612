"""The SQLite task store: what is written survives a close and reopen; recovery, claiming and the outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from imageapi.tasks.store import (
    Attempt,
    DeliveryState,
    InputFile,
    NewTask,
    SqliteTaskStore,
    TaskFilter,
    TaskState,
)


def new_task(task_id: str, owner: str = "key_a", callback_url: str | None = "http://example.com/hook",
             trace_id: str | None = None) -> NewTask:
    return NewTask(id=task_id, type="images_edits", owner=owner, trace_id=trace_id or f"trace-{task_id}",
                   request={"prompt": "a cat", "async": True}, base_url="http://testserver/",
                   callback_url=callback_url, inputs=(InputFile("image", "/data/x/0-image"),))


def test_reopen_keeps_tasks_results_and_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"

    async def first_life() -> None:
        store = SqliteTaskStore(path)
        await store.add(new_task("t1"))
        await store.add(new_task("t2"))
        claimed = await store.claim_next()
        assert claimed is not None and claimed.id == "t1" and claimed.state is TaskState.RUNNING
        await store.finish("t1", TaskState.SUCCEEDED, {"success": True, "data": []}, b'{"success":true}')
        await store.record_attempt("t1", Attempt(1, 10.0, 500, "HTTP 500"), delivered=False, next_attempt_at=11.0)
        assert await store.claim_next() is not None  # t2 left running, as by a crash
        store.close()

    async def second_life() -> None:
        store = SqliteTaskStore(path)
        try:
            assert await store.recover() == 1
            t1 = await store.get("key_a", "t1")
            assert t1 is not None and t1.state is TaskState.SUCCEEDED
            assert t1.response == {"success": True, "data": []} and t1.finished_at is not None
            assert t1.inputs == (InputFile("image", "/data/x/0-image"),)
            assert t1.request == {"prompt": "a cat", "async": True}
            t2 = await store.get("key_a", "t2")
            assert t2 is not None and t2.state is TaskState.QUEUED and t2.started_at is None
            delivery = await store.delivery("t1")
            assert delivery is not None and delivery.state is DeliveryState.PENDING
            assert delivery.body == b'{"success":true}' and delivery.attempts == 1
            assert delivery.history == (Attempt(1, 10.0, 500, "HTTP 500"),)
            assert [item.task_id for item in await store.due_deliveries(11.0, 10)] == ["t1"]
            assert await store.due_deliveries(10.5, 10) == []
        finally:
            store.close()

    asyncio.run(first_life())
    asyncio.run(second_life())


def test_owner_scoping_trace_lookup_and_batch_filters(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteTaskStore(tmp_path / "tasks.sqlite3")
        try:
            for index in range(5):
                await store.add(new_task(f"a{index}", trace_id="shared" if index < 2 else None))
            await store.add(new_task("b0", owner="key_b", trace_id="shared"))
            assert await store.get("key_b", "a0") is None
            latest = await store.get_by_trace_id("key_a", "shared")
            assert latest is not None and latest.id == "a1"
            rows, total = await store.find(TaskFilter(owner="key_a"), offset=1, limit=2)
            assert total == 5 and [row.id for row in rows] == ["a3", "a2"]
            rows, total = await store.find(TaskFilter(owner="key_a", ids=["a0", "b0"]), offset=0, limit=10)
            assert total == 1 and rows[0].id == "a0"
            rows, total = await store.find(TaskFilter(owner="key_a", types=["images_generations"]), 0, 10)
            assert (rows, total) == ([], 0)
            cutoff = (await store.get("key_a", "a2")).created_at  # type: ignore[union-attr]
            _, total = await store.find(TaskFilter(owner="key_a", created_at_min=cutoff), 0, 10)
            assert total == 3
        finally:
            store.close()

    asyncio.run(scenario())


def test_delivery_given_up_and_delivered_states(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteTaskStore(tmp_path / "tasks.sqlite3")
        try:
            for task_id in ("ok", "lost", "nocallback"):
                await store.add(new_task(task_id, callback_url=None if task_id == "nocallback" else "http://e/h"))
                await store.claim_next()
                await store.finish(task_id, TaskState.FAILED, {"success": False}, b"{}")
            assert await store.delivery("nocallback") is None  # no callback_url: nothing to deliver
            await store.record_attempt("ok", Attempt(1, 5.0, 200, None), delivered=True, next_attempt_at=None)
            await store.record_attempt("lost", Attempt(1, 5.0, None, "timed out"), delivered=False,
                                       next_attempt_at=None)
            ok, lost = await store.delivery("ok"), await store.delivery("lost")
            assert ok is not None and ok.state is DeliveryState.DELIVERED and ok.delivered_at == 5.0
            assert lost is not None and lost.state is DeliveryState.GAVE_UP and lost.next_attempt_at is None
            assert await store.next_delivery_at() is None
        finally:
            store.close()

    asyncio.run(scenario())


def test_async_inputs_and_every_new_directory_entry_are_fsynced(tmp_path, monkeypatch):
    """An acknowledged task's inputs survive a power cut: the files, the task's folder, and its entry."""
    import os

    from imageapi.service.tasks import TasksService
    from imageapi.service.uploads import UploadedFile

    opened: dict[int, str] = {}
    synced: list[str] = []
    real_open, real_fsync = os.open, os.fsync

    def recording_open(path, flags, *args, **kwargs):
        descriptor = real_open(path, flags, *args, **kwargs)
        opened[descriptor] = str(path)
        return descriptor

    def recording_fsync(descriptor):
        synced.append(opened.get(descriptor) or os.readlink(f"/proc/self/fd/{descriptor}"))
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    service = TasksService(None, None, tmp_path / "task-inputs", allow_private_urls=False, wake_runner=lambda: None)
    saved = service._save_inputs("abc", [UploadedFile("image", b"123")])
    assert {saved[0].path, str(tmp_path / "task-inputs" / "abc"), str(tmp_path / "task-inputs"),
            str(tmp_path)} <= set(synced)
