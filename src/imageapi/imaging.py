"""Pixels in and out, with no torch: decode and check uploads, turn OpenAI's alpha mask into a
repaint mask, composite edits onto the original, encode PNG / JPEG / WebP results."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from imageapi.errors import InvalidRequest, PayloadTooLarge

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class DecodedImage:
    field: str
    format: str  # PNG | JPEG | WEBP, from the bytes, never from the part's Content-Type
    mode: str  # the mode as uploaded (RGBA, LA, L, RGB, ...)
    image: Image.Image  # loaded, in its uploaded mode
    byte_size: int

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def decode_image(data: bytes, field: str, limits: UploadLimits) -> DecodedImage:
    """Recognises PNG, JPEG and WebP by their bytes; refuses anything else, oversize or bomb-like."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"Invalid file '{field}': the file is {len(data)} bytes; the limit is "
                              f"{limits.max_bytes} bytes.", param=field, code="image_too_large")
    if not data:
        raise InvalidRequest(f"Invalid file '{field}': the file is empty.", param=field, code="invalid_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            if width * height > limits.max_pixels:
                raise InvalidRequest(
                    f"Invalid file '{field}': the image is {width}x{height}, more than the "
                    f"{limits.max_pixels} pixels this server decodes.", param=field, code="image_too_large")
            image.load()
    except InvalidRequest:
        raise
    except UnidentifiedImageError:
        raise InvalidRequest(
            f"Invalid file '{field}': unsupported file format. Supported file formats are "
            "'image/jpeg', 'image/png', and 'image/webp'.", param=field, code="invalid_image_format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequest(f"Invalid file '{field}': the image claims more pixels than this server decodes "
                             f"(at most {limits.max_pixels}).", param=field, code="image_too_large") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise InvalidRequest(f"Invalid file '{field}': the image could not be decoded ({type(error).__name__}).",
                             param=field, code="invalid_image") from None
    return DecodedImage(field=field, format=image.format or "", mode=image.mode, image=image, byte_size=len(data))


def to_rgb_array(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 HxWx3 at `size` (width, height); transparent pixels become black, as OpenAI treats them."""
    rgba = image.convert("RGBA")
    if rgba.size != size:
        rgba = rgba.resize(size, Image.Resampling.LANCZOS)
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))


def repaint_mask_from_alpha(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """OpenAI's rule: fully transparent pixels (alpha 0) are repainted. 255 = repaint, 0 = keep."""
    if "A" not in mask.getbands() and "transparency" not in mask.info:
        raise InvalidRequest("Invalid mask: the mask must have an alpha channel; fully transparent pixels "
                             "mark the area to edit.", param="mask", code="invalid_mask")
    alpha = np.asarray(mask.convert("RGBA").getchannel("A"))
    repaint = np.where(alpha == 0, 255, 0).astype(np.uint8)
    if mask.size != size:
        repaint = np.asarray(Image.fromarray(repaint).resize(size, Image.Resampling.NEAREST))
    return repaint


def composite(original: np.ndarray, generated: np.ndarray, repaint_mask: np.ndarray) -> np.ndarray:
    """Generated pixels where the mask says repaint; the original, unchanged, everywhere else."""
    return np.where(repaint_mask[..., None] == 255, generated, original)


def encode_image(pixels: np.ndarray, output_format: str, *, compression: int | None, png_level: int) -> bytes:
    """pixels: HxWx3 uint8. `compression` is OpenAI's output_compression (0-100, for jpeg and webp)."""
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    quality = 100 if compression is None else compression
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=png_level)
    elif output_format == "jpeg":
        image.save(buffer, "JPEG", quality=quality)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=quality, method=0, lossless=quality == 100)
    else:
        raise ValueError(f"unknown output format {output_format!r}")
    return buffer.getvalue()
