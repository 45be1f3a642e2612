"""What the engine computes: one job per output image, grouped into batches by a BatchKey."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Task(StrEnum):
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINT = "inpaint"


@dataclass(frozen=True)
class BatchKey:
    """Everything that changes the computation: only jobs with equal keys share one pipeline call."""

    model: str
    task: Task
    width: int
    height: int
    steps: int
    guidance_scale: float
    strength: float | None = None
    # Whether the jobs carry a negative prompt. With classifier-free guidance on, a batch that has one
    # changes the others' computation (SDXL, for one, uses zero embeddings when no job has any), so jobs
    # with and without one never share a call. Always False when guidance is off (it is then ignored).
    negative_prompt: bool = False

    @property
    def uses_guidance(self) -> bool:
        return self.guidance_scale > 1.0  # diffusers' rule for classifier-free guidance


@dataclass(eq=False)
class ImageJob:
    key: BatchKey
    prompt: str
    seed: int
    negative_prompt: str | None = None
    init_image: np.ndarray | None = None  # height x width x 3, uint8, already at the key's size
    repaint_mask: np.ndarray | None = None  # height x width, uint8, 255 where the model repaints
    result: Future[np.ndarray] = field(default_factory=Future)  # height x width x 3, uint8
    # Previews of the denoising in progress: up to `previews` of them, each handed to `on_preview` (height x
    # width x 3, uint8) from the worker thread, before `result` is set. Per job, so jobs sharing a batch differ.
    previews: int = 0
    on_preview: Callable[[np.ndarray], None] | None = None


def preview_steps(total_steps: int, wanted: int) -> frozenset[int]:
    """The 0-based denoising steps after which to take a preview: up to `wanted`, evenly spaced, never the
    last step (its latents are the final image, which is no preview). Few-step runs give fewer."""
    count = min(wanted, total_steps - 1)
    if count <= 0:
        return frozenset()
    return frozenset(index * (total_steps - 1) // (count + 1) for index in range(1, count + 1))
