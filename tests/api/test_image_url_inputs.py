"""Input images by URL: OpenAI's images[{image_url}], AceData's image: url|[urls], multipart URL fields;
data: URLs; the private-address guard on every redirect hop; size, status and file_id errors."""

import asyncio
import base64
import ipaddress
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from imageapi import netguard
from imageapi.errors import InvalidRequest, PayloadTooLarge
from imageapi.fetch import FetchLimits, fetch_image_bytes
from support import assert_error, loopback_http_server, mask_bytes, png_bytes

EDIT = "/v1/images/edits"
PNG = png_bytes((64, 64))


class ImageHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        routes = {"/img.png": (200, PNG), "/mask.png": (200, mask_bytes((64, 64), (0, 0, 32, 32))),
                  "/big.png": (200, b"\x89PNG" + b"\x00" * 300_000), "/missing.png": (404, b"no")}
        if self.path.startswith("/redirect"):
            target = self.path.split("?to=", 1)[1]
            self.send_response(302)
            self.send_header("location", target)
            self.end_headers()
            return
        status, body = routes.get(self.path, (404, b"no"))
        self.send_response(status)
        self.send_header("content-type", "image/png")
        if self.path != "/big.png":  # the big one comes without a length: the limit is found while streaming
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def origin():
    with loopback_http_server(ImageHandler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"




EDIT_JSON = {"prompt": "x", "response_format": "b64_json", "size": "256x256"}


def test_loopback_urls_are_refused_by_default(make_client, origin):
    client = make_client()
    message = assert_error(client.post(EDIT, json={**EDIT_JSON, "images": [{"image_url": origin + "/img.png"}]}),
                           400, "invalid_image_url", "images[0]")["message"]
    assert origin + "/img.png" in message and "--allow-private-urls" in message
    assert_error(client.post(EDIT, json={**EDIT_JSON, "image": "http://169.254.169.254/latest/meta-data"}),
                    400, "invalid_image_url", "image")
    assert_error(client.post(EDIT, json={**EDIT_JSON, "image": "file:///etc/passwd"}), 400, "invalid_image_url")


def test_data_urls_work_without_network(make_client):
    client = make_client()
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    response = client.post(EDIT, json={**EDIT_JSON, "images": [{"image_url": data_url}]})
    assert response.status_code == 200, response.text
    assert_error(client.post(EDIT, json={**EDIT_JSON, "image": "data:image/png;base64,!!!"}), 400,
                    "invalid_image_url", "image")


@pytest.fixture(scope="module")
def private_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from conftest import make_settings, wait_ready
    from imageapi.app import build_app

    settings = make_settings(tmp_path_factory.mktemp("urls"), allow_private_urls=True, max_image_bytes=100_000)
    with TestClient(build_app(settings), headers={"Authorization": "Bearer sk-test"}) as client:
        wait_ready(client)
        yield client


@pytest.mark.parametrize("shape", ["openai", "acedata", "acedata-list", "redirect"])
def test_json_edit_shapes_with_private_urls_allowed(private_client, origin, shape):
    url = origin + "/img.png"
    fields = {"openai": {"images": [{"image_url": url}], "mask": {"image_url": origin + "/mask.png"}},
              "acedata": {"image": url}, "acedata-list": {"image": [url]},
              "redirect": {"image": origin + "/redirect?to=/img.png"}}[shape]
    response = private_client.post(EDIT, json={**EDIT_JSON, **fields})
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["b64_json"]


def test_multipart_url_fields(private_client, origin):
    response = private_client.post(EDIT, data={"prompt": "x", "image": origin + "/img.png", "size": "256x256",
                                               "response_format": "b64_json"},
                                   files=[("unused", ("u.txt", b"u", "text/plain"))])
    assert response.status_code == 200, response.text


def test_fetch_failures(private_client, origin):
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "image": origin + "/missing.png"}), 400,
                    "invalid_image_url", "image")
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "image": origin + "/big.png"}), 413,
                    "image_too_large", "image")
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "images": [{"file_id": "file-1"}]}), 400,
                    "api_not_implemented", "images.file_id")
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "images": [{"image_url": 3}]}), 400,
                    "invalid_type")
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "images": "x"}), 400, "invalid_type")
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "image": [origin + "/img.png"] * 17}), 400,
                    "invalid_value")
    closed = "http://127.0.0.1:1/img.png"
    assert_error(private_client.post(EDIT, json={**EDIT_JSON, "image": closed}), 400, "invalid_image_url")


def test_every_redirect_hop_is_checked(origin):
    asyncio.run(_redirect_hops(origin))


async def _redirect_hops(origin):
    def only_127(url, *, allow_private):  # allows 127.0.0.1, refuses any other host (as if it were private)
        if "//127.0.0.1:" not in url:
            raise netguard.RefusedURL("the host resolves to a private address")
        return [ipaddress.ip_address("127.0.0.1")]

    port = origin.rsplit(":", 1)[1]
    limits = FetchLimits(max_bytes=100_000, timeout_s=5)
    assert await fetch_image_bytes(origin + "/img.png", "image", limits, allow_private=False, check=only_127) == PNG
    with pytest.raises(InvalidRequest, match="redirects to 'http://localhost"):
        await fetch_image_bytes(f"{origin}/redirect?to=http://localhost:{port}/img.png", "image", limits,
                                allow_private=False, check=only_127)
    loop_url = origin + "/redirect?to=" + origin + "/redirect?to=" + origin + "/img.png"
    with pytest.raises(InvalidRequest, match="redirects more than 1 times"):
        await fetch_image_bytes(loop_url, "image", FetchLimits(100_000, 5, max_redirects=1), allow_private=True)
    with pytest.raises(PayloadTooLarge):
        await fetch_image_bytes(origin + "/img.png", "image", FetchLimits(100, 5), allow_private=True)


def test_slow_origin_times_out():
    asyncio.run(_slow_origin())


async def _slow_origin():
    async def never(request):
        await asyncio.sleep(10)
        return httpx.Response(200)

    with pytest.raises(InvalidRequest, match=r"within 0\.2 seconds"):
        await fetch_image_bytes("http://127.0.0.1:9/x.png", "image", FetchLimits(100, 0.2), allow_private=True,
                                transport=httpx.MockTransport(never))
