"""A request for more images than the engine's whole queue holds can never be queued: a 429 that says not to
retry (x-should-retry: false), sync or async (refused before the task is acknowledged)."""

from __future__ import annotations

from support import assert_error

GEN = "/v1/images/generations"
BODY = {"prompt": "a lighthouse", "size": "256x256", "response_format": "b64_json"}


def test_more_images_than_the_queue_holds_is_a_final_429(make_client):
    client = make_client(queue_capacity=2)
    response = client.post(GEN, json={**BODY, "n": 3})
    error = assert_error(response, 429, "too_many_requests")
    assert response.headers["x-should-retry"] == "false"
    assert "queues at most 2 images at once" in error["message"]
    submitted = client.post(GEN, json={**BODY, "n": 3, "async": True})
    assert_error(submitted, 429, "too_many_requests")
    assert submitted.headers["x-should-retry"] == "false"
    assert client.post("/openai/tasks", json={"action": "retrieve_batch"}).json()["count"] == 0
    accepted = client.post(GEN, json={**BODY, "n": 2})
    assert accepted.status_code == 200, accepted.text
    assert len(accepted.json()["data"]) == 2
