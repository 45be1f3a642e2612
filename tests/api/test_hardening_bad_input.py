"""Each kind of bad input gets a clear 4xx in the one envelope, and the server keeps serving."""

import struct
import zlib

import pytest

from support import assert_error, png_bytes

GEN = "/v1/images/generations"
EDIT = "/v1/images/edits"
JSON = {"content-type": "application/json"}




def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A few KB that claim width x height pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


@pytest.mark.parametrize(("body", "param"), [
    (b"{" * 5, None), (b"[" * 100_000 + b"]" * 100_000, None), (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, None),
    (b'{"prompt": "x", "n": ' + b"9" * 5000 + b"}", None), (b"\xff\xfe", None), (b"[1]", None),
])
def test_malformed_json(client, body, param):
    error = assert_error(client.post(GEN, content=body, headers=JSON), 400, "invalid_json")
    assert error["param"] == param


def test_unpaired_surrogate_is_refused_before_the_model(client):
    error = assert_error(client.post(GEN, content=b'{"prompt": "a \\ud800 cat"}', headers=JSON), 400,
                            "invalid_value")
    assert error["param"] == "prompt"


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"prompt": {"a": 1}}, "prompt", "invalid_type"), ({"prompt": "x", "n": "two"}, "n", "invalid_type"),
    ({"prompt": "x", "n": 1.5}, "n", "invalid_type"), ({"prompt": "x", "seed": -1}, "seed", "invalid_value"),
    ({"prompt": "x" * 40_000}, None, None),  # OpenAI's answer to an over-long prompt: no param, no code
    ({"prompt": "x", "size": "9" * 5000}, "size", "invalid_value"),
])
def test_wrong_types_and_huge_fields(client, fields, param, code):
    error = assert_error(client.post(GEN, json=fields), 400, code)
    assert error["param"] == param


def test_body_over_the_limit_is_413_from_the_declared_length(make_client):
    client = make_client(max_body_bytes=100_000)
    assert_error(client.post(GEN, content=b"x" * 200_000, headers=JSON), 413, "payload_too_large")

    def chunks():  # no content-length: the limit is enforced while reading
        for _ in range(50):
            yield b" " * 10_000

    assert_error(client.post(GEN, content=chunks(), headers=JSON), 413, "payload_too_large")
    assert client.post(GEN, json={"prompt": "ok", "size": "256x256"}).status_code == 200


def test_too_many_parts_and_files(client):
    assert_error(client.post(EDIT, files=[(f"f{index}", (None, "v")) for index in range(3000)]), 400,
                    "invalid_multipart")
    files = [("image", ("a.png", b"x", "image/png")) for _ in range(100)]
    assert_error(client.post(EDIT, files=files, data={"prompt": "x"}), 400, "invalid_multipart")


def test_broken_multipart(client):
    assert_error(client.post(EDIT, content=b"abc", headers={"content-type": "multipart/form-data"}), 400,
                    "invalid_multipart")


@pytest.mark.parametrize(("data", "code"), [
    (png_bytes((64, 64))[:200], "invalid_image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "invalid_image_format"),
    (bomb_png(100_000, 100_000), "image_too_large"), (b"GIF89a" + b"\x00" * 30, "invalid_image_format"),
    (b"", "invalid_image"),
])
def test_truncated_lying_and_bomb_images(client, data, code):
    response = client.post(EDIT, files=[("image", ("a.png", data, "image/png"))], data={"prompt": "x"})
    error = assert_error(response, 400, code)
    assert error["param"] == "image"


@pytest.mark.parametrize("extra", [{"quality": "0"}, {"output_format": "gif"}, {"output_compression": "x"}])
def test_variation_ignores_generation_only_fields(client, extra):
    """Found by the fuzz test: these fields are not variation parameters and used to reach the encoder (500)."""
    response = client.post("/v1/images/variations", data={"size": "256x256", "response_format": "b64_json", **extra},
                           files=[("image", ("a.png", png_bytes((64, 64)), "image/png"))])
    assert response.status_code == 200, response.text
