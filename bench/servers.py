"""A server under test as a child process on a free loopback port, started and stopped by a `with`."""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

START_TIMEOUT_S = 1800.0  # loading a full-size model, and compiling it when asked, takes minutes


@functools.cache
def cuda_device_name() -> str | None:
    """The GPU's name, asked in a subprocess so that this process never imports torch."""
    probe = "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BackgroundServer:
    def __init__(self, name: str, arguments: list[str], log_path: Path, health_path: str = "/health") -> None:
        self.name = name
        self.port = free_port()
        self.command = [sys.executable, *arguments, "--port", str(self.port)]
        self.log_path = log_path
        self.health_url = f"http://127.0.0.1:{self.port}{health_path}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.health_url, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise SystemExit(f"{self.name} not ready in {START_TIMEOUT_S:.0f}s:\n{self.log()[-4000:]}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def batch_sizes(self) -> dict[str, int] | None:
        """This server's batch histogram (imageapi's /health); None for a server that has none."""
        try:
            return httpx.get(self.health_url, timeout=5).json().get("batch_sizes")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
