"""What the service may know about a served model before (and without) loading it: no torch here."""

from __future__ import annotations

from dataclasses import dataclass

from imageapi.config import ModelSpec, QualityName

_FEW_STEP_HINTS = ("turbo", "lightning", "lcm", "hyper", "schnell")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    steps: dict[QualityName, int]
    guidance_scale: float
    strength: float
    variation_strength: float
    default_size: tuple[int, int]
    max_pixels: int
    max_input_images: int = 1  # the Stable Diffusion families take one init image
    size_multiple: int = 8

    def steps_for(self, quality: QualityName) -> int:
        return self.steps[quality]


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def describe_model(spec: ModelSpec) -> ModelInfo:
    """Defaults by family, overridden field by field by the operator's config."""
    source = spec.source.lower()
    few_step = source.startswith("random:") or any(hint in source for hint in _FEW_STEP_HINTS)
    steps: dict[QualityName, int] = {"low": 1, "medium": 2, "high": 4} if few_step else {
        "low": 15, "medium": 25, "high": 40}
    if spec.steps:
        steps = {**steps, **spec.steps}
    if source == "random:tiny":
        size = 256
    elif "xl" in source or "sd3" in source or "flux" in source:
        size = 1024
    else:
        size = 512
    return ModelInfo(
        name=spec.name,
        source=spec.source,
        steps=steps,
        guidance_scale=spec.guidance_scale if spec.guidance_scale is not None else (0.0 if few_step else 7.5),
        strength=spec.strength,
        variation_strength=spec.variation_strength,
        default_size=parse_size(spec.default_size) if spec.default_size else (size, size),
        max_pixels=spec.max_pixels,
    )
