"""In-process API tests: the app with the real engine and tiny model, driven over raw HTTP."""

from __future__ import annotations

import base64
import threading
import time

import numpy as np
import pytest

from imageapi.backends.diffusers_pipeline import DiffusersBackend
from support import assert_error, decode, mask_bytes, png_bytes


def b64(response, index: int = 0) -> bytes:
    return base64.b64decode(response.json()["data"][index]["b64_json"])


# ----- the wire format the SDK and curl send -----

def test_json_null_means_default(client):
    r = client.post("/v1/images/generations", json={"prompt": "otter", "model": None, "n": None, "size": None,
                                                     "quality": None, "response_format": None, "style": None})
    assert r.status_code == 200, r.text
    assert "url" in r.json()["data"][0]


def test_fields_newer_sdks_send_are_accepted(client):
    r = client.post("/v1/images/generations", json={
        "prompt": "otter", "size": "256x256", "safety_identifier": "u1", "complexity": "low",
        "frame_count": 3, "svg": {"model": "gpt-5"}, "stream": False, "response_format": "b64_json"})
    assert r.status_code == 200, r.text


def test_multipart_scalars_are_coerced(client):
    r = client.post("/v1/images/edits", data={"prompt": "x", "n": "2", "stream": "false", "size": "256x256",
                                              "response_format": "b64_json"},
                    files=[("image", ("upload", png_bytes(), "application/octet-stream"))])
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2


@pytest.mark.parametrize("part_name", ["image", "image[]"])
def test_curl_forms_of_the_seeds(client, part_name):
    """`-F image="@x.png"` and `-F "image[]=@x.png"`, as the seeds' curl commands send them."""
    r = client.post("/openai/images/edits", data={"model": "gpt-image-1", "prompt": "a gift basket"},
                    files=[(part_name, ("test.png", png_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    assert decode(b64(r)).size == (256, 256)


def test_curl_variation_form(client):
    r = client.post("/v1/images/variations", data={"n": "1", "size": "256x256"},
                    files=[("image", ("corgi_and_cat_paw.png", png_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["url"]


def test_result_url_expires(make_client):
    client = make_client(url_ttl_seconds=1)
    r = client.post("/v1/images/generations", json={"prompt": "x", "size": "256x256"})
    url = r.json()["data"][0]["url"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 200
    time.sleep(2.1)
    assert_error(client.get("/" + path), 404, "file_not_found")


def test_dall_e_2_takes_the_image_transparency_as_the_mask(client):
    rgba = decode(png_bytes((256, 256), "RGBA", seed=8))
    pixels = np.asarray(rgba).copy()
    pixels[:64, :64, 3] = 0
    from io import BytesIO

    from PIL import Image
    buffer = BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    r = client.post("/v1/images/edits", data={"model": "dall-e-2", "prompt": "x", "size": "256x256",
                                              "response_format": "b64_json"},
                    files=[("image", ("a.png", buffer.getvalue(), "image/png"))])
    assert r.status_code == 200, r.text
    edited = np.asarray(decode(b64(r)).convert("RGB"))
    assert np.array_equal(edited[64:, 64:], pixels[64:, 64:, :3])


# ----- bad input: a clear 4xx in the envelope -----

@pytest.mark.parametrize("body, code, param", [
    ({}, "missing_required_parameter", "prompt"),
    ({"prompt": "x", "n": "many"}, "invalid_type", "n"),
    ({"prompt": "x", "n": 11}, "invalid_value", "n"),
    ({"prompt": "x", "n": 0}, "invalid_value", "n"),
    ({"prompt": 5}, "invalid_type", "prompt"),
    ({"prompt": "   "}, "invalid_value", "prompt"),
    ({"prompt": "x", "response_format": "gif"}, "invalid_value", "response_format"),
    ({"prompt": "x", "output_format": "bmp"}, "invalid_value", "output_format"),
    ({"prompt": "x", "output_compression": 101}, "invalid_value", "output_compression"),
    ({"prompt": "x", "background": "transparent"}, "invalid_value", "background"),
    ({"prompt": "x", "size": "250x250"}, "invalid_value", "size"),
    ({"prompt": "x", "size": "big"}, "invalid_value", "size"),
    ({"prompt": "x", "size": "8192x8192"}, "invalid_value", "size"),
    ({"prompt": "x", "seed": -1}, "invalid_value", "seed"),
    ({"prompt": "x", "stream": True, "callback_url": "https://cb.example/x"}, "invalid_value", "stream"),
    ({"prompt": "x", "stream": True, "async": True}, "invalid_value", "stream"),
    ({"prompt": "x", "stream": True, "model": "dall-e-2"}, "invalid_value", "stream"),
    ({"prompt": "x", "stream": True, "model": "dall-e-3"}, "invalid_value", "stream"),
    ({"prompt": "x", "stream": True, "response_format": "url"}, "invalid_value", "response_format"),
    ({"prompt": "x", "stream": True, "partial_images": 4}, "invalid_value", "partial_images"),
    ({"prompt": "x", "model": "dall-e-3", "n": 2}, "invalid_value", "n"),
    ({"prompt": "x", "model": "dall-e-3", "size": "512x512"}, "invalid_size", None),
    ({"prompt": "x", "model": "dall-e-3", "style": "pastel"}, "invalid_value", "style"),
    ({"prompt": "x", "model": "gpt-image-1", "style": "vivid"}, "unknown_parameter", "style"),
    ({"prompt": "x", "model": "gpt-image-1", "quality": "hd"}, "invalid_value", "quality"),
    ({"prompt": "x", "model": "gpt-image-1", "size": "512x512"}, "invalid_value", "size"),
    ({"prompt": "x", "model": "gpt-image-2", "size": "1000x1000"}, "invalid_value", "size"),
    ({"prompt": "x" * 1001, "model": "dall-e-2"}, None, None),  # OpenAI's own answer has no code or param
])
def test_generation_validation(client, body, code, param):
    assert_error(client.post("/v1/images/generations", json=body), 400, code, param)


def test_openai_quality_wording(client):
    error = assert_error(client.post("/v1/images/generations", json={"prompt": "x", "model": "gpt-image-1",
                                                                     "quality": "hd"}), 400, "invalid_value")
    assert error["message"] == ("Invalid value: 'hd'. Supported values are: 'low', 'medium', 'high', and 'auto'.")


def test_prompt_length_wording(client):
    error = assert_error(client.post("/v1/images/generations", json={"prompt": "y" * 1192, "model": "dall-e-2"}),
                         400, None)
    assert error["param"] is None
    assert error["message"] == ("Prompt must be length 1000 or less. Your prompt length is 1192. "
                                "Please reduce your prompt length.")


@pytest.mark.parametrize("raw, content_type", [
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"\xff\xfe", "application/json"),
    (b"prompt=x", "application/x-www-form-urlencoded"),
])
def test_malformed_bodies(client, raw, content_type):
    r = client.post("/v1/images/generations", content=raw, headers={"content-type": content_type})
    assert r.status_code == 400
    assert r.json()["success"] is False


@pytest.mark.parametrize("raw, content_type", [
    (b"garbage", "multipart/form-data; boundary=xyz"),
    (b"x", "multipart/form-data"),
])
def test_broken_multipart(client, raw, content_type):
    r = client.post("/v1/images/edits", content=raw, headers={"content-type": content_type})
    assert_error(r, 400, "invalid_multipart")


def test_unknown_route_and_method(client):
    error = assert_error(client.post("/v1/chat/completions"), 404, None)
    assert error["message"] == "Invalid URL (POST /v1/chat/completions)"
    assert_error(client.get("/v1/images/generations"), 405, "method_not_allowed")


def test_missing_and_wrong_keys(client):
    assert_error(client.post("/v1/images/generations", json={"prompt": "x"}, headers={"authorization": ""}),
                 401, "invalid_token")
    assert_error(client.post("/v1/images/generations", json={"prompt": "x"},
                             headers={"authorization": "Bearer sk-nope"}), 401, "invalid_token")
    assert_error(client.get("/v1/models", headers={"authorization": "Basic abc"}), 401, "invalid_token")


def _edit(client, files, **data):
    return client.post("/v1/images/edits", data={"prompt": "x", **data}, files=files)


def test_edit_validation(client):
    assert_error(_edit(client, [("mask", ("m.png", mask_bytes((256, 256), (0, 0, 8, 8)), "image/png"))]),
                 400, "missing_required_parameter", "image")
    mismatched = [("image", ("a.png", png_bytes((256, 256)), "image/png")),
                  ("mask", ("m.png", mask_bytes((128, 128), (0, 0, 8, 8)), "image/png"))]
    assert_error(_edit(client, mismatched), 400, "invalid_value", "mask")
    no_alpha = [("image", ("a.png", png_bytes((256, 256)), "image/png")),
                ("mask", ("m.png", png_bytes((256, 256)), "image/png"))]
    assert_error(_edit(client, no_alpha), 400, "invalid_mask", "mask")
    truncated = png_bytes((256, 256))[:400]
    assert_error(_edit(client, [("image", ("a.png", truncated, "image/png"))]), 400, "invalid_image", "image")
    assert_error(_edit(client, [("image", ("a.png", png_bytes(), "image/png"))], model="dall-e-3"),
                 400, "invalid_value", "model")


@pytest.mark.parametrize("image, message", [
    (png_bytes((256, 256), "RGB"), "Invalid input image - format must be in ['RGBA', 'LA', 'L'], got RGB."),
    (png_bytes((256, 128), "RGBA"), "Uploaded image must be square; got 256x128."),
])
def test_dall_e_2_upload_rules(client, image, message):
    error = assert_error(_edit(client, [("image", ("a.png", image, "image/png"))], model="dall-e-2"),
                         400, "invalid_value", "image")
    assert error["message"] == message


def test_dall_e_2_wants_png(client):
    from io import BytesIO

    from PIL import Image
    buffer = BytesIO()
    Image.new("RGB", (256, 256)).save(buffer, "JPEG")
    error = assert_error(_edit(client, [("image", ("a.jpg", buffer.getvalue(), "image/jpeg"))], model="dall-e-2"),
                         400, "invalid_value", "image")
    assert error["message"] == "Uploaded image must be a PNG and less than 4 MB."


def test_decompression_bomb_is_refused(client):
    from io import BytesIO

    from PIL import Image
    buffer = BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, "PNG")  # ~400 MB of pixels in a few hundred KB
    r = _edit(client, [("image", ("bomb.png", buffer.getvalue(), "image/png"))])
    assert_error(r, 400, "image_too_large", "image")


def test_body_over_the_limit_is_413_before_it_is_read(make_client):
    client = make_client(max_body_bytes=64 * 1024)
    r = _edit(client, [("image", ("a.png", b"\0" * 100_000, "image/png"))])
    assert_error(r, 413, "payload_too_large")
    assert client.get("/health").status_code == 200


# ----- engine failures and start-up -----

class FailingBackend(DiffusersBackend):
    """The real tiny model, except that a marker prompt makes the whole batch raise."""

    def run(self, jobs):
        if any("explode" in job.prompt for job in jobs):
            raise RuntimeError("CUDA error: secret internal detail")
        return super().run(jobs)


def test_internal_failure_is_a_500_without_internal_text(make_client):
    client = make_client(backend_factory=lambda name: FailingBackend("random:tiny"))
    error = assert_error(client.post("/v1/images/generations", json={"prompt": "explode", "size": "256x256"}),
                         500, "api_error")
    assert "secret" not in error["message"] and "CUDA" not in error["message"]
    assert client.post("/v1/images/generations", json={"prompt": "fine", "size": "256x256"}).status_code == 200


class SlowLoadingBackend(DiffusersBackend):
    def __init__(self, release: threading.Event) -> None:
        super().__init__("random:tiny")
        self.release = release

    def load(self):
        self.release.wait(30)
        super().load()


def test_503_while_models_load(tmp_path):
    from fastapi.testclient import TestClient

    from conftest import make_settings
    from imageapi.app import build_app
    release = threading.Event()
    app = build_app(make_settings(tmp_path), lambda name: SlowLoadingBackend(release))
    with TestClient(app, headers={"Authorization": "Bearer sk-test"}) as client:
        assert client.get("/health").status_code == 503
        r = client.post("/v1/images/generations", json={"prompt": "x"})
        assert_error(r, 503, "service_unavailable")
        assert r.headers["retry-after"]
        release.set()
