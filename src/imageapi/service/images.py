"""The Images API's meaning: a request becomes jobs (one per output image, each with its own seed),
the engine's pixels become an ImagesResponse. Async tasks (service/tasks.py) check with these same calls
(`check_only=True`) before acknowledging, and run them later."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from imageapi import imaging
from imageapi.engine.job import BatchKey, ImageJob, Task
from imageapi.engine.models import ModelInfo
from imageapi.engine.queue import QueueClosed, QueueFull
from imageapi.engine.worker import Engine, EngineState
from imageapi.errors import (
    ImageAPIError,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    NotImplementedByServer,
    ServiceUnavailable,
    TooManyRequests,
    invalid_choice,
)
from imageapi.service.profiles import (
    OPENAI_MODEL_NAMES,
    PROFILES,
    Endpoint,
    Family,
    Profile,
    check_free_size,
    check_listed_size,
    family_of,
    quality_level,
)
from imageapi.service.requests import (
    ImageEditRequest,
    ImageGenerationRequest,
    ImageRequest,
    ImageVariationRequest,
    PromptedImageRequest,
)
from imageapi.storage.blobs import BlobRefused, LocalBlobStore

log = logging.getLogger(__name__)
Result = TypeVar("Result")

OUTPUT_FORMATS = ("png", "jpeg", "webp")
RESPONSE_FORMATS = ("url", "b64_json")
BACKGROUNDS = ("transparent", "opaque", "auto")
MODERATION_LEVELS = ("low", "auto")
DALL_E_2_MAX_UPLOAD = 4 * 1024 * 1024


@dataclass(frozen=True)
class RequestContext:
    trace_id: str
    base_url: str  # where result URLs point: the public URL, or the URL the client used


@dataclass(frozen=True)
class UploadedFile:
    field: str
    data: bytes


@dataclass(frozen=True)
class Target:
    """Where a request goes and by which rules: the public name, its profile, the served model."""

    public_name: str
    profile: Profile
    model: ModelInfo


@dataclass(frozen=True)
class OutputPlan:
    response_format: str
    output_format: str
    compression: int | None
    quality: str
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


# Checks result pixels (moderation level, trace id) before anything is encoded, stored or sent; raises to refuse.
OutputCheck = Callable[[Sequence[np.ndarray], str | None, str], Awaitable[None]]


class ImagesService:
    output_check: OutputCheck | None = None  # set by the app when an image moderation classifier is configured

    def __init__(self, engine: Engine, blobs: LocalBlobStore, encoder: Executor, *, default_model: str,
                 aliases: dict[str, str], upload_limits: imaging.UploadLimits, png_level: int,
                 public_url: str | None) -> None:
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
        target = self._target(request.model, Endpoint.GENERATIONS)
        self._check_prompted(target.profile, request)
        if request.style is not None:
            if not target.profile.styles:
                raise InvalidRequest(f"Unknown parameter: 'style'. It is only supported by dall-e-3, not "
                                     f"'{target.public_name}'.", param="style", code="unknown_parameter")
            if request.style not in target.profile.styles:
                raise invalid_choice("style", request.style, target.profile.styles)
        width, height = self._size_for_generation(target, request.size)
        plan = self._plan(target, request, width, height)
        key = self._key(target, Task.TEXT_TO_IMAGE, plan, request, strength=None)
        jobs = [ImageJob(key, request.prompt, seed, request.negative_prompt)
                for seed in self._seeds(request.seed, self._n(target.profile, request.n))]
        if check_only:
            return {}
        pixels = await self._run(jobs)
        await self._check_outputs(pixels, request.moderation, context)
        return await self._respond(target, plan, request.prompt, pixels, [job.seed for job in jobs], context)

    async def edit(self, request: ImageEditRequest, images: Sequence[UploadedFile], mask: UploadedFile | None,
                   context: RequestContext, *, check_only: bool = False) -> dict[str, Any]:
        target = self._target(request.model, Endpoint.EDITS)
        self._check_prompted(target.profile, request)
        n = self._n(target.profile, request.n)
        decoded, decoded_mask = await self._in_thread(self._decode_edit_inputs, target, images, mask)
        width, height = self._size_for_input(target, request.size, decoded[0].size)
        plan = self._plan(target, request, width, height)
        # dall-e-2: without a mask, the image's own transparent pixels are the area to edit.
        alpha_is_mask = target.profile.family is Family.DALL_E_2 and decoded[0].mode in ("RGBA", "LA")
        original, repaint = await self._in_thread(_edit_pixels, decoded[0], decoded_mask, alpha_is_mask,
                                                  (width, height))
        task = Task.INPAINT if repaint is not None else Task.IMAGE_TO_IMAGE
        strength = request.strength or (1.0 if task is Task.INPAINT else target.model.strength)
        key = self._key(target, task, plan, request, strength=strength)
        jobs = [ImageJob(key, request.prompt, seed, request.negative_prompt, original, repaint)
                for seed in self._seeds(request.seed, n)]
        if check_only:
            return {}
        pixels = await self._run(jobs)
        await self._check_outputs(pixels, request.moderation, context)
        restore = (original, repaint) if repaint is not None else None
        return await self._respond(target, plan, request.prompt, pixels, [job.seed for job in jobs], context,
                                   input_images=[image.size for image in decoded], restore=restore)

    async def variation(self, request: ImageVariationRequest, image: UploadedFile,
                        context: RequestContext, *, check_only: bool = False) -> dict[str, Any]:
        target = self._target(request.model, Endpoint.VARIATIONS)
        n = self._n(target.profile, request.n)
        self._check_response_format(request)
        decoded = await self._in_thread(self._decode_one, target, image, False)
        width, height = self._size_for_input(target, request.size, decoded.size)
        plan = self._plan(target, request, width, height)
        original = await self._in_thread(imaging.to_rgb_array, decoded.image, (width, height))
        strength = request.strength or target.model.variation_strength
        key = self._key(target, Task.IMAGE_TO_IMAGE, plan, request, strength=strength)
        prompt = request.prompt or ""
        jobs = [ImageJob(key, prompt, seed, request.negative_prompt, original)
                for seed in self._seeds(request.seed, n)]
        if check_only:
            return {}
        pixels = await self._run(jobs)
        await self._check_outputs(pixels, None, context)
        return await self._respond(target, plan, prompt, pixels, [job.seed for job in jobs], context)

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

    # ----- validation -----

    @staticmethod
    def _n(profile: Profile, n: int | None) -> int:
        n = 1 if n is None else n
        if not 1 <= n <= profile.max_n:
            raise InvalidRequest(f"Invalid value: '{n}'. 'n' must be between 1 and {profile.max_n}"
                                 f"{' for this model' if profile.max_n == 1 else ''}.", param="n")
        return n

    @staticmethod
    def _check_response_format(request: ImageRequest) -> None:
        if request.response_format is not None and request.response_format not in RESPONSE_FORMATS:
            raise invalid_choice("response_format", request.response_format, RESPONSE_FORMATS)

    def _check_prompted(self, profile: Profile, request: PromptedImageRequest) -> None:
        if not request.prompt.strip():
            raise InvalidRequest("Invalid value: ''. The prompt must not be empty.", param="prompt")
        if len(request.prompt) > profile.prompt_max:
            raise InvalidRequest(f"Prompt must be length {profile.prompt_max} or less. Your prompt length is "
                                 f"{len(request.prompt)}. Please reduce your prompt length.", param="prompt")
        self._check_response_format(request)
        choices = (("quality", request.quality, profile.qualities), ("output_format", request.output_format,
                   OUTPUT_FORMATS), ("background", request.background, BACKGROUNDS),
                   ("moderation", request.moderation, MODERATION_LEVELS))
        for param, value, allowed in choices:
            if value is not None and value not in allowed:
                raise invalid_choice(param, value, allowed)
        if request.output_compression is not None and not 0 <= request.output_compression <= 100:
            raise InvalidRequest(f"Invalid value: '{request.output_compression}'. 'output_compression' must be "
                                 "between 0 and 100.", param="output_compression")
        if request.background == "transparent":
            raise InvalidRequest("Transparent background is not supported for this model.", param="background")
        if request.stream:
            raise NotImplementedByServer("Streaming (stream=true) is not implemented by this server yet; "
                                         "omit 'stream' for a complete response.", param="stream")
        if request.partial_images is not None and not 0 <= request.partial_images <= 3:
            raise InvalidRequest(f"Invalid value: '{request.partial_images}'. 'partial_images' must be between "
                                 "0 and 3.", param="partial_images")

    def _checked_size(self, target: Target, size: str) -> tuple[int, int]:
        profile = target.profile
        if profile.sizes is not None:
            check_listed_size(profile, size)
            if size != "auto":
                width, _, height = size.partition("x")
                return int(width), int(height)
            return target.model.default_size
        return check_free_size(profile, size, target.model.max_pixels, target.model.size_multiple)

    def _size_for_generation(self, target: Target, size: str | None) -> tuple[int, int]:
        size = size or target.profile.default_size
        if size == "auto":
            if target.profile.sizes is not None:
                check_listed_size(target.profile, size)
            return target.model.default_size
        return self._checked_size(target, size)

    def _size_for_input(self, target: Target, size: str | None, input_size: tuple[int, int]) -> tuple[int, int]:
        """Edits and variations: an explicit size wins; otherwise dall-e-2 makes 1024x1024 as OpenAI does,
        and the others keep the input's size (rounded down to the model's multiple, scaled into its cap)."""
        if size is None and target.profile.family is Family.DALL_E_2:
            size = target.profile.default_size
        if size is not None and size != "auto":
            return self._checked_size(target, size)
        if size == "auto" and target.profile.sizes is not None:
            check_listed_size(target.profile, size)
        width, height = input_size
        scale = min(1.0, math.sqrt(target.model.max_pixels / (width * height)))
        multiple = target.model.size_multiple
        width = max(multiple * 8, int(width * scale) // multiple * multiple)
        height = max(multiple * 8, int(height * scale) // multiple * multiple)
        return width, height

    def _plan(self, target: Target, request: ImageRequest, width: int, height: int) -> OutputPlan:
        # Only prompted requests declare (and validate) these; on a variation they would be unchecked extras.
        prompted = request if isinstance(request, PromptedImageRequest) else None
        quality = (prompted.quality if prompted else None) or "auto"
        return OutputPlan(
            response_format=request.response_format or target.profile.default_response_format,
            output_format=(prompted.output_format if prompted else None) or "png",
            compression=prompted.output_compression if prompted else None,
            quality=quality_level(quality),
            width=width,
            height=height,
        )

    @staticmethod
    def _key(target: Target, task: Task, plan: OutputPlan, request: ImageRequest,
             strength: float | None) -> BatchKey:
        model = target.model
        steps = request.num_inference_steps or model.steps_for(plan.quality)  # type: ignore[arg-type]
        guidance = request.guidance_scale if request.guidance_scale is not None else model.guidance_scale
        negative = bool(request.negative_prompt) and guidance > 1.0  # only guidance reads it
        return BatchKey(model.name, task, plan.width, plan.height, steps, guidance, strength, negative)

    @staticmethod
    def _seeds(seed: int | None, n: int) -> list[int]:
        if seed is not None:
            return [(seed + index) % 2**63 for index in range(n)]
        return [secrets.randbelow(2**31) for _ in range(n)]

    # ----- uploads -----

    def _decode_one(self, target: Target, upload: UploadedFile, require_alpha_mode: bool) -> imaging.DecodedImage:
        dall_e_2 = target.profile.family is Family.DALL_E_2
        if dall_e_2 and len(upload.data) >= DALL_E_2_MAX_UPLOAD:
            raise InvalidRequest("Uploaded image must be a PNG and less than 4 MB.", param=upload.field)
        decoded = imaging.decode_image(upload.data, upload.field, self._upload_limits)
        if dall_e_2:
            if decoded.format != "PNG":
                raise InvalidRequest("Uploaded image must be a PNG and less than 4 MB.", param=upload.field)
            if decoded.size[0] != decoded.size[1]:
                raise InvalidRequest(f"Uploaded image must be square; got {decoded.size[0]}x{decoded.size[1]}.",
                                     param=upload.field)
            if require_alpha_mode and decoded.mode not in ("RGBA", "LA", "L"):
                raise InvalidRequest(f"Invalid input image - format must be in ['RGBA', 'LA', 'L'], got "
                                     f"{decoded.mode}.", param=upload.field)
        return decoded

    def _decode_edit_inputs(self, target: Target, images: Sequence[UploadedFile], mask: UploadedFile | None
                            ) -> tuple[list[imaging.DecodedImage], imaging.DecodedImage | None]:
        if not images:
            raise InvalidRequest("Missing required parameter: 'image'.", param="image",
                                 code="missing_required_parameter")
        if len(images) > 16:
            raise InvalidRequest(f"Invalid value: {len(images)} images. At most 16 images may be sent.",
                                 param="image")
        limit = target.model.max_input_images
        if len(images) > limit:
            raise NotImplementedByServer(
                f"The model '{target.model.name}' accepts at most {limit} input image{'s' if limit > 1 else ''}; "
                f"got {len(images)}. Several input images need a model that takes several.", param="image")
        decoded = [self._decode_one(target, upload, require_alpha_mode=True) for upload in images]
        decoded_mask = None
        if mask is not None:
            decoded_mask = self._decode_one(target, mask, require_alpha_mode=False)
            if decoded_mask.size != decoded[0].size:
                raise InvalidRequest(
                    f"Invalid mask: the mask is {decoded_mask.size[0]}x{decoded_mask.size[1]} but the image is "
                    f"{decoded[0].size[0]}x{decoded[0].size[1]}; they must have the same dimensions.",
                    param="mask")
        return decoded, decoded_mask

    # ----- running and answering -----

    async def _run(self, jobs: list[ImageJob]) -> list[np.ndarray]:
        try:
            self._engine.submit(jobs)
        except QueueFull as full:
            wait = self._engine.estimated_wait_s(len(jobs))
            raise TooManyRequests(f"The server is busy: {full.waiting} images are waiting. Retry after "
                                  f"{math.ceil(wait)} seconds.", retry_after_s=wait) from None
        except QueueClosed:
            raise ServiceUnavailable("The server is shutting down.") from None
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
            raise InternalError() from None

    async def _check_outputs(self, pixels: Sequence[np.ndarray], moderation: str | None,
                             context: RequestContext) -> None:
        if self.output_check is not None:
            await self.output_check(pixels, moderation, context.trace_id)

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
        if restore is not None:  # a masked edit: outside the mask, the original comes back unchanged
            original, repaint = restore
            pixels = imaging.composite(original, pixels, repaint)
        data = imaging.encode_image(pixels, plan.output_format, compression=plan.compression,
                                    png_level=self._png_level)
        if plan.response_format == "b64_json":
            return {"b64_json": base64.b64encode(data).decode("ascii")}
        stored = self._blobs.put(data, plan.output_format)
        base = self._public_url or context.base_url.rstrip("/")
        return {"url": f"{base}/v1/files/{stored.name}?sig={stored.signature}"}


def _edit_pixels(image: imaging.DecodedImage, mask: imaging.DecodedImage | None, alpha_is_mask: bool,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The edit's input at the output size, and its repaint mask (None: image-to-image on the whole image)."""
    original = imaging.to_rgb_array(image.image, size)
    if mask is not None:
        return original, imaging.repaint_mask_from_alpha(mask.image, size)
    if alpha_is_mask:
        return original, imaging.repaint_mask_from_alpha(image.image, size)
    return original, None


def _image_tokens(width: int, height: int) -> int:
    return math.ceil(width / 32) * math.ceil(height / 32)


def estimate_usage(prompt: str, input_images: Sequence[tuple[int, int]], n: int, width: int,
                   height: int) -> dict[str, Any]:
    """OpenAI's usage shape, estimated: a text token per 4 prompt bytes, an image token per 32x32 patch."""
    text_tokens = math.ceil(len(prompt.encode()) / 4)
    image_tokens = sum(_image_tokens(w, h) for w, h in input_images)
    output_tokens = n * _image_tokens(width, height)
    return {"input_tokens": text_tokens + image_tokens, "output_tokens": output_tokens,
            "total_tokens": text_tokens + image_tokens + output_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens}}
