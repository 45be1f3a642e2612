"""Input images by reference, in the shapes clients send them:

- OpenAI JSON edits: `images: [{"image_url": "https://..." | "data:..."}, ...]` (1-16 items), `mask: {"image_url"}`;
  `file_id` references need a Files API this server does not have: 400 api_not_implemented.
- AceData JSON edits: `image: "url"` or `image: ["url", ...]`.
- multipart: `image` / `image[]` / `mask` text fields holding URLs (beside, or instead of, file parts).

They are fetched concurrently (bounded by `fetch.FetchLimits`) and become `UploadedFile`s like uploads.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from imageapi.errors import InvalidRequest, NotImplementedByServer
from imageapi.fetch import FetchLimits, fetch_image_bytes
from imageapi.http.bodies import ParsedBody
from imageapi.service.uploads import MAX_INPUT_IMAGES, UploadedFile


def _from_ref(item: Any, param: str) -> str:
    """One OpenAI ImageRefParam ({"image_url"} xor {"file_id"}) or a bare URL string -> the URL."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict) or set(item) not in ({"image_url"}, {"file_id"}):
        raise InvalidRequest(f"Invalid value for '{param}': each image must be an object with exactly one of "
                             "'image_url' or 'file_id', or a URL string.", param=param)
    if "file_id" in item:
        raise NotImplementedByServer("Images given by 'file_id' need the Files API, which this server does not "
                                     "implement; send 'image_url' (an http(s) or data: URL) or upload the file.",
                                     param=f"{param}.file_id")
    if not isinstance(item["image_url"], str):
        raise InvalidRequest(f"Invalid type for '{param}.image_url': expected a string.", param=f"{param}.image_url",
                             code="invalid_type")
    return item["image_url"]


def image_references(body: ParsedBody) -> list[tuple[str, str]]:
    """(param, url) for each input image given by reference, in order."""
    refs: list[tuple[str, str]] = []
    for name in ("images", "image"):
        value = body.fields.get(name)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if name == "images" and not isinstance(value, list):
            raise InvalidRequest("Invalid type for 'images': expected an array of image references.",
                                 param="images", code="invalid_type")
        refs += [(f"{name}[{index}]" if isinstance(value, list) else name, _from_ref(item, name))
                 for index, item in enumerate(items)]
    if len(refs) + len(body.files.get("image", [])) > MAX_INPUT_IMAGES:
        raise InvalidRequest(f"Invalid value: at most {MAX_INPUT_IMAGES} images may be sent.", param="image")
    return refs


def mask_reference(body: ParsedBody) -> tuple[str, str] | None:
    value = body.fields.get("mask")
    return None if value is None else ("mask", _from_ref(value, "mask"))


def _limits(request: Request) -> tuple[FetchLimits, bool]:
    settings = request.app.state.settings
    return FetchLimits(settings.max_image_bytes, settings.image_url_timeout_seconds), settings.allow_private_urls


async def fetch_references(request: Request, refs: list[tuple[str, str]], field: str) -> list[UploadedFile]:
    """Fetches every reference at once; the first failure (a 400 naming the URL) is raised."""
    if not refs:
        return []
    limits, allow_private = _limits(request)
    fetched = await asyncio.gather(*(fetch_image_bytes(url, param, limits, allow_private=allow_private)
                                     for param, url in refs), return_exceptions=True)
    for result in fetched:
        if isinstance(result, BaseException):
            raise result
    return [UploadedFile(field=field, data=data) for data in fetched]  # type: ignore[arg-type]
