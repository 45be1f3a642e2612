"""API profiles: the rules a public model name brings (spec §4), whichever local model serves it.

OpenAI's names keep OpenAI's sizes, `n` limits, prompt limits, defaults and extra response fields;
native names (the names of served models) take any size the model can make.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from imageapi.errors import InvalidRequest, invalid_choice


class Endpoint(StrEnum):
    GENERATIONS = "generations"
    EDITS = "edits"
    VARIATIONS = "variations"


class Family(StrEnum):
    DALL_E_2 = "dall-e-2"
    DALL_E_3 = "dall-e-3"
    GPT_IMAGE = "gpt-image"
    GPT_IMAGE_FREE_SIZE = "gpt-image-2"
    NATIVE = "native"


ALL_ENDPOINTS = frozenset(Endpoint)
GPT_QUALITIES = ("low", "medium", "high", "auto")


@dataclass(frozen=True)
class Profile:
    family: Family
    endpoints: frozenset[Endpoint]
    max_n: int
    prompt_max: int
    sizes: tuple[str, ...] | None  # None: any WxH the family's rule allows
    default_size: str
    qualities: tuple[str, ...]
    default_response_format: str
    styles: tuple[str, ...] = ()
    revised_prompt: bool = False
    usage: bool = False
    size_code: str = "invalid_value"  # dall-e-3 answers invalid_size with its own message

    @property
    def is_gpt_image(self) -> bool:
        return self.family in (Family.GPT_IMAGE, Family.GPT_IMAGE_FREE_SIZE)


_NATIVE_QUALITIES = ("low", "medium", "high", "auto", "standard", "hd")

PROFILES: dict[Family, Profile] = {
    Family.DALL_E_2: Profile(Family.DALL_E_2, ALL_ENDPOINTS, 10, 1000, ("256x256", "512x512", "1024x1024"),
                             "1024x1024", ("standard", "auto"), "url"),
    Family.DALL_E_3: Profile(Family.DALL_E_3, frozenset({Endpoint.GENERATIONS}), 1, 4000,
                             ("1024x1024", "1792x1024", "1024x1792"), "1024x1024", ("standard", "hd", "auto"),
                             "url", styles=("vivid", "natural"), revised_prompt=True, size_code="invalid_size"),
    Family.GPT_IMAGE: Profile(Family.GPT_IMAGE, frozenset({Endpoint.GENERATIONS, Endpoint.EDITS}), 10, 32000,
                              ("1024x1024", "1536x1024", "1024x1536", "auto"), "auto", GPT_QUALITIES, "b64_json",
                              usage=True),
    Family.GPT_IMAGE_FREE_SIZE: Profile(Family.GPT_IMAGE_FREE_SIZE, frozenset({Endpoint.GENERATIONS, Endpoint.EDITS}),
                                        10, 32000, None, "auto", GPT_QUALITIES, "b64_json", usage=True),
    Family.NATIVE: Profile(Family.NATIVE, ALL_ENDPOINTS, 10, 32000, None, "auto", _NATIVE_QUALITIES, "url"),
}

OPENAI_MODEL_NAMES = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2",
                      "gpt-image-2-2026-04-21", "chatgpt-image-latest")


def family_of(public_name: str | None) -> Family:
    """The family a public name belongs to; any name that is not OpenAI's is native."""
    if public_name is None:
        return Family.NATIVE
    if public_name in (Family.DALL_E_2, Family.DALL_E_3):
        return Family(public_name)
    if re.fullmatch(r"gpt-image-(2|[3-9]|\d{2,})([.\-].*)?", public_name):
        return Family.GPT_IMAGE_FREE_SIZE
    if public_name.startswith("gpt-image-") or public_name == "chatgpt-image-latest":
        return Family.GPT_IMAGE
    return Family.NATIVE


def quality_level(quality: str) -> str:
    """OpenAI's quality words onto the per-model step table's low / medium / high."""
    return {"auto": "medium", "standard": "medium", "hd": "high"}.get(quality, quality)


_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def parse_size(text: str) -> tuple[int, int] | None:
    match = _SIZE.match(text)
    return (int(match[1]), int(match[2])) if match else None


def check_free_size(profile: Profile, text: str, max_pixels: int, multiple: int) -> tuple[int, int]:
    """Sizes for gpt-image-2 (OpenAI's rule) and native names (the model's rule)."""
    parsed = parse_size(text)
    if parsed is None:
        raise InvalidRequest(f"Invalid value: '{text}'. Size must be 'auto' or WIDTHxHEIGHT, e.g. '1024x1024'.",
                             param="size")
    width, height = parsed
    if profile.family is Family.GPT_IMAGE_FREE_SIZE:
        problems = [
            (width % 16 or height % 16, "width and height must be multiples of 16"),
            (max(width, height) > 3 * min(width, height), "the aspect ratio must be between 1:3 and 3:1"),
            (max(width, height) > 3840, "the long side must be at most 3840"),
            (not 655_360 <= width * height <= 8_294_400, "the pixel count must be between 655360 and 8294400"),
        ]
    else:
        problems = [(width % multiple or height % multiple, f"width and height must be multiples of {multiple}"),
                    (min(width, height) < 64, "width and height must be at least 64")]
    problems.append((width * height > max_pixels, f"this server makes at most {max_pixels} pixels per image"))
    for failed, reason in problems:
        if failed:
            raise InvalidRequest(f"Invalid value: '{text}'. The size is not supported: {reason}.", param="size")
    return width, height


def check_listed_size(profile: Profile, text: str) -> None:
    assert profile.sizes is not None
    if text in profile.sizes:
        return
    if profile.size_code == "invalid_size":
        raise InvalidRequest("The size is not supported by this model.", code="invalid_size")
    raise invalid_choice("size", text, profile.sizes)
