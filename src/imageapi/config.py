"""One frozen Settings object, read once at start: CLI flags > IMAGEAPI_* environment > TOML file > defaults.

Every field is documented here; `imageapi serve --help` shows the same words.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QualityName = Literal["low", "medium", "high"]


class ModelSpec(BaseModel):
    """One served model: the public name clients send as `model`, and where its weights come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Name clients send as `model`.")
    source: str = Field(description="Hugging Face repo id, local diffusers folder, or random:tiny|sd2|sdxl.")
    inpaint_source: str | None = Field(None, description="A dedicated inpainting checkpoint; default: from_pipe.")
    steps: dict[QualityName, int] | None = Field(None, description="Denoising steps per quality; default by model.")
    guidance_scale: float | None = Field(None, description="Classifier-free guidance; default by model.")
    strength: float = Field(0.75, description="Image-to-image strength for edits without a mask.", gt=0, le=1)
    variation_strength: float = Field(0.6, description="Image-to-image strength for variations.", gt=0, le=1)
    default_size: str | None = Field(None, description="WxH used for size=auto; default by model.")
    max_pixels: int = Field(2048 * 2048, description="Largest width*height a native request may ask for.")
    max_batch_images: int = Field(8, ge=1, description="Most images run in one pipeline call.")
    max_batch_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits to fill up.")

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """`SOURCE` or `NAME=SOURCE`, as `--model` takes it."""
        name, sep, source = text.partition("=")
        if not sep:
            source = text
            name = Path(text).name if Path(text).is_dir() else text
        if not name or not source:
            raise ValueError(f"--model wants SOURCE or NAME=SOURCE, got {text!r}")
        return cls(name=name, source=source)


def _usable_cpus() -> int:
    """The CPUs this process may run on (a container's limit), not every CPU of the host."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    models: tuple[ModelSpec, ...] = Field((), description="Served models; the first is the default.")
    aliases: dict[str, str] = Field(default_factory=dict,
                                    description="Public name (e.g. dall-e-3) -> served model name.")
    api_keys: tuple[str, ...] = Field((), description="Accepted bearer keys (also IMAGEAPI_API_KEYS, comma-separated).")
    allow_no_auth: bool = Field(False, description="Serve without keys on a non-loopback address.")
    allow_private_urls: bool = Field(False, description="Let callbacks and image URLs reach private and "
                                                        "loopback addresses.")
    data_dir: Path = Field(Path("imageapi-data"), description="Where result files and state live.")
    public_url: str | None = Field(None, description="Base of result URLs; default: the URL the client used.")
    url_ttl_seconds: int = Field(3600, ge=1, description="Lifetime of a result URL (OpenAI: one hour).")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("auto", description="Torch device.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field("auto",
                                                                    description="auto: float16 on GPU, float32 on CPU.")
    queue_capacity: int = Field(256, ge=1, description="Most images waiting for the GPU; past it, 429.")
    png_compress_level: int = Field(1, ge=0, le=9, description="zlib level for PNG results (1: fast).")
    encode_workers: int = Field(default_factory=lambda: _usable_cpus(), ge=1,
                                description="Threads that encode results.")
    max_body_bytes: int = Field(128 * 1024 * 1024, ge=1024, description="Largest request body; past it, 413.")
    max_image_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="Largest uploaded image file.")
    max_input_pixels: int = Field(4096 * 4096, ge=1, description="Largest decoded input image (bomb guard).")
    log_level: str = Field("info", description="Log level.")
    # Async tasks (callback_url / async) and their webhooks.
    task_workers: int = Field(2, ge=1, le=64, description="Async tasks run at the same time (each may hold up to "
                                                          "n images in the GPU queue).")
    webhook_secret: str | None = Field(None, description="Signs callbacks (x-imageapi-signature: HMAC-SHA256); "
                                                         "prefer IMAGEAPI_WEBHOOK_SECRET to the flag.")
    webhook_max_attempts: int = Field(10, ge=1, le=50, description="Callback attempts before giving up.")
    webhook_window_seconds: float = Field(3600.0, gt=0, description="Callback retries spread over this window.")
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one callback attempt.")
    # Throughput (batching defaults, compilation); per-model settings in the config file win.
    max_batch_images: int | None = Field(None, ge=1, description="Default most images per pipeline call, for "
                                                                 "models whose config does not set it (else 8).")
    max_batch_wait_ms: float | None = Field(None, ge=0, description="Default time a batch waits to fill up, for "
                                                                    "models whose config does not set it (else 5).")
    compile: bool = Field(False, description="torch.compile the denoiser and VAE decoder, warmed up for each size "
                                             "and batch bucket before /health says ready.")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode used with --compile.")
    compile_sizes: tuple[str, ...] = Field((), description="WxH sizes warmed up with --compile (repeatable); "
                                                           "default: each model's default size.")

    @field_validator("compile_sizes")
    @classmethod
    def _sizes_are_sizes(cls, sizes: tuple[str, ...]) -> tuple[str, ...]:
        for size in sizes:
            width, sep, height = size.lower().partition("x")
            if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
                raise ValueError(f"compile sizes are WxH, like 512x512; got {size!r}")
        return sizes
    # Security (issue 5): per-key rate limits; a key created with its own limits overrides these.
    images_per_minute: int = Field(50, ge=1, description="Images a key may make per minute (OpenAI's default: 50); "
                                                         "n=4 counts 4.")
    requests_per_minute: int = Field(500, ge=1, description="Image requests a key may send per minute.")
    moderation_policy: Path | None = Field(None, description="Moderation policy file (TOML or JSON): rule "
                                           "categories and optional classifiers; none: no moderation.")
    body_read_timeout_seconds: float = Field(30.0, gt=0, description="A client that sends no body data for this "
                                             "long gets a 408 (slow-client guard).")
    image_url_timeout_seconds: float = Field(15.0, gt=0, le=300, description="Longest fetch of an input image "
                                             "given by URL (redirects included); its size limit is max_image_bytes.")
    rate_limit_window_seconds: float = Field(60.0, gt=0, le=3600, description="The period the per-minute limits "
                                             "refill over (a key may burst its whole limit, then refills steadily).")

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        names = [model.name for model in models]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise ValueError(f"model names must be unique: {sorted(duplicates)}")
        return models

    @model_validator(mode="after")
    def _aliases_name_served_models(self) -> Settings:
        served = {model.name for model in self.models}
        unknown = sorted(target for target in self.aliases.values() if target not in served)
        if unknown and self.models:
            raise ValueError(f"aliases point at models that are not served: {unknown}")
        return self

    @property
    def default_model(self) -> ModelSpec:
        return self.models[0]


ENV_PREFIX = "IMAGEAPI_"


def _from_toml(path: Path) -> dict[str, Any]:
    raw = tomllib.loads(path.read_text())
    models = raw.pop("models", {})
    if isinstance(models, dict):  # [models.NAME] tables; the first is the default
        raw["models"] = [{"name": name, **table} for name, table in models.items()]
    elif isinstance(models, list):
        raw["models"] = models
    return raw


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in Settings.model_fields:
        value = environ.get(ENV_PREFIX + field.upper())
        if value is None:
            continue
        if field == "api_keys":
            values[field] = [key.strip() for key in value.split(",") if key.strip()]
        elif field == "models":
            values[field] = [ModelSpec.parse(item.strip()) for item in value.split(",") if item.strip()]
        elif field == "compile_sizes":
            values[field] = [size.strip() for size in value.split(",") if size.strip()]
        else:
            values[field] = value
    return values


def load_settings(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                  config_file: Path | None = None) -> Settings:
    """Merge the layers; `cli` holds only the flags the user gave (None means not given)."""
    environ = os.environ if environ is None else environ
    config_file = config_file or (Path(environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in environ else None)
    merged: dict[str, Any] = _from_toml(config_file) if config_file else {}
    merged.update(_from_env(environ))
    given = {key: value for key, value in cli.items() if value not in (None, [], ())}
    if "models" in given:
        given["models"] = [ModelSpec.parse(item) if isinstance(item, str) else item for item in given["models"]]
        merged = _keep_file_details(merged, given)
    merged.update(given)
    return Settings.model_validate(merged)


def _keep_file_details(merged: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A `--model NAME=SOURCE` flag keeps the per-model defaults the config file gave that NAME."""
    from_file = {entry["name"]: entry for entry in merged.get("models", []) if isinstance(entry, dict)}
    given["models"] = [ModelSpec.model_validate({**from_file.get(spec.name, {}), **spec.model_dump(exclude_unset=True)})
                       for spec in given["models"]]
    return merged
