"""Pure ASGI middleware: a trace id and `x-request-id` on every answer (500s included), and a body
size limit decided before the body is read whole."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imageapi.errors import ImageAPIError, InternalError, PayloadTooLarge, RequestTimeout, envelope

log = logging.getLogger(__name__)


EXTRA_HEADERS_STATE = "response_headers"


def new_trace_id() -> str:
    return str(uuid.uuid4())


def request_id_for(trace_id: str) -> str:
    return "req_" + trace_id.replace("-", "")


async def send_error(send: Send, error: ImageAPIError, trace_id: str) -> None:
    body = json.dumps(envelope(error, trace_id)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Outermost of ours: tags the request, adds `x-request-id` and any headers a route left in request state
    under EXTRA_HEADERS_STATE (the rate-limit headers) to every answer, and turns an escaped exception into
    the 500 envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = new_trace_id()
        scope.setdefault("state", {})["trace_id"] = trace_id
        header = (b"x-request-id", request_id_for(trace_id).encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = scope["state"].get(EXTRA_HEADERS_STATE) or {}
                message["headers"] = [*message.get("headers", []), header,
                                      *((name.encode(), value.encode()) for name, value in extra.items())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error (trace %s)", trace_id)
            if not started:
                await send_error(send_with_id, InternalError(), trace_id)


class BodySizeLimitMiddleware:
    """Also a read timeout: a client that stops sending its body for `read_timeout_s` gets a 408, so stalled
    uploads cannot hold connections and memory forever (others are served meanwhile in any case)."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than the {self.max_bytes} bytes this server accepts.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, self._too_large(), scope["state"]["trace_id"])
            return
        received = 0
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come; waiting for it is not slowness
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise RequestTimeout(f"The request body did not arrive within {self.read_timeout_s:g} seconds "
                                     "of the last data received.") from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)
