"""JSON answers whose base64 images are copied into place, never scanned by a JSON writer.

A b64_json answer holds megabytes of base64 (a 1024x1024 PNG is 2-4 MB, and n goes to 10). Any JSON
writer (json.dumps; FastAPI's return-value validation and pydantic-core writer; orjson) walks every
character of those strings looking for characters to escape, holding the GIL, so the event loop
(health checks included) waits. Base64's alphabet never needs escaping in JSON, so the answer is
written with the images replaced by markers, and the base64 is then spliced in as bytes: a copy.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.responses import Response

B64_FIELD = "b64_json"


def dump_json(payload: dict[str, Any]) -> bytes:
    """The same JSON json.dumps writes (compact, ASCII), with each `data[i].b64_json` copied verbatim."""
    data = payload.get("data")
    if not isinstance(data, list) or not any(isinstance(item, dict) and B64_FIELD in item for item in data):
        return _dumps(payload)
    nonce = secrets.token_hex(16)  # a marker no prompt text can forge
    images: list[bytes] = []
    items = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get(B64_FIELD), str):
            images.append(item[B64_FIELD].encode("ascii"))  # ASCII str -> bytes is a copy
            item = {**item, B64_FIELD: nonce}
        items.append(item)
    skeleton = _dumps({**payload, "data": items}).split(b'"' + nonce.encode() + b'"')
    parts: list[bytes] = [skeleton[0]]
    for image, rest in zip(images, skeleton[1:], strict=True):
        parts += [b'"', image, b'"', rest]
    return b"".join(parts)


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def json_response(payload: dict[str, Any], status_code: int = 200) -> Response:
    return Response(dump_json(payload), status_code=status_code, media_type="application/json")
