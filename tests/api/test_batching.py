"""Dynamic batching through the API (CPU, random:tiny): batches form under concurrency, a seed gives the
same image alone and in a batch, a full queue answers 429, a failing batch fails only its own requests."""

from __future__ import annotations

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from imageapi.backends.diffusers_pipeline import DiffusersBackend
from support import assert_error, png_bytes

TINY = "random:tiny"


def pixels(response) -> list[np.ndarray]:
    assert response.status_code == 200, response.text
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).convert("RGB"), dtype=np.int16)
            for item in response.json()["data"]]


def generate(client, prompt="a cat", **extra):
    return client.post("/v1/images/generations", json={"model": TINY, "prompt": prompt, "size": "256x256",
                                                       "response_format": "b64_json", **extra})


def batch_sizes(client) -> dict[str, int]:
    return client.get("/health").json()["batch_sizes"]




def test_concurrent_requests_share_batches(make_client):
    client = make_client(max_batch_wait_ms=400)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda seed: generate(client, seed=seed), range(4)))
    assert all(answer.status_code == 200 for answer in answers)
    sizes = batch_sizes(client)
    assert sum(int(size) * count for size, count in sizes.items()) == 4
    assert max(int(size) for size in sizes) > 1, sizes


def test_a_seed_gives_the_same_image_alone_and_in_a_batch(make_client):
    # On CPU, float math in a batch of 3 may round differently from a batch of 1: allow +-2 in uint8,
    # on average far under one level. A different seed differs by far more (checked last).
    client = make_client(max_batch_wait_ms=300)
    alone = pixels(generate(client, seed=1002))[0]
    assert batch_sizes(client) == {"1": 1}
    batched = pixels(generate(client, seed=1000, n=3))  # seeds 1000, 1001, 1002 in one call
    assert batch_sizes(client) == {"1": 1, "3": 1}
    difference = np.abs(batched[2] - alone)
    assert difference.max() <= 2 and difference.mean() < 0.05, (difference.max(), difference.mean())
    assert np.abs(batched[1] - alone).mean() > 5


def test_other_requests_batch_with_a_seeded_request_without_changing_it(make_client):
    client = make_client(max_batch_wait_ms=400)
    alone = pixels(generate(client, seed=7))[0]
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda args: generate(client, prompt=args[0], seed=args[1]),
                                [("a cat", 7), ("a dog", 8), ("a bird", 9)]))
    assert max(int(size) for size in batch_sizes(client)) > 1
    difference = np.abs(pixels(answers[0])[0] - alone)
    assert difference.max() <= 2 and difference.mean() < 0.05


def test_variations_batch_too(make_client):
    client = make_client(max_batch_wait_ms=300)
    answer = client.post("/v1/images/variations", data={"model": TINY, "n": "2", "response_format": "b64_json"},
                         files={"image": ("a.png", png_bytes(), "image/png")})
    assert len(pixels(answer)) == 2
    assert batch_sizes(client) == {"2": 1}


class SlowBackend(DiffusersBackend):
    """The real tiny model, held for a while inside run(), so the queue fills behind it."""

    def __init__(self) -> None:
        super().__init__(TINY, device="cpu")
        self.running = threading.Event()
        self.release = threading.Event()

    def run(self, jobs):
        self.running.set()
        self.release.wait(20)
        return super().run(jobs)


def test_a_full_queue_answers_429_with_retry_after(make_client):
    backend = SlowBackend()
    client = make_client(lambda name: backend, queue_capacity=2, max_batch_wait_ms=0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(generate, client)
        assert backend.running.wait(20)  # the worker holds the first request; the queue is empty again
        second = pool.submit(generate, client, n=2)
        deadline = time.monotonic() + 10
        while client.get("/health").json()["queue_depth"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = generate(client)
        body = assert_error(refused, 429, "too_many_requests")
        assert int(refused.headers["retry-after"]) >= 1
        assert body["type"] == "requests"
        backend.release.set()
        assert first.result().status_code == 200 and second.result().status_code == 200
    assert generate(client).status_code == 200  # room again


class FailingBackend(DiffusersBackend):
    """The real tiny model, except that a batch holding the marker prompt raises."""

    def __init__(self) -> None:
        super().__init__(TINY, device="cpu")

    def run(self, jobs):
        if any("EXPLODE" in job.prompt for job in jobs):
            raise RuntimeError("CUDA error: secret internal detail")
        return super().run(jobs)


def test_a_failing_batch_fails_only_its_own_requests(make_client):
    client = make_client(lambda name: FailingBackend(), max_batch_wait_ms=300)
    with ThreadPoolExecutor(2) as pool:
        failing = pool.submit(generate, client, "EXPLODE")
        other_size = pool.submit(lambda: client.post("/v1/images/generations", json={
            "model": TINY, "prompt": "fine", "size": "256x128", "response_format": "b64_json"}))
        body = assert_error(failing.result(), 500, "api_error")
        assert body["type"] == "server_error"
        assert "secret" not in failing.result().text and "CUDA" not in failing.result().text
        assert other_size.result().status_code == 200
    assert len(pixels(generate(client, "still serving"))) == 1
