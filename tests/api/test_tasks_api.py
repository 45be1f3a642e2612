"""Async mode in-process: submissions checked like sync calls, the tasks API's forms and errors, a failure
callback that carries no internal text, and async edits whose inputs are persisted then cleaned up."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1]))

from callback_receiver import CallbackReceiver
from support import assert_error, mask_bytes, png_bytes


def wait_finished(client: TestClient, task_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = client.post("/openai/tasks", json={"action": "retrieve", "id": task_id}).json()
        if record.get("finished_at"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def task_count(client: TestClient) -> int:
    return client.post("/openai/tasks", json={"action": "retrieve_batch"}).json()["count"]


GEN = {"prompt": "a cat", "size": "256x256"}
IMAGE = ("image", ("a.png", png_bytes(), "image/png"))


@pytest.mark.parametrize(("path", "json", "data", "files", "code", "param"), [
    ("/v1/images/generations", {**GEN, "size": "257x256", "async": True}, None, None, "invalid_value", "size"),
    ("/v1/images/generations", {**GEN, "n": 99, "callback_url": "https://example.com/h"}, None, None,
     "invalid_value", "n"),
    ("/v1/images/generations", {**GEN, "async": "maybe"}, None, None, "invalid_type", "async"),
    ("/v1/images/generations", {**GEN, "callback_url": "ftp://example.com/h"}, None, None, "invalid_value",
     "callback_url"),
    ("/v1/images/generations", {**GEN, "callback_url": "http://127.0.0.1:9/h"}, None, None, "invalid_value",
     "callback_url"),
    ("/openai/images/generations", {**GEN, "callback_url": "http://169.254.169.254/latest"}, None, None,
     "invalid_value", "callback_url"),
    ("/v1/images/edits", None, {"prompt": "x", "async": "true"}, [("other", ("a.png", png_bytes(), "image/png"))],
     "missing_required_parameter", "image"),
    ("/v1/images/edits", None, {"prompt": "x", "async": "true"}, [("image", ("a.png", b"not an image", "image/png"))],
     "invalid_image_format", "image"),
    ("/v1/images/variations", None, {"async": "true", "response_format": "gif"}, [IMAGE], "invalid_value",
     "response_format"),
])
def test_invalid_async_requests_fail_synchronously_and_store_nothing(
        client: TestClient, path: str, json: Any, data: Any, files: Any, code: str, param: str) -> None:
    before = task_count(client)
    response = client.post(path, json=json) if json is not None else client.post(path, data=data, files=files)
    assert_error(response, 400, code, param)
    assert task_count(client) == before


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"action": "delete"}, "invalid_value", "action"),
    ({"action": "retrieve"}, "missing_required_parameter", "id"),
    ({"action": "retrieve_batch", "limit": 0}, "invalid_value", "limit"),
    ({"action": "retrieve_batch", "limit": 101}, "invalid_value", "limit"),
    ({"action": "retrieve_batch", "offset": -1}, "invalid_value", "offset"),
    ({"action": "retrieve_batch", "ids": "not-a-list"}, "invalid_value", "ids"),
])
def test_tasks_query_errors(client: TestClient, body: dict[str, Any], code: str, param: str) -> None:
    response = client.post("/openai/tasks", json=body)
    assert_error(response, 400, code, param)


def test_unknown_tasks_answer_empty_object_or_404(client: TestClient) -> None:
    for body in ({"id": "nope"}, {"action": "retrieve", "trace_id": "nope"}):
        response = client.post("/v1/tasks", json=body)
        assert response.status_code == 200 and response.json() == {}
    assert_error(client.get("/v1/images/tasks/nope"), 404, "task_not_found", "task_id")
    assert_error(client.post("/openai/tasks", content=b"[1]", headers={"content-type": "application/json"}),
                 400, "invalid_json", None)


def test_retrieve_forms_and_batch_paging(client: TestClient) -> None:
    ids = [client.post("/v1/images/generations", json={**GEN, "async": True, "trace_id": f"batch-{index}",
                                                       "response_format": "b64_json"}).json()["task_id"]
           for index in range(3)]
    by_trace = client.post("/openai/tasks", json={"id": ids[0], "trace_id": "batch-2"}).json()
    assert by_trace["id"] == ids[2]  # trace_id wins over id
    page = client.post("/openai/tasks", json={"action": "retrieve_batch", "ids": ids, "limit": 2}).json()
    assert page["count"] == 3 and [item["id"] for item in page["items"]] == [ids[2], ids[1]]
    rest = client.post("/openai/tasks", json={"action": "retrieve_batch", "ids": ids, "offset": 2}).json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]
    traced = client.post("/openai/tasks", json={"action": "retrieve_batch", "trace_ids": ["batch-1"],
                                                "type": "images"}).json()
    assert traced["count"] == 1 and traced["items"][0]["id"] == ids[1]
    assert client.post("/openai/tasks", json={"action": "retrieve_batch", "ids": ids,
                                              "type": "images_edits"}).json() == {"items": [], "count": 0}
    record = wait_finished(client, ids[0])
    assert client.get(f"/openai/images/tasks/{ids[0]}").json()["id"] == ids[0]
    assert record["type"] == "images_generations" and record["state"] == "succeeded"
    assert record["elapsed"] == pytest.approx(record["finished_at"] - record["started_at"], abs=0.002)
    assert "callback" not in record  # async without callback_url: polling only


def test_async_edit_with_mask_persists_inputs_until_done(client: TestClient) -> None:
    files = [IMAGE, ("mask", ("m.png", mask_bytes((256, 256), (0, 0, 64, 64)), "image/png"))]
    response = client.post("/v1/images/edits", data={"prompt": "x", "async": "true", "response_format": "b64_json",
                                                     "trace_id": "edit-trace"}, files=files)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"task_id", "trace_id"} and response.json()["trace_id"] == "edit-trace"
    record = wait_finished(client, response.json()["task_id"])
    assert record["type"] == "images_edits" and record["response"]["success"] is True
    assert record["request"] == {"prompt": "x", "async": True, "response_format": "b64_json",
                                 "trace_id": "edit-trace"}
    assert len(record["response"]["data"]) == 1 and base64.b64decode(record["response"]["data"][0]["b64_json"])
    settings = client.app.state.settings  # type: ignore[attr-defined]
    inputs = settings.data_dir / "task-inputs" / record["id"]
    deadline = time.monotonic() + 10  # removed right after the finish is recorded (never before: a crash
    while inputs.exists() and time.monotonic() < deadline:  # between the two must be able to re-run the task)
        time.sleep(0.05)
    assert not inputs.exists()


class BrokenBackend:
    def load(self) -> None:
        pass

    def run(self, jobs: Any) -> list[np.ndarray]:
        raise RuntimeError("CUDA exploded at /secret/path")


def test_failure_inside_a_task_calls_back_api_error_without_internal_text(make_client: Any) -> None:
    client = make_client(lambda name: BrokenBackend(), allow_private_urls=True, webhook_window_seconds=1)
    with CallbackReceiver() as receiver:
        submitted = client.post("/v1/images/generations", json={**GEN, "callback_url": receiver.url("/fail")})
        assert submitted.status_code == 200, submitted.text
        task_id, trace_id = submitted.json()["task_id"], submitted.json()["trace_id"]
        [callback] = receiver.wait_for("/fail")
    expected = {"success": False, "task_id": task_id, "trace_id": trace_id,
                "error": {"code": "api_error", "message": "Internal server error."}}
    assert callback.json() == expected
    record = wait_finished(client, task_id)
    assert record["state"] == "failed" and record["response"] == expected
    assert record["callback"]["state"] == "delivered" and len(record["callback"]["attempts"]) == 1
