"""The tasks API: AceData's `POST /tasks` (retrieve | retrieve_batch) and `GET /images/tasks/{task_id}`.

A key sees only its own tasks; another key's task answers exactly as an unknown one does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from imageapi.errors import NotFound
from imageapi.http.auth import Authenticated
from imageapi.http.bodies import parse_json, validate
from imageapi.service.tasks import TaskQuery, TasksService

router = APIRouter()


def _tasks(request: Request) -> TasksService:
    return request.app.state.tasks


@router.post("/tasks")
async def query_tasks(request: Request, principal: Authenticated) -> dict[str, Any]:
    body = await parse_json(request)
    return await _tasks(request).query(principal.key_id, validate(TaskQuery, body.fields))


@router.get("/images/tasks/{task_id}")
async def get_task(request: Request, task_id: str, principal: Authenticated) -> dict[str, Any]:
    record = await _tasks(request).record(principal.key_id, task_id)
    if record is None:
        raise NotFound(f"No task found with id '{task_id}'.", param="task_id", code="task_not_found")
    return record
