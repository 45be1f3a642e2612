"""Property-based fuzzing of the real server process: thousands of generated malformed requests (bad JSON,
wrong types, huge or odd fields, broken multipart, garbage and lying image files) must each get a clear 4xx
in the one envelope; never a 5xx; and the server must still serve a valid request afterwards.

Values are drawn so that a request which happens to be valid stays tiny (256x256 or small inputs, n <= 2,
few steps): the run is about the error paths, not the GPU.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from support import API_KEY, ServerProcess, parse_sse, png_bytes

EXAMPLES = int(os.environ.get("IMAGEAPI_FUZZ_EXAMPLES", "2000"))
SEED = int(os.environ.get("IMAGEAPI_FUZZ_SEED", "20260522"))
PATHS = ["/v1/images/generations", "/v1/images/edits", "/v1/images/variations", "/openai/images/generations"]
FIELDS = ["prompt", "n", "size", "model", "response_format", "quality", "output_format", "output_compression",
          "background", "moderation", "style", "seed", "negative_prompt", "num_inference_steps", "guidance_scale",
          "strength", "stream", "partial_images", "user", "image", "images", "mask", "async", "callback_url",
          "trace_id", "input_fidelity", "x" * 300]

SMALL_PNG = png_bytes((64, 64), seed=1)
SMALL_RGBA = png_bytes((64, 64), mode="RGBA", seed=2)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                         st.text(max_size=40), st.sampled_from(["256x256", "auto", "0x0", "1x99999", "b64_json",
                                                                "url", "random:tiny", "dall-e-2", "-1", "1e9"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def _tiny(fields: dict) -> dict:
    """Whatever was drawn, a request that happens to be valid must stay cheap."""
    if isinstance(fields.get("n"), int) and not isinstance(fields.get("n"), bool):
        fields["n"] = fields["n"] if fields["n"] < 1 or fields["n"] > 10 else 1
    if isinstance(fields.get("num_inference_steps"), int) and not isinstance(fields["num_inference_steps"], bool):
        fields["num_inference_steps"] = min(fields["num_inference_steps"], 2)
    if "size" not in fields or fields["size"] in ("auto", None):
        fields["size"] = "256x256"
    return fields


json_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8).map(_tiny)

image_payloads = st.one_of(
    st.binary(max_size=200),
    st.just(SMALL_PNG), st.just(SMALL_RGBA),
    st.integers(1, len(SMALL_PNG) - 1).map(lambda cut: SMALL_PNG[:cut]),  # truncated
    st.binary(min_size=1, max_size=50).map(lambda junk: SMALL_PNG[:40] + junk),  # lying after the header
    st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30),
    st.just(b"GIF89a" + b"\x00" * 20),
)


@st.composite
def multipart_bodies(draw) -> tuple[dict, list]:
    fields = {name: draw(st.one_of(st.text(max_size=30), st.sampled_from(["1", "2", "-3", "true", "256x256",
                                                                        "http://127.0.0.1:1/x", "data:,x"])))
              for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True))}
    fields = {key: value for key, value in _tiny(fields).items() if isinstance(value, str)}
    files = [(draw(st.sampled_from(["image", "image[]", "mask", "other"])),
              ("f.png", draw(image_payloads), draw(st.sampled_from(["image/png", "application/octet-stream"]))))
             for _ in range(draw(st.integers(0, 3)))]
    return fields, files


raw_bodies = st.one_of(
    st.binary(max_size=300),
    json_objects.map(lambda value: json.dumps(value)[: max(1, len(json.dumps(value)) // 2)].encode()),  # truncated
    st.sampled_from([b"", b"null", b"[]", b"1", b'"x"', b"{" * 5000, b'{"prompt": "a"' + b", " * 10,
                     b'{"n": ' + b"9" * 5000 + b"}", b'{"prompt": "\\ud800"}', b"\xff\xfe{}"]),
)

content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data", "multipart/form-data; boundary=zz", "", "image/png"])


@st.composite
def requests(draw) -> dict:
    path = draw(st.sampled_from(PATHS))
    kind = draw(st.sampled_from(["json", "json", "raw", "multipart", "multipart"]))
    if kind == "json":
        # json.dumps writes Infinity for inf: a non-standard token the server must refuse cleanly.
        return {"path": path, "content": json.dumps(draw(json_objects)).encode(),
                "headers": {"content-type": "application/json"}}
    if kind == "multipart":
        fields, files = draw(multipart_bodies())
        if not files:
            files = [("other", ("x.bin", b"x", "application/octet-stream"))]  # keep httpx on multipart
        return {"path": path, "data": fields, "files": files}
    return {"path": path, "content": draw(raw_bodies), "headers": {"content-type": draw(content_types)}}


def assert_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "x-request-id" in response.headers
    if response.headers.get("content-type", "").startswith("text/event-stream"):  # a valid stream=true request
        events = parse_sse(response.text)
        assert events and all(data["type"].endswith(".completed") or data["type"].endswith(".partial_image")
                              for _, data in events), events
        return
    body = response.json()
    if response.status_code >= 400:
        assert body["success"] is False and body["trace_id"], body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    elif "task_id" in body:  # a valid async request (async / callback_url): acknowledged with its task id
        assert set(body) == {"task_id", "trace_id"} and body["task_id"] and body["trace_id"], body
    else:
        assert body["data"], body


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), ["--model", "random:tiny", "--api-key", API_KEY,
                                                             "--max-body-bytes", "1048576"])
    server.start()
    yield server
    server.stop()


def test_malformed_requests_never_hurt_the_server(fuzz_server):
    sent = {"count": 0, "statuses": {}}
    with httpx.Client(base_url=fuzz_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as client:

        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(requests())
        def check(request: dict) -> None:
            path = request.pop("path")
            response = client.post(path, **request)
            sent["count"] += 1
            sent["statuses"][response.status_code] = sent["statuses"].get(response.status_code, 0) + 1
            assert_answer(response)

        check()
        print(f"\nfuzz: sent {sent['count']} generated requests with seed {SEED}; statuses {sent['statuses']}")
        assert sent["count"] >= EXAMPLES
        valid = client.post("/v1/images/generations", json={"prompt": "still alive", "size": "256x256",
                                                            "response_format": "b64_json"})
        assert valid.status_code == 200 and valid.json()["data"][0]["b64_json"]
    assert "unhandled error" not in fuzz_server.log()
