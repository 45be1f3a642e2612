"""What the task store keeps: tasks, their input files, callback deliveries and attempts; and the port
(`TaskStore`) that the service layer talks to. The SQLite adapter is in `store.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class InputFile:
    field: str  # the multipart field it came in: image or mask
    path: str


@dataclass(frozen=True)
class NewTask:
    id: str
    type: str
    owner: str
    trace_id: str
    request: dict[str, Any]
    base_url: str
    callback_url: str | None
    inputs: tuple[InputFile, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TaskRow(NewTask):
    """A stored task: what was submitted, plus where it stands."""

    state: TaskState
    response: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class Attempt:
    number: int
    at: float
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Delivery:
    task_id: str
    url: str
    body: bytes
    state: DeliveryState
    attempts: int
    next_attempt_at: float | None
    delivered_at: float | None
    history: tuple[Attempt, ...] = field(default=())


@dataclass(frozen=True)
class TaskFilter:
    owner: str
    ids: Sequence[str] = ()
    trace_ids: Sequence[str] = ()
    types: Sequence[str] = ()
    created_at_min: float | None = None
    created_at_max: float | None = None


class TaskStore(Protocol):
    async def add(self, task: NewTask) -> TaskRow: ...
    async def get(self, owner: str, task_id: str) -> TaskRow | None: ...
    async def get_by_trace_id(self, owner: str, trace_id: str) -> TaskRow | None: ...
    async def find(self, query: TaskFilter, offset: int, limit: int) -> tuple[list[TaskRow], int]: ...
    async def recover(self) -> int: ...
    async def requeue(self, task_id: str) -> None: ...
    async def claim_next(self) -> TaskRow | None: ...
    async def finish(self, task_id: str, state: TaskState, response: dict[str, Any],
                     callback_body: bytes | None) -> None: ...
    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]: ...
    async def next_delivery_at(self) -> float | None: ...
    async def record_attempt(self, task_id: str, attempt: Attempt, *, delivered: bool,
                             next_attempt_at: float | None) -> None: ...
    async def delivery(self, task_id: str) -> Delivery | None: ...
    def close(self) -> None: ...
