"""A service ImageStream written as Server-Sent Events (spec §6): for each event an `event:` line (its
type) and one `data:` line (its JSON, which repeats the type). No `[DONE]`: the stream ends at close, as
OpenAI's image streams do; the SDK stops there as well."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from imageapi.service.streaming import ImageStream, StreamEvent

B64_FIELD = "b64_json"


def event_data(data: dict[str, Any]) -> bytes:
    """Compact ASCII JSON with the base64 image copied in verbatim: a JSON writer would scan its megabytes on
    the event loop for characters to escape, and base64 has none (as in http/fast_json.py)."""
    image = data.get(B64_FIELD)
    if not isinstance(image, str):
        return json.dumps(data, separators=(",", ":")).encode("ascii")
    marker = secrets.token_hex(16)  # no prompt text can forge it
    skeleton = json.dumps({**data, B64_FIELD: marker}, separators=(",", ":")).encode("ascii")
    head, tail = skeleton.split(b'"' + marker.encode() + b'"')
    return b"".join((head, b'"', image.encode("ascii"), b'"', tail))


def sse_frame(event: StreamEvent) -> bytes:
    return b"event: " + event.type.encode("ascii") + b"\ndata: " + event_data(event.data) + b"\n\n"


async def _frames(stream: ImageStream) -> AsyncIterator[bytes]:
    async for event in stream.events():
        yield sse_frame(event)


def sse_response(stream: ImageStream) -> StreamingResponse:
    # no-cache and x-accel-buffering: proxies (nginx) must pass each event on as it comes, not buffer the stream.
    return StreamingResponse(_frames(stream), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
