"""The real server process with a key from `imageapi keys create`, driven by the official openai SDK."""

import subprocess
import sys
import time

import openai
import pytest
from openai import OpenAI

from imageapi.keys.store import KeyStore
from support import ServerProcess


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("limited")
    created = subprocess.run([sys.executable, "-m", "imageapi", "keys", "create", "--name", "e2e",
                              "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    secret = created.stdout.strip().splitlines()[-1]
    # One image per 5 s window: the second request in a row is over the limit for a few seconds, even on a
    # slow machine where the first image takes a while.
    (data_dir / "policy.toml").write_text('[categories.violence]\nwords = ["behead"]\n')
    server = ServerProcess(data_dir, ["--model", "random:tiny", "--images-per-minute", "1",
                                      "--rate-limit-window-seconds", "5",
                                      "--moderation-policy", str(data_dir / "policy.toml")])
    server.start()
    yield server, secret
    server.stop()


def test_store_key_rate_limit_and_sdk_retry(limited_server):
    server, secret = limited_server
    client = OpenAI(api_key=secret, base_url=server.base_url + "/v1", max_retries=0)
    raw = client.images.with_raw_response.generate(prompt="otter", model="random:tiny", size="256x256",
                                                   response_format="b64_json")
    assert raw.headers["x-ratelimit-limit-images"] == "1"
    assert raw.headers["x-ratelimit-remaining-images"] == "0"
    assert raw.headers["x-ratelimit-reset-images"].endswith("s")
    assert raw.parse().data[0].b64_json
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(prompt="otter", model="random:tiny", size="256x256", response_format="b64_json")
    assert refused.value.code == "too_many_requests" and refused.value.status_code == 429
    assert refused.value.response.headers["retry-after"] and refused.value.request_id.startswith("req_")
    wait_ms = int(refused.value.response.headers["retry-after-ms"])
    assert 0 < wait_ms <= 5000
    retrying = OpenAI(api_key=secret, base_url=server.base_url + "/v1", max_retries=1)
    started = time.monotonic()
    result = retrying.images.generate(prompt="otter", model="random:tiny", size="256x256",
                                      response_format="b64_json")
    waited = time.monotonic() - started
    assert result.data[0].b64_json
    assert waited >= 0.5 * wait_ms / 1000, waited  # the SDK slept on retry-after-ms before its second try


def test_wrong_key_is_authentication_error(limited_server):
    server, _ = limited_server
    client = OpenAI(api_key="sk-imageapi-nope", base_url=server.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.images.generate(prompt="otter", model="random:tiny", size="256x256")


def test_revoked_key_stops_working(limited_server, tmp_path):
    server, _ = limited_server
    made = subprocess.run([sys.executable, "-m", "imageapi", "keys", "create", "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, check=True)
    secret = made.stdout.strip().splitlines()[-1]
    client = OpenAI(api_key=secret, base_url=server.base_url + "/v1", max_retries=0)
    assert client.models.list().data
    key_id = made.stdout.split("created ")[1].split()[0]
    subprocess.run([sys.executable, "-m", "imageapi", "keys", "revoke", key_id, "--data-dir",
                    str(server.data_dir)], check=True, capture_output=True)
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_moderation_refusal_through_the_sdk(limited_server):
    server, _ = limited_server
    _, own_key = KeyStore.in_data_dir(server.data_dir).create("moderation")  # its own, full, buckets
    client = OpenAI(api_key=own_key, base_url=server.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="behead the statue", model="random:tiny", size="256x256")
    assert refused.value.code == "moderation_blocked" and refused.value.type == "image_generation_user_error"
    assert "safety_violations=[violence]" in refused.value.message
