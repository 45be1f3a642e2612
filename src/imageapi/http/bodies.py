"""Request bodies: JSON or multipart, into one validated request object.

Multipart text fields are strings ("2", "false"); pydantic's lax mode coerces them exactly as JSON
values would be. File parts are kept in order under their field name (`image` and `image[]` are one
list). Type errors become 400s in OpenAI's wording, never FastAPI's 422.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from imageapi.errors import InvalidRequest, PayloadTooLarge
from imageapi.service.uploads import UploadedFile

RequestModel = TypeVar("RequestModel", bound=BaseModel)

MAX_FORM_FILES = 32
MAX_FORM_FIELDS = 200


@dataclass
class ParsedBody:
    fields: dict[str, Any]
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def file_list(self, *names: str) -> list[UploadedFile]:
        return [upload for name in names for upload in self.files.get(name, [])]


def _field_name(name: str) -> str:
    return name[:-2] if name.endswith("[]") else name


async def _read_upload(upload: UploadFile, name: str, max_bytes: int) -> UploadedFile:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"Invalid file '{name}': the file is larger than the {max_bytes} bytes this "
                              "server accepts.", param=name, code="image_too_large")
    return UploadedFile(field=name, data=data)


async def parse_multipart(request: Request, max_file_bytes: int) -> ParsedBody:
    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=1024 * 1024)
    except (MultiPartException, HTTPException) as error:
        reason = error.message if isinstance(error, MultiPartException) else error.detail
        raise InvalidRequest(f"Could not parse the multipart body: {reason}", code="invalid_multipart") from None
    body = ParsedBody(fields={})
    try:
        for raw_name, value in form.multi_items():
            name = _field_name(raw_name)
            if isinstance(value, UploadFile):
                body.files.setdefault(name, []).append(await _read_upload(value, name, max_file_bytes))
            elif raw_name.endswith("[]") or name in body.fields:
                # `tags[]=a`, or a name sent twice (`n=1` and `n[]=2`): a list, which validation then judges
                earlier = body.fields.get(name, [])
                body.fields[name] = [*(earlier if isinstance(earlier, list) else [earlier]), value]
            else:
                body.fields[name] = value
    finally:
        await form.close()
    return body


async def parse_json(request: Request) -> ParsedBody:
    raw = await request.body()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:  # ValueError: JSONDecodeError, and ints over 4300 digits
        raise InvalidRequest(f"We could not parse the JSON body of your request: {error}. The body must be a "
                             "JSON object.", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest("We could not parse the JSON body of your request: it is nested too deeply.",
                             code="invalid_json") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The body of your request must be a JSON object.", code="invalid_json")
    _check_text(value)
    return ParsedBody(fields=value)


def _check_text(fields: dict[str, Any]) -> None:
    """JSON may carry lone surrogates (\\ud800) that are not text: refuse them here, not deep in a tokenizer."""
    pending: list[tuple[str, Any]] = [*fields.items(), *((f"{key!r}", key) for key in fields)]
    while pending:
        param, value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest(f"Invalid value for '{param}': the text is not valid Unicode (it contains "
                                     "an unpaired surrogate).", param=param, code="invalid_value") from None
        elif isinstance(value, dict):
            pending.extend((f"{param}.{key}", item) for key, item in value.items())
            pending.extend((param, key) for key in value)  # keys must be text too
        elif isinstance(value, list):
            pending.extend((f"{param}[{index}]", item) for index, item in enumerate(value))


async def parse_body(request: Request, max_file_bytes: int) -> ParsedBody:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return await parse_multipart(request, max_file_bytes)
    if content_type.startswith("application/x-www-form-urlencoded"):
        raise InvalidRequest("Unsupported Content-Type 'application/x-www-form-urlencoded'; send JSON or "
                             "multipart/form-data.", code="invalid_content_type")
    return await parse_json(request)


_TYPE_WORDS = {"string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
               "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
               "bool_type": "a boolean", "bool_parsing": "a boolean"}


def validate(model: type[RequestModel], fields: dict[str, Any]) -> RequestModel:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "missing":
            raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                                 code="missing_required_parameter") from None
        expected = _TYPE_WORDS.get(first["type"])
        received = first.get("input")
        shown = json.dumps(received)[:100] if not isinstance(received, (bytes, bytearray)) else "bytes"
        if expected:
            raise InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {shown}.",
                                 param=param, code="invalid_type") from None
        raise InvalidRequest(f"Invalid value for '{param}': {first['msg']}. Got {shown}.", param=param) from None
