"""Async tasks end to end: the real `imageapi serve` process, the official openai SDK, and a real callback
receiver on loopback. Covers callbacks field by field, signatures, retries, polling, key isolation, and
a SIGKILL in the middle of a task."""

from __future__ import annotations

import hashlib
import hmac
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).parents[1]))

from callback_receiver import CallbackReceiver
from support import API_KEY, ServerProcess, decode, free_port, png_bytes

OTHER_KEY = "sk-other"
SECRET = "whsec-test"
RETRY_ARGS = ["--webhook-max-attempts", "4", "--webhook-window-seconds", "3"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(fail_first=0) as running:
        yield running


@pytest.fixture(scope="module")
def async_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("async-server"),
                            ["--model", "random:tiny", "--api-key", API_KEY, "--api-key", OTHER_KEY,
                             "--allow-private-urls", *RETRY_ARGS], env={"IMAGEAPI_WEBHOOK_SECRET": SECRET})
    process.start()
    yield process
    process.stop()


def sdk(server: ServerProcess, key: str = API_KEY) -> OpenAI:
    return OpenAI(api_key=key, base_url=server.base_url + "/v1", max_retries=0)


def poll(server: ServerProcess, task_id: str, key: str = API_KEY, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = httpx.post(server.base_url + "/openai/tasks", json={"id": task_id},
                            headers={"authorization": f"Bearer {key}"}).json()
        if record.get("finished_at") and record.get("callback", {}).get("state") in (None, "delivered", "gave_up"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not finished: {record}")


def verify_signature(headers: dict[str, str], body: bytes) -> None:
    """What a receiver does (README, Signatures): recompute the HMAC, compare in constant time, check age."""
    timestamp = headers["x-imageapi-timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["x-imageapi-signature"])
    assert abs(time.time() - int(timestamp)) < 300


def test_generation_callback_signature_polling_and_key_isolation(async_server: ServerProcess,
                                                                 receiver: CallbackReceiver) -> None:
    submitted = sdk(async_server).images.generate(
        model="dall-e-2", prompt="a lighthouse", size="256x256",
        extra_body={"callback_url": receiver.url("/gen"), "trace_id": "client-trace-1"})
    task_id = submitted.model_extra["task_id"]  # type: ignore[index]
    assert submitted.model_extra["trace_id"] == "client-trace-1"  # type: ignore[index]
    assert submitted.data is None

    [callback] = receiver.wait_for("/gen")
    body = callback.json()
    assert set(body) == {"success", "task_id", "trace_id", "data"}
    assert (body["success"], body["task_id"], body["trace_id"]) == (True, task_id, "client-trace-1")
    assert set(body["data"]) == {"created", "data"} and abs(body["data"]["created"] - time.time()) < 120
    [item] = body["data"]["data"]
    assert set(item) == {"url"}  # dall-e-2 answers url by default
    image = httpx.get(item["url"])
    assert image.status_code == 200 and decode(image.content).size == (256, 256)
    assert callback.headers["content-type"] == "application/json"
    verify_signature(callback.headers, callback.body)

    record = poll(async_server, task_id)
    same = httpx.get(f"{async_server.base_url}/v1/images/tasks/{task_id}",
                     headers={"authorization": f"Bearer {API_KEY}"}).json()
    assert record == same
    assert record["id"] == task_id and record["type"] == "images_generations"
    assert record["trace_id"] == "client-trace-1" and record["state"] == "succeeded"
    assert record["request"] == {"model": "dall-e-2", "prompt": "a lighthouse", "size": "256x256",
                                 "callback_url": receiver.url("/gen"), "trace_id": "client-trace-1"}
    assert record["response"] == {"success": True, "task_id": task_id, "trace_id": "client-trace-1",
                                  **body["data"]}
    assert record["created_at"] <= record["started_at"] <= record["finished_at"]
    assert record["elapsed"] == pytest.approx(record["finished_at"] - record["started_at"], abs=0.002)
    assert [attempt["status_code"] for attempt in record["callback"]["attempts"]] == [200]

    other = {"authorization": f"Bearer {OTHER_KEY}"}
    assert httpx.post(async_server.base_url + "/openai/tasks", json={"id": task_id}, headers=other).json() == {}
    assert httpx.post(async_server.base_url + "/openai/tasks", json={"trace_id": "client-trace-1"},
                      headers=other).json() == {}
    assert httpx.get(f"{async_server.base_url}/openai/images/tasks/{task_id}", headers=other).status_code == 404
    batch = httpx.post(async_server.base_url + "/openai/tasks", json={"action": "retrieve_batch", "ids": [task_id]},
                       headers=other).json()
    assert batch == {"items": [], "count": 0}


def test_receiver_failing_first_attempts_then_accepting(async_server: ServerProcess) -> None:
    with CallbackReceiver(fail_first=2, fail_status=503) as flaky:
        submitted = httpx.post(async_server.base_url + "/openai/images/generations",
                               json={"model": "random:tiny", "prompt": "rain", "size": "256x256",
                                     "response_format": "b64_json", "callback_url": flaky.url("/flaky")},
                               headers={"authorization": f"Bearer {API_KEY}"})
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        flaky.wait_for("/flaky")
        attempts = flaky.at("/flaky")
    assert [attempt.status for attempt in attempts] == [503, 503, 200]
    assert len({attempt.body for attempt in attempts}) == 1  # the same raw body every time
    for attempt in attempts:
        verify_signature(attempt.headers, attempt.body)
    assert attempts[1].at - attempts[0].at >= 3 / 7 * 0.75 - 0.05  # backoff: first gap of 4 attempts in 3 s
    body = attempts[-1].json()
    assert body["success"] is True and body["task_id"] == task_id
    assert set(body["data"]) == {"created", "data", "background", "output_format", "quality", "size"}
    assert set(body["data"]["data"][0]) == {"b64_json", "seed"}
    record = poll(async_server, task_id)
    assert record["callback"]["state"] == "delivered"
    assert [(item["number"], item["status_code"], item["error"]) for item in record["callback"]["attempts"]] == [
        (1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 200, None)]


def test_sdk_edit_async_multipart_fields(async_server: ServerProcess, receiver: CallbackReceiver) -> None:
    image = io.BytesIO(png_bytes())
    image.name = "input.png"
    submitted = sdk(async_server).images.edit(
        model="random:tiny", image=image, prompt="paint it", response_format="b64_json",
        extra_body={"async": True, "callback_url": receiver.url("/edit")})
    task_id = submitted.model_extra["task_id"]  # type: ignore[index]
    [callback] = receiver.wait_for("/edit")
    body = callback.json()
    assert (body["success"], body["task_id"]) == (True, task_id)
    assert decode(__import__("base64").b64decode(body["data"]["data"][0]["b64_json"])).size == (256, 256)
    record = poll(async_server, task_id)
    assert record["type"] == "images_edits" and record["request"]["async"] is True


def test_sigkill_mid_task_then_restart_delivers_every_callback(tmp_path: Path) -> None:
    """Two tasks acknowledged, the server SIGKILLed before either finishes, restarted on the same data dir and
    port with one model dropped: the first runs again and calls back success, the second calls back failure."""
    port = free_port()
    base_args = ["--api-key", API_KEY, "--allow-private-urls", "--task-workers", "2", *RETRY_ARGS]
    first = ServerProcess(tmp_path, ["--model", "random:tiny", "--model", "gone=random:tiny", *base_args], port=port)
    with CallbackReceiver() as crash_receiver:
        first.start()
        headers = {"authorization": f"Bearer {API_KEY}"}
        ids = {}
        for name, model in (("ok", "random:tiny"), ("fail", "gone")):
            answer = httpx.post(first.base_url + "/v1/images/generations", headers=headers, json={
                "model": model, "prompt": "slow", "size": "256x256", "num_inference_steps": 30,
                "response_format": "b64_json", "callback_url": crash_receiver.url(f"/{name}"),
                "trace_id": f"crash-{name}"})
            assert answer.status_code == 200, answer.text
            ids[name] = answer.json()["task_id"]
        first.kill()
        assert crash_receiver.received == []  # killed before any task finished
        second = ServerProcess(tmp_path, ["--model", "random:tiny", *base_args], port=port).start()
        try:
            [ok] = crash_receiver.wait_for("/ok", timeout_s=120)
            [failed] = crash_receiver.wait_for("/fail", timeout_s=120)
            record = poll(second, ids["ok"])
        finally:
            second.stop()
    body = ok.json()
    assert set(body) == {"success", "task_id", "trace_id", "data"}
    assert (body["success"], body["task_id"], body["trace_id"]) == (True, ids["ok"], "crash-ok")
    assert len(body["data"]["data"]) == 1 and set(body["data"]["data"][0]) == {"b64_json", "seed"}
    assert failed.json() == {"success": False, "task_id": ids["fail"], "trace_id": "crash-fail", "error": {
        "code": "model_not_found", "message": "The model `gone` does not exist or you do not have access to it."}}
    assert record["state"] == "succeeded" and record["response"]["data"] == body["data"]["data"]
