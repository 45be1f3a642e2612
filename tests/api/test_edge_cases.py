"""Edge cases found in review: each once gave a 5xx or a wrong charge."""

from __future__ import annotations

import pytest

from imageapi.errors import ModerationBlocked
from support import assert_error, png_bytes

IMAGE = [("image", ("a.png", png_bytes(), "image/png"))]


@pytest.mark.parametrize("path, fields", [
    ("/v1/images/edits", {"prompt": "x", "quality": "low"}),  # 1 step x strength 0.75: below one step
    ("/v1/images/edits", {"prompt": "x", "num_inference_steps": "2", "strength": "0.3"}),
    ("/v1/images/variations", {"num_inference_steps": "1"}),
])
def test_image_to_image_always_runs_at_least_one_step(client, path, fields):
    response = client.post(path, data={**fields, "response_format": "b64_json"}, files=IMAGE)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("fields", [[("n", "1"), ("n[]", "2")], [("n[]", "2"), ("n", "1")]])
def test_a_field_sent_both_plain_and_as_a_list(client, fields):
    text_parts = [(name, (None, value)) for name, value in [("prompt", "x"), *fields]]
    response = client.post("/v1/images/edits", files=[*text_parts, *IMAGE])
    assert_error(response, 400, "invalid_type", "n")


def test_a_key_that_is_not_text_is_refused(client):
    body = b'{"prompt": "x", "size": "256x256", "async": true, "foo": {"\\ud800": "a"}}'
    response = client.post("/v1/images/generations", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_value")


def test_a_huge_task_offset_is_refused(client):
    response = client.post("/openai/tasks", json={"action": "retrieve_batch", "offset": 10**30})
    assert_error(response, 400, "invalid_value", "offset")


def remaining_images(response) -> int:
    return int(response.headers["x-ratelimit-remaining-images"])


def test_refusals_before_any_image_work_give_the_images_back(make_client):
    client = make_client(images_per_minute=20)
    for _ in range(3):
        refused = client.post("/v1/images/generations", json={"prompt": "x", "model": "nope", "n": 10})
        assert_error(refused, 404, "model_not_found")
        assert remaining_images(refused) == 20


def test_images_blocked_after_they_were_made_stay_charged(make_client):
    client = make_client(images_per_minute=20)

    async def block(pixels, moderation, trace_id):
        raise ModerationBlocked("Your request was rejected by the safety system. safety_violations=[test].")

    client.app.state.images.output_check = block
    refused = client.post("/v1/images/generations", json={"prompt": "x", "size": "256x256", "n": 2})
    assert_error(refused, 400, "moderation_blocked")
    assert remaining_images(refused) == 18
