"""The real server process driven by the official `openai` package, as a user's app would drive it."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from support import API_KEY, decode, mask_bytes, png_bytes


@pytest.fixture(scope="module")
def sdk(server) -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def b64_image(item) -> bytes:
    return base64.b64decode(item.b64_json)


@pytest.mark.parametrize("output_format, pil_format", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_generate_b64_in_each_output_format(sdk, output_format, pil_format):
    result = sdk.images.generate(model="random:tiny", prompt="a lighthouse at dusk", size="320x256",
                                 response_format="b64_json", output_format=output_format, n=2)
    assert len(result.data) == 2
    for item in result.data:
        image = decode(b64_image(item))
        assert image.format == pil_format
        assert image.size == (320, 256)
    assert result.output_format == output_format and result.size == "320x256"


def test_generate_url_is_served_by_the_server(sdk, server):
    result = sdk.images.generate(prompt="a white siamese cat", size="256x256", n=1)
    url = result.data[0].url
    assert url.startswith(server.base_url + "/v1/files/")
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert decode(fetched.content).size == (256, 256)
    tampered = httpx.get(url[:-1] + ("0" if url[-1] != "0" else "1"))
    assert tampered.status_code == 404 and tampered.json()["error"]["code"] == "file_not_found"


def test_same_seed_gives_the_same_image(sdk):
    def make():
        return sdk.images.generate(model="random:tiny", prompt="seeded", size="256x256",
                                   response_format="b64_json", extra_body={"seed": 1234}).data[0]

    first, second = make(), make()
    assert np.array_equal(np.asarray(decode(b64_image(first))), np.asarray(decode(b64_image(second))))


def test_gpt_image_profile_answers_b64_with_usage(sdk):
    result = sdk.images.generate(model="gpt-image-1", prompt="an otter", quality="low")
    assert result.data[0].b64_json and result.data[0].url is None
    assert result.usage is not None and result.usage.total_tokens > 0
    assert result.quality == "low" and result.background == "opaque" and result.size == "256x256"


def test_dall_e_3_profile_revises_prompt(sdk):
    result = sdk.images.generate(model="dall-e-3", prompt="a red fox", response_format="b64_json",
                                 size="1024x1024", quality="standard", style="natural")
    assert result.data[0].revised_prompt == "a red fox"
    assert decode(b64_image(result.data[0])).size == (1024, 1024)


def test_edit_with_mask_keeps_unmasked_pixels(sdk):
    source = png_bytes((256, 256), seed=3)
    hole = (64, 64, 160, 128)
    result = sdk.images.edit(model="random:tiny", image=("photo.png", source, "image/png"),
                             mask=("mask.png", mask_bytes((256, 256), hole), "image/png"),
                             prompt="a flamingo in the pool", response_format="b64_json", n=2)
    original = np.asarray(decode(source).convert("RGB"))
    keep = np.ones((256, 256), dtype=bool)
    keep[hole[1]:hole[3], hole[0]:hole[2]] = False
    for item in result.data:
        edited = np.asarray(decode(b64_image(item)).convert("RGB"))
        assert edited.shape == original.shape
        assert np.array_equal(edited[keep], original[keep])
        assert not np.array_equal(edited[~keep], original[~keep])


def test_edit_with_an_image_list_and_no_mask(sdk):
    """The SDK names every part `image[]` for a list, even a list of one; raw bytes go as octet-stream."""
    result = sdk.images.edit(model="gpt-image-1", image=[png_bytes((256, 192), seed=4)], prompt="make it winter")
    assert decode(b64_image(result.data[0])).size == (256, 192)


def test_edit_with_a_file_object(sdk, tmp_path):
    path = tmp_path / "lounge.png"
    path.write_bytes(png_bytes((256, 256), seed=5))
    with path.open("rb") as handle:
        result = sdk.images.edit(image=handle, prompt="a sunlit lounge", size="256x256")
    assert httpx.get(result.data[0].url).status_code == 200


def test_variation(sdk):
    result = sdk.images.create_variation(image=("corgi.png", png_bytes(seed=6), "image/png"), n=2,
                                         size="256x256", response_format="b64_json")
    images = [np.asarray(decode(b64_image(item))) for item in result.data]
    assert len(images) == 2 and images[0].shape == (256, 256, 3)
    assert not np.array_equal(images[0], images[1])


def test_openai_prefix_serves_the_same_api(server):
    client = OpenAI(base_url=server.base_url + "/openai", api_key=API_KEY, max_retries=0)
    result = client.images.generate(model="gpt-image-1", prompt="a kite")
    assert result.data[0].b64_json


def test_models_are_listed(sdk):
    ids = {model.id for model in sdk.models.list()}
    assert {"random:tiny", "dall-e-2", "dall-e-3", "gpt-image-1"} <= ids


def test_twenty_concurrent_requests_are_all_served(sdk):
    def one(index: int) -> tuple[int, int]:
        result = sdk.images.generate(model="random:tiny", prompt=f"scene {index}", size="256x256",
                                     response_format="b64_json")
        return decode(b64_image(result.data[0])).size

    with ThreadPoolExecutor(20) as pool:
        sizes = list(pool.map(one, range(20)))
    assert sizes == [(256, 256)] * 20


# ----- errors: status, envelope, code, and the SDK's exception class -----

def assert_envelope(error: openai.APIStatusError, status: int, code: str | None, param: str | None = None) -> None:
    assert error.status_code == status
    body = error.response.json()
    assert body["success"] is False and body["trace_id"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and error.code == code
    if param is not None:
        assert body["error"]["param"] == param
    assert error.request_id and error.request_id.startswith("req_")


def test_wrong_key_is_401(server):
    client = OpenAI(base_url=server.base_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.images.generate(prompt="x")
    assert_envelope(caught.value, 401, "invalid_token")


def test_unknown_model_is_404(sdk):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.images.generate(model="no-such-model", prompt="x")
    assert_envelope(caught.value, 404, "model_not_found")
    assert "`no-such-model` does not exist" in caught.value.message


def test_openai_wording_for_a_size_the_profile_does_not_have(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="dall-e-2", prompt="x", size="1536x1024")
    assert_envelope(caught.value, 400, "invalid_value", "size")
    assert caught.value.body["message"] == ("Invalid value: '1536x1024'. Supported values are: '256x256', "
                                            "'512x512', and '1024x1024'.")


def test_several_input_images_on_a_single_image_model(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="random:tiny", image=[png_bytes(seed=1), png_bytes(seed=2)], prompt="combine")
    assert_envelope(caught.value, 400, "api_not_implemented", "image")
    assert "at most 1 input image" in caught.value.message


def test_an_upload_that_is_no_image(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(image=("notes.png", b"hello, this is text", "image/png"), prompt="x")
    assert_envelope(caught.value, 400, "invalid_image_format", "image")


def test_an_oversize_body_is_413(server):
    client = OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0)
    huge = io.BytesIO(b"\0" * (130 * 1024 * 1024))
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.edit(image=huge, prompt="x")
    assert_envelope(caught.value, 413, "payload_too_large")
