"""Server-side failures seen through the official SDK: the in-process app behind the SDK's own client.

(Starlette's TestClient is an httpx.Client, so the SDK can use it as its transport.)
"""

from __future__ import annotations

import threading

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from test_images_api import FailingBackend, SlowLoadingBackend

from conftest import make_settings
from imageapi.app import build_app
from imageapi.service.images import ImagesService


def sdk_for(client: TestClient) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key="sk-test", http_client=client, max_retries=0)


def test_a_failed_batch_is_internal_server_error(make_client):
    sdk = sdk_for(make_client(backend_factory=lambda name: FailingBackend("random:tiny")))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.images.generate(prompt="explode", size="256x256")
    assert caught.value.code == "api_error" and caught.value.body["message"] == "Internal server error."
    assert caught.value.request_id.startswith("req_")


def test_an_unexpected_exception_still_gets_the_envelope_and_request_id(make_client, monkeypatch):
    client = make_client()

    async def broken(*args, **kwargs):
        raise KeyError("internal detail")

    monkeypatch.setattr(ImagesService, "generate", broken)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk_for(client).images.generate(prompt="x")
    assert caught.value.code == "api_error" and "internal detail" not in caught.value.message
    assert caught.value.request_id.startswith("req_")


def test_loading_models_is_503(tmp_path):
    release = threading.Event()
    app = build_app(make_settings(tmp_path), lambda name: SlowLoadingBackend(release))
    with TestClient(app) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk_for(client).images.generate(prompt="x")
        assert caught.value.status_code == 503 and caught.value.code == "service_unavailable"
        release.set()
