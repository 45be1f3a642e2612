"""The checks a request passes under its profile (spec §4), and what they resolve to: the output size and
plan, the batch key and the seeds. Pure functions: no I/O, no engine."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from imageapi.engine.job import BatchKey, Task
from imageapi.engine.models import ModelInfo
from imageapi.errors import InvalidRequest, PromptTooLong, invalid_choice
from imageapi.service.profiles import Family, Profile, check_free_size, check_listed_size, quality_level
from imageapi.service.requests import ImageRequest, PromptedImageRequest

OUTPUT_FORMATS = ("png", "jpeg", "webp")
RESPONSE_FORMATS = ("url", "b64_json")
BACKGROUNDS = ("transparent", "opaque", "auto")
MODERATION_LEVELS = ("low", "auto")


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


def check_n(profile: Profile, n: int | None) -> int:
    n = 1 if n is None else n
    if not 1 <= n <= profile.max_n:
        raise InvalidRequest(f"Invalid value: '{n}'. 'n' must be between 1 and {profile.max_n}"
                             f"{' for this model' if profile.max_n == 1 else ''}.", param="n")
    return n


def check_response_format(request: ImageRequest) -> None:
    if request.response_format is not None and request.response_format not in RESPONSE_FORMATS:
        raise invalid_choice("response_format", request.response_format, RESPONSE_FORMATS)


def check_prompted(profile: Profile, request: PromptedImageRequest) -> None:
    if not request.prompt.strip():
        raise InvalidRequest("Invalid value: ''. The prompt must not be empty.", param="prompt")
    if len(request.prompt) > profile.prompt_max:
        raise PromptTooLong(f"Prompt must be length {profile.prompt_max} or less. Your prompt length is "
                            f"{len(request.prompt)}. Please reduce your prompt length.")
    check_response_format(request)
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
        check_streamable(profile, request)
    if request.partial_images is not None and not 0 <= request.partial_images <= 3:
        raise InvalidRequest(f"Invalid value: '{request.partial_images}'. 'partial_images' must be between "
                             "0 and 3.", param="partial_images")


def check_streamable(profile: Profile, request: PromptedImageRequest) -> None:
    """stream=true: events carry base64 images now, so not with async mode (a task answers later) nor with
    `url` results; and, as on OpenAI, only for the GPT image models (and this server's own models)."""
    if request.callback_url is not None or request.async_mode:
        raise InvalidRequest("Streaming (stream=true) cannot be combined with async mode ('callback_url' or "
                             "'async'): a stream answers now, a task answers later. Send one or the other.",
                             param="stream")
    if profile.family in (Family.DALL_E_2, Family.DALL_E_3):
        raise InvalidRequest(f"Streaming (stream=true) is only supported by the GPT image models and this "
                             f"server's own models, not by {profile.family}.", param="stream")
    if request.response_format == "url":
        raise InvalidRequest("Invalid value: 'url'. Streamed images are sent as 'b64_json'; omit "
                             "'response_format' with stream=true.", param="response_format")


def checked_size(target: Target, size: str) -> tuple[int, int]:
    profile = target.profile
    if profile.sizes is not None:
        check_listed_size(profile, size)
        if size != "auto":
            width, _, height = size.partition("x")
            return int(width), int(height)
        return target.model.default_size
    return check_free_size(profile, size, target.model.max_pixels, target.model.size_multiple)


def size_for_generation(target: Target, size: str | None) -> tuple[int, int]:
    size = size or target.profile.default_size
    if size == "auto":
        if target.profile.sizes is not None:
            check_listed_size(target.profile, size)
        return target.model.default_size
    return checked_size(target, size)


def size_for_input(target: Target, size: str | None, input_size: tuple[int, int]) -> tuple[int, int]:
    """Edits and variations: an explicit size wins; otherwise dall-e-2 makes 1024x1024 as OpenAI does,
    and the others keep the input's size (rounded down to the model's multiple, scaled into its cap)."""
    if size is None and target.profile.family is Family.DALL_E_2:
        size = target.profile.default_size
    if size is not None and size != "auto":
        return checked_size(target, size)
    if size == "auto" and target.profile.sizes is not None:
        check_listed_size(target.profile, size)
    width, height = input_size
    scale = min(1.0, math.sqrt(target.model.max_pixels / (width * height)))
    multiple = target.model.size_multiple
    width = max(multiple * 8, int(width * scale) // multiple * multiple)
    height = max(multiple * 8, int(height * scale) // multiple * multiple)
    return width, height


def output_plan(target: Target, request: ImageRequest, width: int, height: int) -> OutputPlan:
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


def batch_key(target: Target, task: Task, plan: OutputPlan, request: ImageRequest,
              strength: float | None) -> BatchKey:
    model = target.model
    steps = request.num_inference_steps or model.steps_for(plan.quality)  # type: ignore[arg-type]
    if strength is not None:
        # Image-to-image runs int(steps * strength) steps: at least one, or there is nothing to denoise
        # (a 1-step turbo model at the default strength 0.75 would otherwise make no step at all).
        steps = max(steps, math.ceil(1 / strength))
    guidance = request.guidance_scale if request.guidance_scale is not None else model.guidance_scale
    negative = bool(request.negative_prompt) and guidance > 1.0  # only guidance reads it
    return BatchKey(model.name, task, plan.width, plan.height, steps, guidance, strength, negative)


def seeds_for(seed: int | None, n: int) -> list[int]:
    if seed is not None:
        return [(seed + index) % 2**63 for index in range(n)]
    return [secrets.randbelow(2**31) for _ in range(n)]
