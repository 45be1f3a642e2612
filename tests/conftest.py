from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from imageapi.app import BackendFactory, build_app
from imageapi.config import ModelSpec, Settings
from support import API_KEY, ServerProcess

# Tests make many images quickly: lift the per-key limits (default 50 images/min) unless a test sets them.
# The environment reaches the real server processes the tests start.
TEST_RATE_LIMITS = {"images_per_minute": 1_000_000, "requests_per_minute": 1_000_000}
for _name, _value in TEST_RATE_LIMITS.items():
    os.environ.setdefault("IMAGEAPI_" + _name.upper(), str(_value))


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"models": (ModelSpec(name="random:tiny", source="random:tiny"),),
                              "api_keys": (API_KEY,), "data_dir": data_dir, "encode_workers": 2, **TEST_RATE_LIMITS}
    values.update(overrides)
    return Settings(**values)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[ClientFactory]:
    """An in-process app (real engine, real tiny model) behind Starlette's TestClient, lifespan run."""
    opened: list[TestClient] = []

    def factory(backend_factory: BackendFactory | None = None, **overrides: Any) -> TestClient:
        client = TestClient(build_app(make_settings(tmp_path / f"data{len(opened)}", **overrides), backend_factory),
                            headers={"Authorization": f"Bearer {API_KEY}"})
        client.__enter__()
        wait_ready(client)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.__exit__(None, None, None)


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("engine not ready")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One in-process app shared by a module's tests."""
    settings = make_settings(tmp_path_factory.mktemp("data"))
    with TestClient(build_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as shared:
        wait_ready(shared)
        yield shared


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server process, started the way the README starts it, shared by the e2e tests."""
    process = ServerProcess(tmp_path_factory.mktemp("server"), ["--model", "random:tiny", "--api-key", API_KEY])
    process.start()
    yield process
    process.stop()
