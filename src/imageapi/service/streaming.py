"""Streaming (`stream=true`, spec §6): a submitted request's images as a sequence of events. Up to
`partial_images` real previews of each image's denoising (handed over by the engine's worker thread),
then one completed event per image. The HTTP layer writes the events as Server-Sent Events.

Everything that can be refused is refused before a stream exists (the caller checks and submits first), so
an error here is one the stream itself must carry: an `error` event, after which the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from imageapi.engine.job import ImageJob
from imageapi.errors import ImageAPIError
from imageapi.service.requests import PromptedImageRequest

log = logging.getLogger(__name__)


class EventFamily(StrEnum):
    """The event type prefix: it must match the endpoint (spec §11 item 7)."""

    GENERATION = "image_generation"
    EDIT = "image_edit"


@dataclass(frozen=True)
class StreamEvent:
    type: str  # also the SSE `event:` name
    data: dict[str, Any]  # carries `type` too: the SDK tells events apart by it


def requested_settings(request: PromptedImageRequest, output_format: str) -> dict[str, str]:
    """What every event repeats: the settings as requested (`auto` included), not as resolved (spec §6)."""
    return {"size": request.size or "auto", "quality": request.quality or "auto",
            "background": request.background or "auto", "output_format": output_format}


def error_event(error: BaseException) -> StreamEvent:
    """A refusal the client may read (a moderation block) keeps its words; anything else says only that the
    generation failed. Both put the error object under `error`, so the SDK raises openai.APIError."""
    if isinstance(error, ImageAPIError) and error.status < 500:
        body = {"type": error.error_type, "code": error.code, "message": error.message, "param": error.param}
    else:
        body = {"type": "image_generation_server_error", "code": "image_generation_failed",
                "message": "The image generation failed. Retry the request; the server log has the details "
                           "under this request's id.", "param": None}
    return StreamEvent("error", {"type": "error", "error": body})


Arrival = tuple[Literal["preview", "done"], int, np.ndarray | None]  # (what, image index, preview pixels)


class ImageStream:
    """Hooks itself onto the jobs when made; they must be submitted afterwards. Iterate `events()` once."""

    def __init__(self, family: EventFamily, jobs: Sequence[ImageJob], settings: dict[str, str],
                 usage: dict[str, Any], *, encode: Callable[[np.ndarray], Awaitable[str]],
                 check: Callable[[np.ndarray], Awaitable[None]], partial_images: int) -> None:
        self._family = family
        self._jobs = list(jobs)
        self._settings = settings
        self._usage = usage
        self._encode = encode  # pixels -> base64 of the encoded image, in the encoding pool
        self._check = check  # the output moderation check; raises to refuse
        self._partial_images = partial_images
        self._loop = asyncio.get_running_loop()
        self._arrivals: asyncio.Queue[Arrival] = asyncio.Queue()
        for index, job in enumerate(self._jobs):
            if partial_images > 0:
                job.previews = partial_images
                job.on_preview = self._preview_hand_off(index)
            job.result.add_done_callback(lambda _, index=index: self._post(("done", index, None)))

    def _post(self, arrival: Arrival) -> None:
        """Called from the engine's worker thread: the queue is the event loop's, so the put happens there.
        The worker posts a job's previews before setting its result, so a job's arrivals keep their order."""
        try:
            self._loop.call_soon_threadsafe(self._arrivals.put_nowait, arrival)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _preview_hand_off(self, index: int) -> Callable[[np.ndarray], None]:
        return lambda pixels: self._post(("preview", index, pixels))

    async def events(self) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self._image_events():
                yield event
        except Exception as error:  # cancellation (the client left) is no Exception: it just ends the stream
            if not isinstance(error, ImageAPIError):
                log.error("streamed image generation failed", exc_info=error)
            yield error_event(error)
        finally:  # also when the client went away: queued images are not made for nobody
            for job in self._jobs:
                job.result.cancel()

    async def _image_events(self) -> AsyncIterator[StreamEvent]:
        partials_sent = [0] * len(self._jobs)
        waiting = len(self._jobs)
        while waiting:
            kind, index, preview = await self._arrivals.get()
            if kind == "preview":
                if preview is None or partials_sent[index] >= self._partial_images:
                    continue
                await self._check(preview)
                yield self._event(index, "partial_image", await self._encode(preview),
                                  partial_image_index=partials_sent[index])
                partials_sent[index] += 1
                continue
            waiting -= 1
            pixels = self._jobs[index].result.result()  # done: raises the batch's error, if it failed
            await self._check(pixels)
            yield self._event(index, "completed", await self._encode(pixels), usage=self._usage)

    def _event(self, index: int, kind: str, b64_json: str, **extra: Any) -> StreamEvent:
        event_type = f"{self._family}.{kind}"
        data: dict[str, Any] = {"type": event_type, "b64_json": b64_json, "created_at": int(time.time()),
                                **self._settings, **extra}
        if len(self._jobs) > 1:  # an extension: which of the n images this event is about
            data["image_index"] = index
        return StreamEvent(event_type, data)
