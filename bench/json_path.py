#!/usr/bin/env python3
"""How long the event loop spends turning one large b64_json answer into bytes, before and after.

  python bench/json_path.py [--size 1024] [--reps 20]

Before: the route returned the dict and FastAPI serialised it in the event loop (FastAPI 0.165, as
installed here: return-type validation and pydantic-core's JSON writer; older FastAPI: jsonable_encoder
and json.dumps). After: the route answers with the bytes of imageapi.http.fast_json.dump_json, which
splices the base64 in as bytes instead of letting a JSON writer scan it.
Both routes run in one in-process app; for each, the median whole-request time over --reps requests
and the longest stall of the event loop meanwhile (a ticker that sleeps 1 ms measures its overshoot),
plus the bare serialisers on the same payload. The payload is one PNG of noise (the worst case for
size) at --size x --size, base64 in JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import statistics
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import TypeAdapter

from imageapi.http.fast_json import dump_json, json_response


def payload(size: int) -> dict[str, Any]:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return {"created": 0, "data": [{"b64_json": base64.b64encode(buffer.getvalue()).decode("ascii")}]}


def median_ms(action: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    body = payload(args.size)
    stalls: list[float] = [0.0]

    async def ticker() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls[0] = max(stalls[0], time.perf_counter() - started - 0.001)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        task = asyncio.create_task(ticker())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    def worst_stall_ms(route: str) -> float:
        stalls[0] = 0.0
        for _ in range(args.reps):
            client.post(route)
        return round(stalls[0] * 1000, 2)

    @app.post("/before")
    async def before(request: Request) -> dict[str, Any]:
        return body

    @app.post("/after")
    async def after(request: Request) -> Any:
        return json_response(body)

    adapter = TypeAdapter(dict[str, Any])  # what FastAPI 0.165 runs in the loop for `-> dict[str, Any]`
    with TestClient(app) as client:
        assert client.post("/before").json() == client.post("/after").json() == body
        result = {
            "size": args.size, "response_bytes": len(dump_json(body)),
            "request_before_ms": median_ms(lambda: client.post("/before"), args.reps),
            "request_after_ms": median_ms(lambda: client.post("/after"), args.reps),
            "loop_stall_before_ms": worst_stall_ms("/before"),
            "loop_stall_after_ms": worst_stall_ms("/after"),
            "json_dumps_ms": median_ms(lambda: json.dumps(jsonable_encoder(body)).encode(), args.reps),
            "fastapi_validate_and_dump_ms": median_ms(lambda: adapter.dump_json(adapter.validate_python(body)),
                                                      args.reps),
            "imageapi_dump_json_ms": median_ms(lambda: dump_json(body), args.reps),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
