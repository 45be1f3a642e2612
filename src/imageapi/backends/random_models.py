"""Random-weight diffusion architectures built in process, with no download.

`tiny` is a few MB and makes a 256x256 image well under a second on a CPU: it exists for tests and
for the CI of client apps. `sd2` (the SD 2.x / SD-Turbo architecture) and `sdxl` are full size: their
weights are random but their FLOPs are those of the trained models, so they serve benchmarks.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer


def char_tokenizer() -> CLIPTokenizer:
    """A character-level CLIP vocabulary: prompts still pad to 77 tokens, so text-encoder cost is real."""
    folder = Path(tempfile.mkdtemp(prefix="imageapi-tokenizer-"))
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for code in range(33, 127):
        vocab.setdefault(chr(code), len(vocab))
        vocab.setdefault(chr(code) + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _clip(hidden: int, layers: int, heads: int, inter: int, vocab: int = 49408,
          projection: int | None = None, act: str = "gelu") -> CLIPTextModel | CLIPTextModelWithProjection:
    config = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                            num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=77,
                            hidden_act=act, projection_dim=projection or hidden,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model_class(config)


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1)


def _full_vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def build_tiny() -> StableDiffusionPipeline:
    """SD-shaped, 8x VAE downsampling like the real ones, a few MB of parameters."""
    unet = UNet2DConditionModel(
        sample_size=32, block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=(2, 4),
        cross_attention_dim=32, norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=4,
                        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    return StableDiffusionPipeline(vae=vae, text_encoder=_clip(32, 2, 4, 37, vocab=256), tokenizer=char_tokenizer(),
                                   unet=unet, scheduler=_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def build_sd2() -> StableDiffusionPipeline:
    """The SD 2.1 / SD-Turbo architecture (UNet about 866M parameters)."""
    unet = UNet2DConditionModel(
        sample_size=64, block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024, use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    return StableDiffusionPipeline(vae=_full_vae(), text_encoder=_clip(1024, 23, 16, 4096),
                                   tokenizer=char_tokenizer(), unet=unet, scheduler=_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_sdxl() -> StableDiffusionXLPipeline:
    """The SDXL architecture (UNet about 2.57B parameters)."""
    tokenizer = char_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=128, block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
        transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    return StableDiffusionXLPipeline(vae=_full_vae(), text_encoder=_clip(768, 12, 12, 3072, act="quick_gelu"),
                                     tokenizer=tokenizer, text_encoder_2=_clip(1280, 32, 20, 5120, projection=1280),
                                     tokenizer_2=tokenizer, unet=unet, scheduler=_scheduler())


RANDOM_ARCHITECTURES: dict[str, Callable[[], Any]] = {"tiny": build_tiny, "sd2": build_sd2, "sdxl": build_sdxl}
