"""The error tree and the one envelope every error is written in.

Each class fixes the HTTP status, OpenAI's `type` and the code; an instance adds the message and the
param. `envelope()` is the only place the JSON shape is written: OpenAI's four keys under `error`
(all present, `null` where absent), plus AceData's `success: false` and `trace_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class ImageAPIError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "api_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}
        # Set when the refusal came after images were made (a failed batch, a blocked result): the rate limit
        # keeps those images charged. Refusals before any image work give them back.
        self.images_made = False


class InvalidRequest(ImageAPIError):
    """400: the request cannot be served as sent; retrying it unchanged will not help."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class UnknownParameter(InvalidRequest):
    default_code = "unknown_parameter"


class PromptTooLong(InvalidRequest):
    """OpenAI's own answer to an over-long prompt carries neither a code nor a param (spec §2)."""

    default_code = None


class NotImplementedByServer(InvalidRequest):
    default_code = "api_not_implemented"


class ModerationBlocked(InvalidRequest):
    error_type = "image_generation_user_error"
    default_code = "moderation_blocked"


class InvalidToken(ImageAPIError):
    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_token"


class NotFound(ImageAPIError):
    status = 404
    error_type = "invalid_request_error"
    default_code = None


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(ImageAPIError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(ImageAPIError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RequestTimeout(ImageAPIError):
    """408: the client stopped sending its body; nothing was done, so a retry is safe."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class TooManyRequests(ImageAPIError):
    status = 429
    error_type = "requests"
    default_code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: float, headers: dict[str, str] | None = None) -> None:
        retry = {"retry-after": str(max(1, round(retry_after_s + 0.499))),
                 "retry-after-ms": str(max(1, int(retry_after_s * 1000)))}
        super().__init__(message, headers={**retry, **(headers or {})})


class InternalError(ImageAPIError):
    """500: never carries internal text; the log has the details under the same trace id."""

    status = 500
    error_type = "server_error"
    default_code = "api_error"

    def __init__(self, message: str = "Internal server error.") -> None:
        super().__init__(message)


class ServiceUnavailable(ImageAPIError):
    status = 503
    error_type = "server_error"
    default_code = "service_unavailable"


def quote_choices(values: Sequence[Any]) -> str:
    """OpenAI's list style: 'a', 'b', and 'c' (single quotes, Oxford comma)."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def invalid_choice(param: str, value: Any, supported: Sequence[Any]) -> InvalidRequest:
    return InvalidRequest(f"Invalid value: '{value}'. Supported values are: {quote_choices(supported)}.",
                          param=param)


def envelope(error: ImageAPIError, trace_id: str) -> dict[str, Any]:
    return {
        "error": {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code},
        "success": False,
        "trace_id": trace_id,
    }
