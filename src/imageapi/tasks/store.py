"""The task store: async tasks and their callback outbox, durable across crashes.

`TaskStore` is the port; `SqliteTaskStore` the single-node adapter (one SQLite file in the data dir, WAL,
synchronous=FULL so an acknowledged task survives a power cut). Every SQLite call runs on one dedicated
thread that owns the connection, so the event loop never blocks on disk and calls never interleave.

A task's end and its callback entry are written in one transaction: a finished task with a callback URL
always has an outbox row, so no callback can be lost between the two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from imageapi.tasks.records import (
    Attempt,
    Delivery,
    DeliveryState,
    InputFile,
    NewTask,
    TaskFilter,
    TaskRow,
    TaskState,
    TaskStore,
)

__all__ = ["Attempt", "Delivery", "DeliveryState", "InputFile", "NewTask", "SqliteTaskStore", "TaskFilter",
           "TaskRow", "TaskState", "TaskStore"]

Result = TypeVar("Result")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, owner TEXT NOT NULL, trace_id TEXT NOT NULL,
    request TEXT NOT NULL, inputs TEXT NOT NULL, base_url TEXT NOT NULL, callback_url TEXT,
    state TEXT NOT NULL, response TEXT, runs INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_at);
CREATE INDEX IF NOT EXISTS tasks_by_trace ON tasks (owner, trace_id);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    task_id TEXT PRIMARY KEY REFERENCES tasks (id), url TEXT NOT NULL, body BLOB NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL,
    last_status INTEGER, last_error TEXT, delivered_at REAL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    task_id TEXT NOT NULL REFERENCES tasks (id), number INTEGER NOT NULL, at REAL NOT NULL,
    status_code INTEGER, error TEXT, PRIMARY KEY (task_id, number));
"""

_TASK_COLUMNS = ("id, type, owner, trace_id, request, inputs, base_url, callback_url, state, response, "
                 "created_at, started_at, finished_at")


def _task_from_row(row: sqlite3.Row) -> TaskRow:
    return TaskRow(
        id=row["id"], type=row["type"], owner=row["owner"], trace_id=row["trace_id"],
        request=json.loads(row["request"]), base_url=row["base_url"], callback_url=row["callback_url"],
        inputs=tuple(InputFile(**item) for item in json.loads(row["inputs"])), state=TaskState(row["state"]),
        response=json.loads(row["response"]) if row["response"] is not None else None,
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"])


def _delivery_from_row(row: sqlite3.Row, history: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(task_id=row["task_id"], url=row["url"], body=bytes(row["body"]),
                    state=DeliveryState(row["state"]), attempts=row["attempts"],
                    next_attempt_at=row["next_attempt_at"], delivered_at=row["delivered_at"], history=history)


class SqliteTaskStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="imageapi-taskstore")
        self._db: sqlite3.Connection | None = None
        self._thread.submit(self._open).result()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; transactions are explicit
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        self._db = db

    def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._thread.submit(shut).result()
        self._thread.shutdown(wait=True)

    async def _call(self, work: Callable[[sqlite3.Connection], Result]) -> Result:
        def run() -> Result:
            assert self._db is not None, "task store is closed"
            return work(self._db)

        return await asyncio.wrap_future(self._thread.submit(run))

    @staticmethod
    def _transaction(db: sqlite3.Connection, work: Callable[[], Result]) -> Result:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # ----- tasks -----

    async def add(self, task: NewTask) -> TaskRow:
        now = time.time()
        inputs = json.dumps([{"field": item.field, "path": item.path} for item in task.inputs])

        def insert(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,NULL,?,NULL,NULL)",
                       (task.id, task.type, task.owner, task.trace_id, json.dumps(task.request), inputs,
                        task.base_url, task.callback_url, TaskState.QUEUED.value, now))

        await self._call(insert)
        submitted = {field.name: getattr(task, field.name) for field in dataclasses.fields(task)}
        return TaskRow(**submitted, state=TaskState.QUEUED, response=None, created_at=now, started_at=None,
                       finished_at=None)

    async def get(self, owner: str, task_id: str) -> TaskRow | None:
        def select(db: sqlite3.Connection) -> TaskRow | None:
            row = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ? AND owner = ?",
                             (task_id, owner)).fetchone()
            return _task_from_row(row) if row else None

        return await self._call(select)

    async def get_by_trace_id(self, owner: str, trace_id: str) -> TaskRow | None:
        def select(db: sqlite3.Connection) -> TaskRow | None:
            row = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE trace_id = ? AND owner = ? "
                             "ORDER BY created_at DESC LIMIT 1", (trace_id, owner)).fetchone()
            return _task_from_row(row) if row else None

        return await self._call(select)

    async def find(self, query: TaskFilter, offset: int, limit: int) -> tuple[list[TaskRow], int]:
        clauses, values = ["owner = ?"], [query.owner]
        for column, wanted in (("id", query.ids), ("trace_id", query.trace_ids), ("type", query.types)):
            if wanted:
                clauses.append(f"{column} IN ({','.join('?' * len(wanted))})")
                values.extend(wanted)
        if query.created_at_min is not None:
            clauses.append("created_at >= ?")
            values.append(query.created_at_min)
        if query.created_at_max is not None:
            clauses.append("created_at <= ?")
            values.append(query.created_at_max)
        where = " AND ".join(clauses)

        def select(db: sqlite3.Connection) -> tuple[list[TaskRow], int]:
            total = db.execute(f"SELECT COUNT(*) FROM tasks WHERE {where}", values).fetchone()[0]
            rows = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {where} ORDER BY created_at DESC, id "
                              "LIMIT ? OFFSET ?", [*values, limit, offset]).fetchall()
            return [_task_from_row(row) for row in rows], total

        return await self._call(select)

    async def recover(self) -> int:
        """After a crash or a stop: tasks that were running are queued again. Returns how many."""
        def requeue(db: sqlite3.Connection) -> int:
            return db.execute("UPDATE tasks SET state = ?, started_at = NULL WHERE state = ?",
                              (TaskState.QUEUED.value, TaskState.RUNNING.value)).rowcount

        return await self._call(requeue)

    async def requeue(self, task_id: str) -> None:
        """A running task back to the queue (the GPU queue was full); it keeps its place by creation time."""
        def write(db: sqlite3.Connection) -> None:
            db.execute("UPDATE tasks SET state = ?, started_at = NULL WHERE id = ? AND state = ?",
                       (TaskState.QUEUED.value, task_id, TaskState.RUNNING.value))

        await self._call(write)

    async def claim_next(self) -> TaskRow | None:
        """The oldest queued task, marked running (and its start stamped) in the same transaction."""
        def claim(db: sqlite3.Connection) -> TaskRow | None:
            def work() -> TaskRow | None:
                row = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE state = ? ORDER BY created_at, id "
                                 "LIMIT 1", (TaskState.QUEUED.value,)).fetchone()
                if row is None:
                    return None
                db.execute("UPDATE tasks SET state = ?, started_at = ?, runs = runs + 1 WHERE id = ?",
                           (TaskState.RUNNING.value, time.time(), row["id"]))
                return _task_from_row(db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?",
                                                 (row["id"],)).fetchone())

            return self._transaction(db, work)

        return await self._call(claim)

    async def finish(self, task_id: str, state: TaskState, response: dict[str, Any],
                     callback_body: bytes | None) -> None:
        def write(db: sqlite3.Connection) -> None:
            def work() -> None:
                now = time.time()
                db.execute("UPDATE tasks SET state = ?, response = ?, finished_at = ? WHERE id = ?",
                           (state.value, json.dumps(response), now, task_id))
                if callback_body is not None:
                    db.execute("INSERT OR REPLACE INTO deliveries (task_id, url, body, state, attempts, "
                               "next_attempt_at, created_at) SELECT id, callback_url, ?, ?, 0, ?, ? FROM tasks "
                               "WHERE id = ? AND callback_url IS NOT NULL",
                               (callback_body, DeliveryState.PENDING.value, now, now, task_id))

            self._transaction(db, work)

        await self._call(write)

    # ----- callback outbox -----

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        def select(db: sqlite3.Connection) -> list[Delivery]:
            rows = db.execute("SELECT * FROM deliveries WHERE state = ? AND next_attempt_at <= ? "
                              "ORDER BY next_attempt_at LIMIT ?", (DeliveryState.PENDING.value, now, limit))
            return [_delivery_from_row(row) for row in rows.fetchall()]

        return await self._call(select)

    async def next_delivery_at(self) -> float | None:
        def select(db: sqlite3.Connection) -> float | None:
            return db.execute("SELECT MIN(next_attempt_at) FROM deliveries WHERE state = ?",
                              (DeliveryState.PENDING.value,)).fetchone()[0]

        return await self._call(select)

    async def record_attempt(self, task_id: str, attempt: Attempt, *, delivered: bool,
                             next_attempt_at: float | None) -> None:
        """One attempt, with what comes next: delivered, retried at next_attempt_at, or given up (None)."""
        state = (DeliveryState.DELIVERED if delivered else
                 DeliveryState.PENDING if next_attempt_at is not None else DeliveryState.GAVE_UP)

        def write(db: sqlite3.Connection) -> None:
            def work() -> None:
                db.execute("INSERT OR REPLACE INTO delivery_attempts (task_id, number, at, status_code, error) "
                           "VALUES (?,?,?,?,?)",
                           (task_id, attempt.number, attempt.at, attempt.status_code, attempt.error))
                db.execute("UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, "
                           "last_error = ?, delivered_at = ? WHERE task_id = ?",
                           (state.value, attempt.number, None if delivered else next_attempt_at,
                            attempt.status_code, attempt.error, attempt.at if delivered else None, task_id))

            self._transaction(db, work)

        await self._call(write)

    async def delivery(self, task_id: str) -> Delivery | None:
        def select(db: sqlite3.Connection) -> Delivery | None:
            row = db.execute("SELECT * FROM deliveries WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            history = tuple(Attempt(item["number"], item["at"], item["status_code"], item["error"])
                            for item in db.execute("SELECT * FROM delivery_attempts WHERE task_id = ? "
                                                   "ORDER BY number", (task_id,)).fetchall())
            return _delivery_from_row(row, history)

        return await self._call(select)
