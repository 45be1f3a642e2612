"""Throughput knobs derived from the settings: each model's batch policy, the batch-size buckets a
compiled model pads to, and the shapes the engine warms up before it reports ready. No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imageapi.config import ModelSpec, Settings
from imageapi.engine.job import BatchKey, Task
from imageapi.engine.models import ModelInfo, parse_size
from imageapi.engine.queue import BatchPolicy


@dataclass(frozen=True)
class WarmupBatch:
    """One pipeline call made before the engine is ready: `images` jobs of `key`."""

    key: BatchKey
    images: int


def batch_policy(spec: ModelSpec, settings: Settings) -> BatchPolicy:
    """A model's own config wins; otherwise the server-wide default (--max-batch-images and
    --max-batch-wait-ms); otherwise ModelSpec's defaults."""
    explicit = spec.model_fields_set
    images = spec.max_batch_images
    if "max_batch_images" not in explicit and settings.max_batch_images is not None:
        images = settings.max_batch_images
    wait_ms = spec.max_batch_wait_ms
    if "max_batch_wait_ms" not in explicit and settings.max_batch_wait_ms is not None:
        wait_ms = settings.max_batch_wait_ms
    return BatchPolicy(max_images=images, max_wait_s=wait_ms / 1000)


def batch_buckets(max_images: int) -> tuple[int, ...]:
    """Powers of two below the max batch, and the max itself: at most half a batch is padding, and
    a compiled model needs one graph per bucket instead of one per batch size."""
    buckets = {max_images}
    size = 1
    while size < max_images:
        buckets.add(size)
        size *= 2
    return tuple(sorted(buckets))


def compile_options(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    """The backend's compile_mode and batch_buckets: none without --compile (eager runs any batch size)."""
    if not settings.compile:
        return {"compile_mode": None, "batch_buckets": ()}
    return {"compile_mode": settings.compile_mode,
            "batch_buckets": batch_buckets(batch_policy(spec, settings).max_images)}


def warmup_sizes(settings: Settings, model: ModelInfo) -> list[tuple[int, int]]:
    if settings.compile_sizes:
        return [parse_size(size) for size in settings.compile_sizes]
    return [model.default_size]


def warmup_plan(settings: Settings, model: ModelInfo, policy: BatchPolicy) -> list[WarmupBatch]:
    """With compilation on: every configured size at every bucket, text-to-image with the model's
    default guidance (guidance doubles the denoiser's batch, so it is part of the shape). The step
    count does not change any shape: one step is enough. Without compilation: nothing."""
    if not settings.compile:
        return []
    return [WarmupBatch(BatchKey(model.name, Task.TEXT_TO_IMAGE, width, height, 1, model.guidance_scale), images)
            for width, height in warmup_sizes(settings, model)
            for images in batch_buckets(policy.max_images)]
