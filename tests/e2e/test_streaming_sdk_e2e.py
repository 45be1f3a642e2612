"""stream=True through the official `openai` package against the real server process: the SDK's own
SSE decoding yields its typed events for generations and edits."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from openai import OpenAI
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)

from support import API_KEY, ServerProcess, decode, png_bytes

STEPS = {"num_inference_steps": 4}  # random:tiny: 4 denoising steps leave room for 3 previews


@pytest.fixture(scope="module")
def sdk(server) -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_generate_stream_yields_partials_then_the_completed_image(sdk):
    events = list(sdk.images.generate(model="random:tiny", prompt="a red fox", size="256x256", stream=True,
                                      partial_images=2, extra_body=STEPS))
    assert [type(event) for event in events] == [ImageGenPartialImageEvent] * 2 + [ImageGenCompletedEvent]
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    assert all(event.type == "image_generation.partial_image" for event in events[:2])
    completed = events[-1]
    assert completed.type == "image_generation.completed" and completed.size == "256x256"
    assert completed.usage.total_tokens == completed.usage.input_tokens + completed.usage.output_tokens
    image = decode(base64.b64decode(completed.b64_json))
    assert image.format == "PNG" and image.size == (256, 256)
    assert completed.b64_json not in {event.b64_json for event in events[:2]}


def test_generate_stream_without_partials_on_the_openai_prefix(server):
    sdk = OpenAI(base_url=server.base_url + "/openai", api_key=API_KEY, max_retries=0, timeout=120)
    events = list(sdk.images.generate(model="gpt-image-1", prompt="a red fox", stream=True, quality="low",
                                      output_format="webp", extra_body=STEPS))
    assert len(events) == 1 and isinstance(events[0], ImageGenCompletedEvent)
    assert (events[0].size, events[0].quality, events[0].output_format) == ("auto", "low", "webp")
    assert decode(base64.b64decode(events[0].b64_json)).format == "WEBP"


def test_edit_stream_yields_image_edit_events(sdk):
    events = list(sdk.images.edit(model="random:tiny", image=[("in.png", png_bytes((320, 256)), "image/png")],
                                  prompt="add a hat", stream=True, partial_images=3,
                                  extra_body={"num_inference_steps": 8}))  # strength 0.75: 6 of 8 steps run
    assert [type(event) for event in events] == [ImageEditPartialImageEvent] * 3 + [ImageEditCompletedEvent]
    assert [event.partial_image_index for event in events[:3]] == [0, 1, 2]
    completed = events[-1]
    assert completed.type == "image_edit.completed" and completed.usage.input_tokens_details.image_tokens > 0
    assert decode(base64.b64decode(completed.b64_json)).size == (320, 256)


def test_events_arrive_as_they_are_made(server):
    """Each event is flushed when it is made: the first partial arrives in a chunk of its own."""
    with httpx.stream("POST", server.base_url + "/v1/images/generations", timeout=120,
                      headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"prompt": "x", "size": "256x256", "stream": True, "partial_images": 3, **STEPS}) as r:
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
        chunks = [chunk for chunk in r.iter_raw() if chunk]
    text = b"".join(chunks).decode()
    assert text.count("event: ") == 4 and text.rstrip().endswith("}")
    assert chunks[0].startswith(b"event: image_generation.partial_image\n") and b"completed" not in chunks[0]


def test_leaving_mid_stream_cancels_the_images_not_started(tmp_path):
    server = ServerProcess(tmp_path, ["--model", "random:tiny", "--api-key", API_KEY, "--max-batch-images", "2"])
    server.start()
    try:
        with httpx.stream("POST", server.base_url + "/v1/images/generations", timeout=120,
                          headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"prompt": "x", "size": "256x256", "stream": True, "n": 10, "partial_images": 1,
                                **STEPS}) as response:
            assert next(response.iter_raw())  # the first event, then the client goes away
        deadline = time.monotonic() + 30
        while (health := httpx.get(server.base_url + "/health").json())["queue_depth"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        made = sum(int(size) * count for size, count in httpx.get(server.base_url + "/health").json()
                   ["batch_sizes"].items())
        assert health["queue_depth"] == 0 and made < 10, health
    finally:
        server.stop()
