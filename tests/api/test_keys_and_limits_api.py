"""Store keys and flag keys at the HTTP edge; rate-limit headers and the 429 path, in process."""

import time

from imageapi.keys.store import KeyStore
from support import API_KEY, assert_error

GEN = "/v1/images/generations"
BODY = {"prompt": "a cat", "size": "256x256", "response_format": "b64_json"}
LIMIT_HEADERS = [f"x-ratelimit-{what}-{kind}" for what in ("limit", "remaining", "reset")
                 for kind in ("requests", "images")]




def store_of(client):
    return KeyStore.in_data_dir(client.app.state.settings.data_dir)


def test_store_key_created_while_running_works_and_revocation_takes_effect(make_client):
    client = make_client()
    store = store_of(client)
    record, secret = store.create("live", images_per_minute=3, requests_per_minute=7)
    ok = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200, ok.text
    generated = client.post(GEN, json=BODY, headers={"Authorization": f"Bearer {secret}"})
    assert generated.status_code == 200
    assert generated.headers["x-ratelimit-limit-images"] == "3"  # the key's own limits
    assert generated.headers["x-ratelimit-limit-requests"] == "7"
    assert client.get("/v1/models").status_code == 200  # the flag key keeps working beside store keys
    store.revoke(record.id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        refused = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
        if refused.status_code == 401:
            break
        time.sleep(0.2)
    assert_error(refused, 401, "invalid_token")
    assert time.monotonic() < deadline


def test_wrong_and_missing_keys(make_client):
    client = make_client()
    store_of(client).create()
    assert_error(client.post(GEN, json=BODY, headers={"Authorization": "Bearer sk-imageapi-wrong"}), 401,
                    "invalid_token")
    assert_error(client.post(GEN, json=BODY, headers={"Authorization": ""}), 401, "invalid_token")


def test_store_only_turns_auth_on(make_client):
    client = make_client(api_keys=())
    assert client.get("/v1/models", headers={"Authorization": ""}).status_code == 200  # no keys: anonymous
    _, secret = store_of(client).create()
    time.sleep(2.1)  # the cache refreshes every 2 s
    assert_error(client.get("/v1/models", headers={"Authorization": ""}), 401, "invalid_token")
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_limit_headers_on_success_and_error_and_n_counts_images(make_client):
    client = make_client(images_per_minute=5, requests_per_minute=50, rate_limit_window_seconds=3600)  # no refill
    first = client.post(GEN, json={**BODY, "n": 2})
    assert first.status_code == 200
    assert all(name in first.headers for name in LIMIT_HEADERS)
    assert first.headers["x-ratelimit-remaining-images"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "49"
    assert first.headers["x-ratelimit-reset-images"].endswith("s")
    bad = client.post(GEN, json={**BODY, "size": "7x7"})
    assert_error(bad, 400, "invalid_value")
    assert all(name in bad.headers for name in LIMIT_HEADERS)
    assert bad.headers["x-ratelimit-remaining-images"] == "3"  # refused as invalid: its image is given back
    malformed = client.post(GEN, content=b"{", headers={"content-type": "application/json"})
    assert_error(malformed, 400, "invalid_json")
    assert malformed.headers["x-ratelimit-remaining-requests"] == "47"


def test_over_the_image_limit_is_429_with_retry_after(make_client):
    client = make_client(images_per_minute=3)
    assert client.post(GEN, json={**BODY, "n": 3}).status_code == 200
    refused = client.post(GEN, json={**BODY, "n": 2})
    body = assert_error(refused, 429, "too_many_requests")
    assert "images per minute" in body["message"]
    assert int(refused.headers["retry-after"]) >= 1 and int(refused.headers["retry-after-ms"]) > 30_000
    assert refused.headers["x-ratelimit-remaining-images"] == "0"
    never = client.post(GEN, json={**BODY, "n": 4})  # more than the limit itself: retrying cannot help
    assert_error(never, 429, "too_many_requests")
    assert never.headers["x-should-retry"] == "false"


def test_over_the_request_limit_is_429(make_client):
    client = make_client(requests_per_minute=2)
    for _ in range(2):
        assert client.post(GEN, content=b"[]", headers={"content-type": "application/json"}).status_code == 400
    refused = client.post(GEN, json=BODY)
    assert_error(refused, 429, "too_many_requests")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    other = client.post(GEN, json=BODY, headers={"Authorization": "Bearer other"})
    assert other.status_code == 401  # unknown key: refused before any bucket, and without limit headers
    assert "x-ratelimit-limit-requests" not in other.headers


def test_keys_have_their_own_buckets(make_client):
    client = make_client(images_per_minute=1, api_keys=(API_KEY, "sk-second"))
    assert client.post(GEN, json=BODY).status_code == 200
    assert client.post(GEN, json=BODY).status_code == 429
    assert client.post(GEN, json=BODY, headers={"Authorization": "Bearer sk-second"}).status_code == 200
