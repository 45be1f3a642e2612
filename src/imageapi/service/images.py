"""The Images API's meaning: a request becomes jobs (one per output image, each with its own seed),
the engine's pixels become an ImagesResponse. Async tasks (service/tasks.py) check with these same calls
(`check_only=True`) before acknowledging, and run them later."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from imageapi import imaging
from imageapi.engine.job import ImageJob, Task
from imageapi.engine.queue import QueueClosed, QueueFull
from imageapi.engine.worker import Engine, EngineState
from imageapi.errors import (
    ImageAPIError,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    ServiceUnavailable,
    TooManyRequests,
    invalid_choice,
)
from imageapi.service.checks import (
    OutputPlan,
    Target,
    batch_key,
    check_n,
    check_prompted,
    check_response_format,
    output_plan,
    seeds_for,
    size_for_generation,
    size_for_input,
)
from imageapi.service.profiles import (
    OPENAI_MODEL_NAMES,
    PROFILES,
    Endpoint,
    Family,
    family_of,
)
from imageapi.service.prompt_policy import PromptChecker
from imageapi.service.requests import (
    ImageEditRequest,
    ImageGenerationRequest,
    ImageVariationRequest,
    PromptedImageRequest,
)
from imageapi.service.streaming import EventFamily, ImageStream, requested_settings
from imageapi.service.uploads import UploadedFile, decode_edit_inputs, decode_upload, edit_pixels
from imageapi.service.usage import estimate_usage
from imageapi.storage.blobs import BlobRefused, LocalBlobStore

log = logging.getLogger(__name__)
Result = TypeVar("Result")



@dataclass(frozen=True)
class PreparedJobs:
    """A checked request's jobs and what answering needs: the sync answer and the stream share it."""

    target: Target
    plan: OutputPlan
    jobs: list[ImageJob]
    prompt: str
    input_images: Sequence[tuple[int, int]] = ()  # edits: each input's size, for the usage estimate
    restore: tuple[np.ndarray, np.ndarray] | None = None  # a masked edit: (original, repaint mask)


@dataclass(frozen=True)
class RequestContext:
    trace_id: str
    base_url: str  # where result URLs point: the public URL, or the URL the client used


# Checks result pixels (moderation level, trace id) before anything is encoded, stored or sent; raises to refuse.
OutputCheck = Callable[[Sequence[np.ndarray], str | None, str], Awaitable[None]]


class ImagesService:
    output_check: OutputCheck | None = None  # set by the app when an image moderation classifier is configured

    def __init__(self, engine: Engine, blobs: LocalBlobStore, encoder: Executor, *, default_model: str,
                 aliases: dict[str, str], upload_limits: imaging.UploadLimits, png_level: int,
                 public_url: str | None, prompt_checker: PromptChecker | None = None) -> None:
        self._prompt_checker = prompt_checker  # the operator's moderation policy, when one is configured
        self._engine = engine
        self._blobs = blobs
        self._encoder = encoder
        self._default_model = default_model
        self._aliases = aliases
        self._upload_limits = upload_limits
        self._png_level = png_level
        self._public_url = public_url.rstrip("/") if public_url else None

    # ----- public operations -----

    def list_models(self) -> list[dict[str, Any]]:
        served = [{"id": name, "object": "model", "created": 0, "owned_by": "imageapi",
                   "source": info.source} for name, info in self._engine.models.items()]
        mapped = [{"id": name, "object": "model", "created": 0, "owned_by": "imageapi",
                   "served_by": self._resolve(name).model.name}
                  for name in sorted({*self._aliases, *OPENAI_MODEL_NAMES}) if name not in self._engine.models]
        return served + mapped

    def health(self) -> tuple[bool, dict[str, Any]]:
        engine = self._engine
        ready = engine.state is EngineState.READY
        return ready, {"status": "ok" if ready else str(engine.state), "models": list(engine.models),
                       "queue_depth": engine.queue_depth,
                       "warmup": {"done": engine.warmed_up, "total": len(engine.warmup)},
                       "batch_sizes": {str(size): count for size, count in sorted(engine.batch_sizes.items())}}

    def result_path(self, name: str, signature: str) -> Path | None:
        try:
            return self._blobs.open_path(name, signature)
        except BlobRefused:
            return None

    # `check_only=True` (async submission): every check runs, nothing is generated, `{}` is returned. A request
    # that would be a sync 4xx is so refused before its task is acknowledged.

    async def generate(self, request: ImageGenerationRequest, context: RequestContext, *,
                       check_only: bool = False) -> dict[str, Any]:
        prepared = await self.prepare_generation(request, context)
        if check_only:
            return {}
        return await self._complete(prepared, request.moderation, context)

    async def prepare_generation(self, request: ImageGenerationRequest, context: RequestContext) -> PreparedJobs:
        """Every check of a generation (the prompt policy first), and its jobs (not yet submitted)."""
        await self.check_prompt(request.prompt, request.moderation, context)
        target = self._target(request.model, Endpoint.GENERATIONS)
        check_prompted(target.profile, request)
        if request.style is not None:
            if not target.profile.styles:
                raise InvalidRequest(f"Unknown parameter: 'style'. It is only supported by dall-e-3, not "
                                     f"'{target.public_name}'.", param="style", code="unknown_parameter")
            if request.style not in target.profile.styles:
                raise invalid_choice("style", request.style, target.profile.styles)
        width, height = size_for_generation(target, request.size)
        plan = output_plan(target, request, width, height)
        key = batch_key(target, Task.TEXT_TO_IMAGE, plan, request, strength=None)
        jobs = [ImageJob(key, request.prompt, seed, request.negative_prompt)
                for seed in seeds_for(request.seed, check_n(target.profile, request.n))]
        self._check_fits_queue(len(jobs))
        return PreparedJobs(target, plan, jobs, request.prompt)

    async def edit(self, request: ImageEditRequest, images: Sequence[UploadedFile], mask: UploadedFile | None,
                   context: RequestContext, *, check_only: bool = False) -> dict[str, Any]:
        prepared = await self.prepare_edit(request, images, mask, context)
        if check_only:
            return {}
        return await self._complete(prepared, request.moderation, context)

    async def prepare_edit(self, request: ImageEditRequest, images: Sequence[UploadedFile],
                           mask: UploadedFile | None, context: RequestContext) -> PreparedJobs:
        """Every check of an edit (the prompt policy first), its decoded inputs and its jobs (not yet submitted)."""
        await self.check_prompt(request.prompt, request.moderation, context)
        target = self._target(request.model, Endpoint.EDITS)
        check_prompted(target.profile, request)
        n = check_n(target.profile, request.n)
        decoded, decoded_mask = await self._in_thread(decode_edit_inputs, target, images, mask, self._upload_limits)
        width, height = size_for_input(target, request.size, decoded[0].size)
        plan = output_plan(target, request, width, height)
        # dall-e-2: without a mask, the image's own transparent pixels are the area to edit.
        alpha_is_mask = target.profile.family is Family.DALL_E_2 and decoded[0].mode in ("RGBA", "LA")
        original, repaint = await self._in_thread(edit_pixels, decoded[0], decoded_mask, alpha_is_mask,
                                                  (width, height))
        task = Task.INPAINT if repaint is not None else Task.IMAGE_TO_IMAGE
        strength = request.strength or (1.0 if task is Task.INPAINT else target.model.strength)
        key = batch_key(target, task, plan, request, strength=strength)
        jobs = [ImageJob(key, request.prompt, seed, request.negative_prompt, original, repaint)
                for seed in seeds_for(request.seed, n)]
        self._check_fits_queue(len(jobs))
        restore = (original, repaint) if repaint is not None else None
        return PreparedJobs(target, plan, jobs, request.prompt, [image.size for image in decoded], restore)

    async def _complete(self, prepared: PreparedJobs, moderation: str | None,
                        context: RequestContext) -> dict[str, Any]:
        pixels = await self._run(prepared.jobs)
        await self._check_outputs(pixels, moderation, context)
        return await self._respond(prepared.target, prepared.plan, prepared.prompt, pixels,
                                   [job.seed for job in prepared.jobs], context,
                                   input_images=prepared.input_images, restore=prepared.restore)

    async def variation(self, request: ImageVariationRequest, image: UploadedFile,
                        context: RequestContext, *, check_only: bool = False) -> dict[str, Any]:
        await self.check_prompt(request.prompt, None, context)
        target = self._target(request.model, Endpoint.VARIATIONS)
        n = check_n(target.profile, request.n)
        check_response_format(request)
        decoded = await self._in_thread(decode_upload, target, image, self._upload_limits, False)
        width, height = size_for_input(target, request.size, decoded.size)
        plan = output_plan(target, request, width, height)
        original = await self._in_thread(imaging.to_rgb_array, decoded.image, (width, height))
        strength = request.strength or target.model.variation_strength
        key = batch_key(target, Task.IMAGE_TO_IMAGE, plan, request, strength=strength)
        prompt = request.prompt or ""
        jobs = [ImageJob(key, prompt, seed, request.negative_prompt, original)
                for seed in seeds_for(request.seed, n)]
        self._check_fits_queue(len(jobs))
        if check_only:
            return {}
        pixels = await self._run(jobs)
        await self._check_outputs(pixels, None, context)
        return await self._respond(target, plan, prompt, pixels, [job.seed for job in jobs], context)

    async def check_prompt(self, prompt: str | None, moderation: str | None, context: RequestContext) -> None:
        """The operator's prompt policy, before any decoding or GPU work (ModerationBlocked refuses). The three
        operations start with it, so async submission (`check_only`) and the task runner's runs check too."""
        if self._prompt_checker is not None:
            await self._prompt_checker.check_prompt(prompt, moderation if isinstance(moderation, str) else None,
                                                    context.trace_id)

    def _in_thread(self, function: Callable[..., Result], *args: Any) -> Awaitable[Result]:
        """Pixel work (decode, resize, composite, encode) runs in the pool, never on the event loop."""
        return asyncio.get_running_loop().run_in_executor(self._encoder, function, *args)

    # ----- model and profile -----

    def _resolve(self, public_name: str | None) -> Target:
        family = family_of(public_name)
        served_name = self._aliases.get(public_name or "", public_name)
        if public_name is None or (family is not Family.NATIVE and served_name == public_name):
            served_name = self._default_model
        model = self._engine.models.get(served_name or "")
        if model is None:
            raise ModelNotFound(f"The model `{public_name}` does not exist or you do not have access to it.")
        return Target(public_name or model.name, PROFILES[family], model)

    def _target(self, public_name: str | None, endpoint: Endpoint) -> Target:
        target = self._resolve(public_name)
        if endpoint not in target.profile.endpoints:
            raise InvalidRequest(f"The model '{target.public_name}' does not support image {endpoint}.",
                                 param="model", code="invalid_value")
        if self._engine.state is not EngineState.READY:
            raise ServiceUnavailable("The models are still loading; try again shortly."
                                     if self._engine.state is EngineState.LOADING else "The models failed to load.",
                                     headers={"retry-after": "5"})
        return target

    # ----- running and answering -----

    def _check_fits_queue(self, images: int) -> None:
        """More images than the whole queue holds can never be queued: a 429 that says not to retry
        (as for a request over the key's whole rate limit), refused before an async task is acknowledged."""
        capacity = self._engine.queue_capacity
        if images > capacity:
            raise TooManyRequests(f"This request asks for {images} images, but this server queues at most {capacity} "
                                  "images at once; ask for fewer images.", retry_after_s=0,
                                  headers={"x-should-retry": "false"})

    def _submit(self, jobs: list[ImageJob]) -> None:
        try:
            self._engine.submit(jobs)
        except QueueFull as full:
            wait = self._engine.estimated_wait_s(len(jobs))
            raise TooManyRequests(f"The server is busy: {full.waiting} images are waiting. Retry after "
                                  f"{math.ceil(wait)} seconds.", retry_after_s=wait) from None
        except QueueClosed:
            raise ServiceUnavailable("The server is shutting down.") from None

    async def _run(self, jobs: list[ImageJob]) -> list[np.ndarray]:
        self._submit(jobs)
        try:
            return list(await asyncio.gather(*(asyncio.wrap_future(job.result) for job in jobs)))
        except asyncio.CancelledError:
            for job in jobs:
                job.result.cancel()
            raise
        except ImageAPIError:
            raise
        except Exception:
            log.exception("image generation failed")
            failed = InternalError()
            failed.images_made = True  # the device did the work: the images stay charged
            raise failed from None

    async def _check_outputs(self, pixels: Sequence[np.ndarray], moderation: str | None,
                             context: RequestContext) -> None:
        if self.output_check is not None:
            try:
                await self.output_check(pixels, moderation, context.trace_id)
            except ImageAPIError as refused:
                refused.images_made = True
                raise

    async def _respond(self, target: Target, plan: OutputPlan, prompt: str, pixels: Sequence[np.ndarray],
                       seeds: Sequence[int], context: RequestContext,
                       input_images: Sequence[tuple[int, int]] = (),
                       restore: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
        items = await asyncio.gather(*(self._in_thread(self._output_item, plan, image, context, restore)
                                       for image in pixels))
        profile = target.profile
        for item, seed in zip(items, seeds, strict=True):
            if profile.revised_prompt:
                item["revised_prompt"] = prompt
            if profile.family is Family.NATIVE:
                item["seed"] = seed
        response: dict[str, Any] = {"created": int(time.time()), "data": items}
        if profile.is_gpt_image or profile.family is Family.NATIVE:
            response.update(background="opaque", output_format=plan.output_format, quality=plan.quality,
                            size=plan.size)
        if profile.usage:
            response["usage"] = estimate_usage(prompt, input_images, len(items), plan.width, plan.height)
        return response

    def _output_item(self, plan: OutputPlan, pixels: np.ndarray, context: RequestContext,
                     restore: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
        if plan.response_format == "b64_json":
            return {"b64_json": self._encode_b64(plan, pixels, restore)}
        data = self._encode(plan, pixels, restore)
        stored = self._blobs.put(data, plan.output_format)
        base = self._public_url or context.base_url.rstrip("/")
        return {"url": f"{base}/v1/files/{stored.name}?sig={stored.signature}"}

    def _encode(self, plan: OutputPlan, pixels: np.ndarray,
                restore: tuple[np.ndarray, np.ndarray] | None) -> bytes:
        if restore is not None:  # a masked edit: outside the mask, the original comes back unchanged
            original, repaint = restore
            pixels = imaging.composite(original, pixels, repaint)
        return imaging.encode_image(pixels, plan.output_format, compression=plan.compression,
                                    png_level=self._png_level)

    def _encode_b64(self, plan: OutputPlan, pixels: np.ndarray,
                    restore: tuple[np.ndarray, np.ndarray] | None) -> str:
        return base64.b64encode(self._encode(plan, pixels, restore)).decode("ascii")

    # ----- streaming (stream=true): checked and submitted here, so refusals are plain JSON errors -----

    async def stream_generation(self, request: ImageGenerationRequest, context: RequestContext) -> ImageStream:
        prepared = await self.prepare_generation(request, context)
        return self._open_stream(EventFamily.GENERATION, prepared, request, context)

    async def stream_edit(self, request: ImageEditRequest, images: Sequence[UploadedFile],
                          mask: UploadedFile | None, context: RequestContext) -> ImageStream:
        prepared = await self.prepare_edit(request, images, mask, context)
        return self._open_stream(EventFamily.EDIT, prepared, request, context)

    def _open_stream(self, family: EventFamily, prepared: PreparedJobs, request: PromptedImageRequest,
                     context: RequestContext) -> ImageStream:
        plan = prepared.plan
        usage = estimate_usage(prepared.prompt, prepared.input_images, len(prepared.jobs), plan.width, plan.height)
        stream = ImageStream(
            family, prepared.jobs, requested_settings(request, plan.output_format), usage,
            encode=lambda pixels: self._in_thread(self._encode_b64, plan, pixels, prepared.restore),
            check=lambda pixels: self._check_outputs([pixels], request.moderation, context),
            partial_images=request.partial_images or 0)
        self._submit(prepared.jobs)  # after the stream hooked the jobs: the worker may start at once
        return stream
