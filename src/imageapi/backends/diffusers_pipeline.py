"""A diffusers model as an engine backend: text-to-image, image-to-image and inpainting from one set
of weights (`from_pipe`), or a dedicated inpainting checkpoint where one is configured.

Each image of a batch has its own seeded generator, so a seed gives the same image alone or in a
batch. Each derived pipeline has its own scheduler object. Results become uint8 on the device, so only
the final bytes cross to the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image
from diffusers.utils import logging as diffusers_logging

from imageapi.backends.random_models import RANDOM_ARCHITECTURES
from imageapi.engine.job import ImageJob, Task, preview_steps

log = logging.getLogger(__name__)

RANDOM_PREFIX = "random:"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested != "auto":
        return _DTYPES[requested]
    return torch.float32 if device.type == "cpu" else torch.float16


class UnknownRandomArchitecture(ValueError):
    pass


def build_pipeline(source: str, dtype: torch.dtype) -> Any:
    if source.startswith(RANDOM_PREFIX):
        arch = source.removeprefix(RANDOM_PREFIX)
        if arch not in RANDOM_ARCHITECTURES:
            raise UnknownRandomArchitecture(f"unknown random architecture {arch!r}; "
                                            f"choose one of {sorted(RANDOM_ARCHITECTURES)}")
        torch.manual_seed(0)  # the same random weights on every start, so seeds reproduce across restarts
        return RANDOM_ARCHITECTURES[arch]().to(dtype=dtype)
    return AutoPipelineForText2Image.from_pretrained(source, torch_dtype=dtype)


def _own_scheduler(pipe: Any) -> Any:
    return type(pipe.scheduler).from_config(pipe.scheduler.config)


class DiffusersBackend:
    def __init__(self, source: str, *, device: str = "auto", dtype: str = "auto",
                 inpaint_source: str | None = None, compile_mode: str | None = None,
                 batch_buckets: Sequence[int] = ()) -> None:
        """compile_mode: a torch.compile mode for the denoiser and the VAE decoder, or None for eager.
        batch_buckets: batch sizes to pad every batch up to (compiled graphs are per shape), or () for none."""
        self.source = source
        self.inpaint_source = inpaint_source
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.compile_mode = compile_mode
        self.batch_buckets = tuple(sorted(set(batch_buckets)))
        self._pipes: dict[Task, Any] = {}

    def load(self) -> None:
        diffusers_logging.set_verbosity_error()
        text_to_image = build_pipeline(self.source, self.dtype).to(self.device)
        image_to_image = AutoPipelineForImage2Image.from_pipe(text_to_image, scheduler=_own_scheduler(text_to_image))
        if self.inpaint_source:
            inpaint = AutoPipelineForInpainting.from_pretrained(self.inpaint_source, torch_dtype=self.dtype)
            inpaint = inpaint.to(self.device)
        else:
            inpaint = AutoPipelineForInpainting.from_pipe(text_to_image, scheduler=_own_scheduler(text_to_image))
        self._pipes = {Task.TEXT_TO_IMAGE: text_to_image, Task.IMAGE_TO_IMAGE: image_to_image, Task.INPAINT: inpaint}
        for pipe in self._pipes.values():
            pipe.set_progress_bar_config(disable=True)
        if self.compile_mode is not None:
            # Only the shared modules: a dedicated inpainting checkpoint stays eager (it is not warmed up).
            compile_modules(text_to_image, self.compile_mode, shapes=max(8, 4 * len(self.batch_buckets)))
        log.info("loaded %s on %s (%s%s)", self.source, self.device, self.dtype,
                 f", compiled: {self.compile_mode}" if self.compile_mode else "")

    def _arguments(self, jobs: Sequence[ImageJob]) -> dict[str, Any]:
        key = jobs[0].key
        generator_device = "cpu" if self.device.type == "mps" else self.device
        arguments: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            "height": key.height,
            "width": key.width,
            "num_inference_steps": key.steps,
            "guidance_scale": key.guidance_scale,
            "generator": [torch.Generator(generator_device).manual_seed(job.seed) for job in jobs],
            "output_type": "pt",
        }
        if key.negative_prompt:  # the key keeps jobs with and without one apart (see BatchKey)
            arguments["negative_prompt"] = [job.negative_prompt or "" for job in jobs]
        if key.task is not Task.TEXT_TO_IMAGE:
            arguments["image"] = self._to_tensor(np.stack([job.init_image for job in jobs]))  # type: ignore[misc]
            arguments["strength"] = key.strength
        if key.task is Task.INPAINT:
            masks = np.stack([job.repaint_mask for job in jobs])[..., None]  # type: ignore[misc]
            arguments["mask_image"] = self._to_tensor(masks)
        return arguments

    def _to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 NHWC on the host -> float NCHW in [0, 1] on the device."""
        tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
        return tensor.permute(0, 3, 1, 2).to(self.dtype) / 255.0

    def run(self, jobs: Sequence[ImageJob]) -> list[np.ndarray]:
        wanted = len(jobs)
        jobs = pad_to_bucket(jobs, self.batch_buckets)
        pipe = self._pipes[jobs[0].key.task]
        arguments = self._arguments(jobs)
        on_step_end = preview_callback(jobs[:wanted])  # never the padding's copies of the last job
        if on_step_end is not None:
            arguments["callback_on_step_end"] = on_step_end
        with torch.inference_mode():
            images = pipe(**arguments).images[:wanted]  # NCHW in [0, 1] on the device
            host = _to_host_bytes(images)
        return list(host)


def _to_host_bytes(images: torch.Tensor) -> np.ndarray:
    """NCHW float in [0, 1] on the device -> NHWC uint8 on the host."""
    as_bytes = (images * 255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return as_bytes.cpu().numpy()


StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


def preview_callback(jobs: Sequence[ImageJob]) -> StepCallback | None:
    """A diffusers `callback_on_step_end` that decodes, with the VAE, the current latents of each job that
    asked for previews, at that job's evenly spaced steps, and hands the pixels to the job's `on_preview`.
    None when no job wants previews (the pipeline then runs exactly as before)."""
    wanting = [(row, job) for row, job in enumerate(jobs) if job.previews > 0 and job.on_preview is not None]
    if not wanting:
        return None

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        total = getattr(pipe, "num_timesteps", None) or jobs[0].key.steps  # img2img runs fewer than key.steps
        latents = callback_kwargs.get("latents")
        for row, job in wanting:
            if latents is None or step not in preview_steps(total, job.previews):
                continue
            pixels = decode_preview(pipe, latents[row:row + 1])  # one at a time: a compiled VAE's batch-1 shape
            if pixels is None:
                continue
            try:
                job.on_preview(pixels)  # type: ignore[misc]
            except Exception:  # a preview never fails the batch, which other jobs share
                log.exception("a preview hand-off failed")
        return callback_kwargs

    return on_step_end


def decode_preview(pipe: Any, latents: torch.Tensor) -> np.ndarray | None:
    """The image the latents of an unfinished denoising decode to (HxWx3 uint8), or None for pipelines whose
    latents are not plain NCHW VAE latents (packed transformer latents): those send fewer previews."""
    vae = getattr(pipe, "vae", None)
    if vae is None or latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        return None
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor + shift, return_dict=False)[0]
    image = (decoded.float().nan_to_num_() / 2 + 0.5).clamp_(0, 1)  # the VAE's [-1, 1] -> [0, 1]
    return _to_host_bytes(image)[0]


def pad_to_bucket(jobs: Sequence[ImageJob], buckets: Sequence[int]) -> Sequence[ImageJob]:
    """Repeats the last job up to the smallest bucket that holds the batch, so a compiled graph made
    for that batch size is reused instead of compiling a new one while serving. Past the largest
    bucket (or without buckets) the batch runs as it is."""
    bucket = next((size for size in buckets if size >= len(jobs)), len(jobs))
    return list(jobs) + [jobs[-1]] * (bucket - len(jobs))


def compile_modules(pipe: Any, mode: str, shapes: int) -> None:
    """torch.compile, in place, the denoiser and the VAE decoder (from_pipe pipelines share these very
    modules). Compilation happens lazily, on the first call per shape: the engine's warm-up makes those
    calls before it reports ready."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, shapes)
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    for module in (denoiser, decoder):
        if module is not None:
            module.compile(mode=mode, dynamic=False)
