"""The event loop stays responsive while the device is busy: /health answers quickly during a long
generation (real torch work on the tiny model, not a sleep)."""

from __future__ import annotations

import threading
import time

from imageapi.backends.diffusers_pipeline import DiffusersBackend

BUSY_S = 2.5


class LongBackend(DiffusersBackend):
    """The real tiny model, run again and again inside one batch for BUSY_S seconds, so that the test
    does not depend on how fast this machine is."""

    def __init__(self) -> None:
        super().__init__("random:tiny", device="cpu")
        self.started = threading.Event()

    def run(self, jobs):
        self.started.set()
        deadline = time.monotonic() + BUSY_S
        images = super().run(jobs)
        while time.monotonic() < deadline:
            images = super().run(jobs)
        return images


def test_health_answers_quickly_while_a_long_generation_runs(make_client):
    backend = LongBackend()
    client = make_client(lambda name: backend)
    done = threading.Event()
    answer = {}

    def long_generation():
        answer["response"] = client.post("/v1/images/generations", json={
            "prompt": "a slow one", "size": "256x256", "n": 2, "response_format": "b64_json"})
        done.set()

    worker = threading.Thread(target=long_generation)
    worker.start()
    assert backend.started.wait(30)
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        health = client.get("/health")
        latencies.append(time.perf_counter() - started)
        assert health.status_code == 200
        time.sleep(0.05)
    worker.join()
    assert answer["response"].status_code == 200, answer["response"].text
    assert len(latencies) >= 10, len(latencies)
    # Generous for a slow 2-core CI machine: what is checked is that nothing blocks the loop for the
    # length of a pipeline call (seconds here), not a latency figure.
    assert max(latencies) < 0.2, sorted(latencies)[-3:]
