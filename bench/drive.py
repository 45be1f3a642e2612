"""Driving an images server with the async `openai` client: a fixed number of requests spread over
`concurrency` clients that each send the next request as soon as their last one is answered."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from openai import AsyncOpenAI


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    images: int
    seconds: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(base_url: str, api_key: str, *, model: str | None, size: int, steps: int, guidance: float,
                concurrency: int, requests: int, extra: dict[str, Any] | None = None) -> LoadResult:
    """n=1, b64_json, png; `extra` goes in the JSON body (this server's sampler extensions)."""
    client = AsyncOpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=900)
    remaining = requests
    latencies: list[float] = []
    errors = 0

    async def one_client() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                answer = await client.images.generate(
                    prompt="a photo of a cat", model=model or "", n=1, size=f"{size}x{size}",  # type: ignore[arg-type]
                    response_format="b64_json", extra_body=extra or None)
                if not answer.data or not base64.b64decode(answer.data[0].b64_json or "").startswith(b"\x89PNG"):
                    raise ValueError("the answer holds no PNG")
                latencies.append(time.perf_counter() - started)
            except Exception as error:  # counted and shown: a benchmark that hides failures lies
                errors += 1
                if errors <= 3:
                    print(f"  request failed: {type(error).__name__}: {str(error)[:200]}", flush=True)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await client.close()
    done = len(latencies)
    return LoadResult(concurrency, requests, done, round(seconds, 3), round(done / seconds, 3) if seconds else 0.0,
                      round(statistics.median(latencies) * 1000, 1) if latencies else float("nan"),
                      round(percentile(latencies, 0.95) * 1000, 1) if latencies else float("nan"), errors)
