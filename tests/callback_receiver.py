"""A real HTTP callback receiver on loopback for the async-task tests: records every POST (headers and raw
body) and can be told to fail the first K attempts or to answer with a redirect."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class CallbackReceiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 500) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    failing = len([item for item in receiver.received if item.path == self.path]) < \
                        receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, status, time.time()))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "http://127.0.0.1:9/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]

    def wait_for(self, path: str, count: int = 1, timeout_s: float = 60.0) -> list[Received]:
        """The first `count` deliveries answered 200 on `path` (all attempts are in `at(path)`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            accepted = [item for item in self.at(path) if item.status == 200]
            if len(accepted) >= count:
                return accepted
            time.sleep(0.05)
        raise AssertionError(f"no callback on {path} within {timeout_s}s; got {self.at(path)}")
