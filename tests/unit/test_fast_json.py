import base64
import json

from imageapi.http.fast_json import dump_json


def test_same_json_as_json_dumps_with_images_spliced_in():
    images = [base64.b64encode(bytes(range(256)) * (index + 1)).decode() for index in range(3)]
    payload = {"created": 1, "data": [{"b64_json": image, "revised_prompt": f"ünïcode \"{index}\" b64_json"}
                                      for index, image in enumerate(images)],
               "usage": {"total_tokens": 3}}
    assert json.loads(dump_json(payload)) == payload
    assert dump_json(payload) == json.dumps(payload, separators=(",", ":")).encode()


def test_answers_without_images_and_url_answers():
    for payload in ({"created": 1, "data": [{"url": "http://x/y.png"}]}, {"created": 1, "data": []}, {"a": None}):
        assert json.loads(dump_json(payload)) == payload


def test_a_prompt_cannot_forge_the_marker():
    # The marker is a fresh random token per answer: text that looks like one stays text.
    payload = {"data": [{"b64_json": "QUJD", "revised_prompt": '"b64_json"'}, {"b64_json": "REVG"}]}
    assert json.loads(dump_json(payload)) == payload
