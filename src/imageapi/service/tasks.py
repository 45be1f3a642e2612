"""AceData's async mode: submission (check, persist, acknowledge) and the task records clients poll.

A submission is checked exactly as the sync call would be (the same `ImagesService` methods with
`check_only=True`), its callback URL is checked by the URL guard, its input files and row are written
durably, and only then is `{"task_id", "trace_id"}` answered. Running is `service/task_runner.py`'s job.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imageapi import netguard
from imageapi.errors import InvalidRequest, invalid_choice
from imageapi.service.images import ImagesService, RequestContext
from imageapi.service.requests import (
    ImageEditRequest,
    ImageGenerationRequest,
    ImageRequest,
    ImageVariationRequest,
)
from imageapi.service.uploads import UploadedFile
from imageapi.tasks.records import Delivery, InputFile, NewTask, TaskFilter, TaskRow, TaskStore


class TaskType(StrEnum):
    GENERATIONS = "images_generations"
    EDITS = "images_edits"
    VARIATIONS = "images_variations"


TASK_QUERY_ACTIONS = ("retrieve", "retrieve_batch")
MAX_BATCH_LIMIT = 100


def wants_task(request: ImageRequest) -> bool:
    return request.callback_url is not None or bool(request.async_mode)


@dataclass(frozen=True)
class Submitter:
    owner: str  # Principal.key_id: only this key can read the task
    trace_id: str  # the HTTP request's trace id; a client-given trace_id wins over it
    base_url: str


# Input images (uploads, or URLs already fetched) live as the task's input files, not in its `request`.
INPUT_IMAGE_FIELDS = {"image", "images", "mask"}


class TaskQuery(BaseModel):
    """`POST /openai/tasks` body, in AceData's form."""

    model_config = ConfigDict(extra="allow")

    action: str | None = None
    id: str | None = None
    trace_id: str | None = None
    ids: list[str] | None = None
    trace_ids: list[str] | None = None
    type: str | None = None
    offset: int | None = Field(None, ge=0, lt=2**63)
    limit: int | None = Field(None, ge=1, le=MAX_BATCH_LIMIT)
    created_at_min: float | None = None
    created_at_max: float | None = None


def task_record(row: TaskRow, delivery: Delivery | None) -> dict[str, Any]:
    """AceData's OpenaiTaskRecord, plus `state` and (with a callback_url) `callback`: how delivery went."""
    elapsed = None
    if row.started_at is not None and row.finished_at is not None:
        elapsed = round(row.finished_at - row.started_at, 3)
    record: dict[str, Any] = {
        "id": row.id, "type": row.type, "trace_id": row.trace_id, "state": row.state.value, "request": row.request,
        "response": row.response, "created_at": row.created_at, "started_at": row.started_at,
        "finished_at": row.finished_at, "elapsed": elapsed}
    if row.callback_url is not None:
        record["callback"] = {
            "url": row.callback_url, "state": delivery.state.value if delivery else "waiting_for_result",
            "delivered_at": delivery.delivered_at if delivery else None,
            "next_attempt_at": delivery.next_attempt_at if delivery else None,
            "attempts": [{"number": item.number, "at": item.at, "status_code": item.status_code,
                          "error": item.error} for item in (delivery.history if delivery else ())]}
    return record


class TasksService:
    def __init__(self, store: TaskStore, images: ImagesService, inputs_dir: Path, *, allow_private_urls: bool,
                 wake_runner: Callable[[], None]) -> None:
        self._store = store
        self._images = images
        self._inputs_dir = inputs_dir
        self._allow_private_urls = allow_private_urls
        self._wake_runner = wake_runner

    # ----- submission -----

    async def submit_generation(self, request: ImageGenerationRequest, submitter: Submitter) -> dict[str, Any]:
        context = RequestContext(submitter.trace_id, submitter.base_url)
        return await self._submit(TaskType.GENERATIONS, request, submitter, [],
                                  lambda: self._images.generate(request, context, check_only=True))

    async def submit_edit(self, request: ImageEditRequest, images: Sequence[UploadedFile], mask: UploadedFile | None,
                          submitter: Submitter) -> dict[str, Any]:
        context = RequestContext(submitter.trace_id, submitter.base_url)
        uploads = [*images, *([mask] if mask else [])]
        return await self._submit(TaskType.EDITS, request, submitter, uploads,
                                  lambda: self._images.edit(request, images, mask, context, check_only=True))

    async def submit_variation(self, request: ImageVariationRequest, image: UploadedFile,
                               submitter: Submitter) -> dict[str, Any]:
        context = RequestContext(submitter.trace_id, submitter.base_url)
        return await self._submit(TaskType.VARIATIONS, request, submitter, [image],
                                  lambda: self._images.variation(request, image, context, check_only=True))

    async def _submit(self, task_type: TaskType, request: ImageRequest, submitter: Submitter,
                      uploads: Sequence[UploadedFile], check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        await check()
        if request.callback_url is not None:
            await self._check_callback_url(request.callback_url)
        task_id = str(uuid.uuid4())
        trace_id = request.trace_id or submitter.trace_id
        inputs = await asyncio.to_thread(self._save_inputs, task_id, uploads)
        await self._store.add(NewTask(
            id=task_id, type=task_type.value, owner=submitter.owner, trace_id=trace_id,
            request=request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=INPUT_IMAGE_FIELDS),
            base_url=submitter.base_url, callback_url=request.callback_url, inputs=tuple(inputs)))
        self._wake_runner()
        return {"task_id": task_id, "trace_id": trace_id}

    async def _check_callback_url(self, url: str) -> None:
        try:
            await asyncio.to_thread(netguard.check_url, url, allow_private=self._allow_private_urls)
        except netguard.RefusedURL as refused:
            raise InvalidRequest(f"Invalid 'callback_url': {refused}.", param="callback_url") from None

    def _save_inputs(self, task_id: str, uploads: Sequence[UploadedFile]) -> list[InputFile]:
        """Writes and fsyncs the input files before the task row exists: an acknowledged task has its inputs."""
        if not uploads:
            return []
        folder = self._inputs_dir / task_id
        folder.mkdir(parents=True)
        saved = []
        for index, upload in enumerate(uploads):
            path = folder / f"{index}-{upload.field}"
            with open(path, "wb") as handle:
                handle.write(upload.data)
                handle.flush()
                os.fsync(handle.fileno())
            saved.append(InputFile(field=upload.field, path=str(path)))
        # The new entries must reach the disk too: the task's folder, its entry in task-inputs/, and
        # task-inputs/ itself in the data dir (made on first use).
        for directory in (folder, self._inputs_dir, self._inputs_dir.parent):
            _fsync_directory(directory)
        return saved

    def remove_inputs(self, task_id: str) -> None:
        shutil.rmtree(self._inputs_dir / task_id, ignore_errors=True)

    # ----- reading -----

    async def record(self, owner: str, task_id: str) -> dict[str, Any] | None:
        row = await self._store.get(owner, task_id)
        return await self._with_delivery(row) if row else None

    async def query(self, owner: str, query: TaskQuery) -> dict[str, Any]:
        action = query.action or "retrieve"
        if action not in TASK_QUERY_ACTIONS:
            raise invalid_choice("action", action, TASK_QUERY_ACTIONS)
        if action == "retrieve":
            if query.trace_id:  # AceData: when both are given, trace_id wins
                row = await self._store.get_by_trace_id(owner, query.trace_id)
            elif query.id:
                row = await self._store.get(owner, query.id)
            else:
                raise InvalidRequest("Missing required parameter: 'id' (or 'trace_id').", param="id",
                                     code="missing_required_parameter")
            return await self._with_delivery(row) if row else {}
        types = [] if query.type in (None, "images") else [query.type or ""]
        rows, count = await self._store.find(
            TaskFilter(owner=owner, ids=query.ids or (), trace_ids=query.trace_ids or (), types=types,
                       created_at_min=query.created_at_min, created_at_max=query.created_at_max),
            offset=query.offset or 0, limit=query.limit or 12)
        return {"items": [await self._with_delivery(row) for row in rows], "count": count}

    async def _with_delivery(self, row: TaskRow) -> dict[str, Any]:
        delivery = await self._store.delivery(row.id) if row.callback_url else None
        return task_record(row, delivery)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
