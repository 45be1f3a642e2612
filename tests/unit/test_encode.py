"""imaging.encode_image: PNG level is a setting; JPEG and WebP honour output_compression."""

import io

import numpy as np
from PIL import Image

from imageapi.imaging import encode_image


def smooth_pixels() -> np.ndarray:
    y, x = np.mgrid[0:128, 0:128]
    noise = np.random.default_rng(0).integers(0, 40, (128, 128))
    return np.stack([x * 2, y * 2, (x + y + noise) % 256], axis=-1).astype(np.uint8)


def test_png_is_lossless_at_every_level_and_the_level_is_used():
    pixels = smooth_pixels()
    fast, small = encode_image(pixels, "png", compression=None, png_level=1), \
        encode_image(pixels, "png", compression=None, png_level=9)
    for data in (fast, small):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert len(small) < len(fast)


def test_jpeg_and_webp_follow_output_compression():
    pixels = smooth_pixels()
    for output_format, magic in (("jpeg", b"\xff\xd8"), ("webp", b"RIFF")):
        sizes = [len(encode_image(pixels, output_format, compression=level, png_level=1)) for level in (10, 50, 90)]
        assert sizes[0] < sizes[1] < sizes[2], (output_format, sizes)
        assert encode_image(pixels, output_format, compression=50, png_level=1).startswith(magic)


def test_webp_at_100_is_lossless():
    pixels = smooth_pixels()
    data = encode_image(pixels, "webp", compression=None, png_level=1)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pixels)
