"""`usage` in OpenAI's shape for GPT image names. Local models have no token accounting, so it is an
estimate, documented as such in the README."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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
