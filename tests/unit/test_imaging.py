import io

import numpy as np
import pytest
from PIL import Image

from imageapi import imaging
from imageapi.errors import InvalidRequest, PayloadTooLarge
from support import mask_bytes, png_bytes

LIMITS = imaging.UploadLimits(max_bytes=1 << 20, max_pixels=1 << 20)


def test_formats_are_recognised_by_their_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "WEBP")
    assert imaging.decode_image(buffer.getvalue(), "image", LIMITS).format == "WEBP"
    assert imaging.decode_image(png_bytes((8, 8)), "image", LIMITS).format == "PNG"


@pytest.mark.parametrize("data, code", [(b"", "invalid_image"), (b"GIF89a....", "invalid_image_format"),
                                        (png_bytes((64, 64))[:60], "invalid_image")])
def test_bad_uploads(data, code):
    with pytest.raises(InvalidRequest) as caught:
        imaging.decode_image(data, "image", LIMITS)
    assert caught.value.code == code and caught.value.param == "image"


def test_oversize_upload_is_413():
    with pytest.raises(PayloadTooLarge):
        imaging.decode_image(b"\0" * (LIMITS.max_bytes + 1), "image", LIMITS)


def test_transparent_mask_pixels_are_repainted():
    mask = Image.open(io.BytesIO(mask_bytes((16, 16), (4, 4, 8, 12))))
    repaint = imaging.repaint_mask_from_alpha(mask, (16, 16))
    assert repaint.sum() == 255 * 4 * 8
    assert repaint[4:12, 4:8].min() == 255


def test_composite_keeps_the_original_outside_the_mask():
    original = np.zeros((4, 4, 3), np.uint8)
    generated = np.full((4, 4, 3), 200, np.uint8)
    repaint = np.zeros((4, 4), np.uint8)
    repaint[0, 0] = 255
    result = imaging.composite(original, generated, repaint)
    assert result[0, 0].tolist() == [200, 200, 200] and result[1:].max() == 0


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_round_trips(fmt):
    pixels = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    data = imaging.encode_image(pixels, fmt, compression=50, png_level=1)
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt.upper() and image.size == (48, 32)


def test_output_compression_changes_jpeg_size():
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    small = imaging.encode_image(pixels, "jpeg", compression=10, png_level=1)
    large = imaging.encode_image(pixels, "jpeg", compression=95, png_level=1)
    assert len(small) < len(large)
