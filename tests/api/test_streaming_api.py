"""stream=true (spec §6) over the raw wire, in process: SSE framing, event names and fields, real partial
images, n>1, refusals before the stream starts, and failures after it started."""

from __future__ import annotations

import base64
import threading

import numpy as np
import openai
import pytest
from openai import OpenAI

from imageapi.backends.diffusers_pipeline import DiffusersBackend
from imageapi.errors import ModerationBlocked
from support import assert_error, decode, mask_bytes, parse_sse, png_bytes

STEPS = 4  # random:tiny takes the steps it is given: 4 steps leave 3 steps to preview after
PARTIAL_FIELDS = {"type", "b64_json", "created_at", "size", "quality", "background", "output_format",
                  "partial_image_index"}
COMPLETED_FIELDS = PARTIAL_FIELDS - {"partial_image_index"} | {"usage"}


def stream_generation(client, path: str = "/v1/images/generations", **fields):
    body = {"prompt": "a lighthouse", "size": "256x256", "stream": True, "num_inference_steps": STEPS, **fields}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    return parse_sse(response.text)


def image_of(data: dict) -> np.ndarray:
    return np.asarray(decode(base64.b64decode(data["b64_json"])))


def assert_event_shape(name: str, data: dict, kind: str, family: str = "image_generation") -> None:
    assert name == data["type"] == f"{family}.{kind}"
    expected = PARTIAL_FIELDS if kind == "partial_image" else COMPLETED_FIELDS
    assert expected <= set(data), data.keys()
    assert isinstance(data["created_at"], int) and isinstance(data["b64_json"], str)
    if kind == "completed":
        usage = data["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
        assert set(usage["input_tokens_details"]) == {"text_tokens", "image_tokens"}


def test_partial_images_zero_sends_only_the_completed_event(client):
    events = stream_generation(client, partial_images=0)
    assert len(events) == 1
    name, data = events[0]
    assert_event_shape(name, data, "completed")
    assert "partial_image_index" not in data and "image_index" not in data
    assert decode(base64.b64decode(data["b64_json"])).size == (256, 256)


def test_real_partials_then_the_completed_image(client):
    events = stream_generation(client, partial_images=2, seed=7)
    assert [name.rsplit(".", 1)[1] for name, _ in events] == ["partial_image", "partial_image", "completed"]
    for index, (name, data) in enumerate(events[:2]):
        assert_event_shape(name, data, "partial_image")
        assert data["partial_image_index"] == index
    assert_event_shape(*events[2], "completed")
    partials = [image_of(data) for _, data in events[:2]]
    final = image_of(events[2][1])
    assert all(partial.shape == final.shape == (256, 256, 3) for partial in partials)
    # Previews of the denoising in progress, not copies of the result: each differs from the final image.
    assert all(not np.array_equal(partial, final) for partial in partials)
    assert not np.array_equal(partials[0], partials[1])
    # The completed image is the very image a sync request with the same seed makes.
    sync = client.post("/v1/images/generations", json={"prompt": "a lighthouse", "size": "256x256", "seed": 7,
                                                        "num_inference_steps": STEPS, "response_format": "b64_json"})
    assert np.array_equal(np.asarray(decode(base64.b64decode(sync.json()["data"][0]["b64_json"]))), final)


def test_few_steps_send_fewer_partials_than_asked(client):
    events = stream_generation(client, partial_images=3, num_inference_steps=2)
    assert [data["type"] for _, data in events] == ["image_generation.partial_image", "image_generation.completed"]


@pytest.mark.parametrize("partial_images, partials", [(0, 0), (1, 2)])
def test_n_2_streams_each_image(client, partial_images, partials):
    events = stream_generation(client, "/openai/images/generations", n=2, partial_images=partial_images)
    kinds = [data["type"] for _, data in events]
    assert kinds.count("image_generation.partial_image") == partials
    assert kinds[-2:] == ["image_generation.completed"] * 2 and len(events) == partials + 2
    assert sorted(data["image_index"] for _, data in events[-2:]) == [0, 1]
    for _, data in events:
        if "partial_image_index" in data:
            assert data["partial_image_index"] == 0
    usage = events[-1][1]["usage"]
    assert usage == events[-2][1]["usage"]  # the request's usage, repeated (not to be added up)
    assert usage["output_tokens"] == 2 * (256 // 32) ** 2


def test_events_echo_the_requested_settings(client):
    events = stream_generation(client, model="gpt-image-1", size=None, quality="low", output_format="jpeg",
                               partial_images=1)
    name, data = events[-1]
    assert_event_shape(name, data, "completed")
    assert (data["size"], data["quality"], data["background"], data["output_format"]) == ("auto", "low", "auto",
                                                                                            "jpeg")
    assert decode(base64.b64decode(data["b64_json"])).format == "JPEG"


@pytest.mark.parametrize("path", ["/v1/images/edits", "/openai/images/edits"])
def test_edit_streams_image_edit_events(client, path):
    response = client.post(path, data={"prompt": "a hat", "stream": "true", "partial_images": "2",
                                       "num_inference_steps": str(STEPS), "size": "256x256"},
                           files=[("image[]", ("in.png", png_bytes(), "image/png")),
                                  ("mask", ("m.png", mask_bytes((256, 256), (0, 0, 128, 128)), "image/png"))])
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    for name, data in events:
        assert_event_shape(name, data, name.rsplit(".", 1)[1], family="image_edit")
    assert events[-1][1]["usage"]["input_tokens_details"]["image_tokens"] > 0
    # A masked edit: outside the mask every event, partials included, shows the original pixels.
    original = np.asarray(decode(png_bytes()))
    for _, data in events:
        assert np.array_equal(image_of(data)[128:, 128:], original[128:, 128:])


def test_edit_stream_with_async_mode_is_refused(client):
    response = client.post("/v1/images/edits", data={"prompt": "x", "stream": "true", "async": "true"},
                           files=[("image", ("in.png", png_bytes(), "image/png"))])
    assert_error(response, 400, "invalid_value", "stream")


def test_rate_limits_apply_before_the_stream(make_client):
    client = make_client(images_per_minute=1)
    assert_error(client.post("/v1/images/generations", json={"prompt": "x", "size": "256x256", "n": 2,
                                                             "stream": True}), 429, "too_many_requests")


def test_previews_are_per_job_in_a_shared_batch(make_client):
    """Two streams in one batch: each gets its own partials (or none), never the other's."""
    client = make_client(max_batch_wait_ms=1500)
    results: dict[int, list] = {}

    def run(partial_images: int) -> None:
        results[partial_images] = stream_generation(client, partial_images=partial_images, seed=partial_images)

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert client.get("/health").json()["batch_sizes"] == {"2": 1}
    assert [data["type"] for _, data in results[0]] == ["image_generation.completed"]
    assert [data.get("partial_image_index") for _, data in results[2]] == [0, 1, None]


# ----- failures after the stream started -----

class FailsAfterDenoising(DiffusersBackend):
    """The real tiny model (so previews are made and sent), then the batch raises with internal text."""

    def run(self, jobs):
        images = super().run(jobs)
        if any("explode" in job.prompt for job in jobs):
            raise RuntimeError("CUDA error: secret internal detail")
        return images


def sdk_for(client) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key="sk-test", http_client=client, max_retries=0)


def test_failure_mid_stream_is_an_error_event(make_client):
    client = make_client(backend_factory=lambda name: FailsAfterDenoising("random:tiny"))
    events = stream_generation(client, prompt="explode", partial_images=2)
    assert [name for name, _ in events] == ["image_generation.partial_image"] * 2 + ["error"]
    assert events[-1][1] == {"type": "error", "error": {
        "type": "image_generation_server_error", "code": "image_generation_failed", "param": None,
        "message": events[-1][1]["error"]["message"]}}
    assert "secret" not in events[-1][1]["error"]["message"]
    assert len(stream_generation(client, prompt="fine", partial_images=1)) == 2  # the server goes on


@pytest.mark.parametrize("method", ["generate", "edit"])
def test_sdk_raises_api_error_mid_stream(make_client, method):
    sdk = sdk_for(make_client(backend_factory=lambda name: FailsAfterDenoising("random:tiny")))
    common = {"prompt": "explode", "size": "256x256", "stream": True, "partial_images": 1,
              "extra_body": {"num_inference_steps": STEPS}}
    stream = (sdk.images.generate(**common) if method == "generate"
              else sdk.images.edit(image=("in.png", png_bytes(), "image/png"), **common))
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for event in stream:
            seen.append(event.type)
    assert seen == [f"image_{'generation' if method == 'generate' else 'edit'}.partial_image"]
    assert caught.value.code == "image_generation_failed" and "secret" not in caught.value.message


def test_output_moderation_checks_partials_too(make_client):
    client = make_client()

    async def refuse_everything(pixels, moderation, trace_id):
        raise ModerationBlocked("Your request was rejected by the safety system. safety_violations=[test].")

    client.app.state.images.output_check = refuse_everything
    events = stream_generation(client, partial_images=2)
    assert [name for name, _ in events] == ["error"]
    assert events[0][1]["error"]["code"] == "moderation_blocked"
    assert events[0][1]["error"]["type"] == "image_generation_user_error"
