"""Request bodies, with OpenAI's field names and order. Values are checked per profile in images.py;
here only types are. Fields that newer SDKs send and we do not use are kept as extras, never refused.
JSON `null` and an absent field both mean "the default"; multipart strings ("2", "false") are coerced.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str | None = None
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    user: str | None = None
    # Extensions for open models (any profile): reproducibility and sampler control.
    seed: int | None = Field(None, ge=0, lt=2**63)
    negative_prompt: str | None = None
    num_inference_steps: int | None = Field(None, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    strength: float | None = Field(None, gt=0, le=1)
    # AceData's async mode.
    callback_url: str | None = None
    async_mode: bool | None = Field(None, alias="async")
    trace_id: str | None = Field(None, max_length=200)


class PromptedImageRequest(ImageRequest):
    prompt: str
    quality: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    background: str | None = None
    moderation: str | None = None
    stream: bool | None = None
    partial_images: int | None = None


class ImageGenerationRequest(PromptedImageRequest):
    style: str | None = None


class ImageEditRequest(PromptedImageRequest):
    input_fidelity: str | None = None


class ImageVariationRequest(ImageRequest):
    prompt: str | None = None  # extension: guides the variation; empty by default
