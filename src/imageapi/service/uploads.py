"""Uploaded images: decoded and checked (dall-e-2's rules with OpenAI's messages, the model's input limit,
the mask's size), and an edit's pixels at the output size. Blocking: called in the pool."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imageapi import imaging
from imageapi.errors import InvalidRequest, NotImplementedByServer
from imageapi.service.checks import Target
from imageapi.service.profiles import Family

DALL_E_2_MAX_UPLOAD = 4 * 1024 * 1024
MAX_INPUT_IMAGES = 16  # OpenAI's limit for edits (spec §3.1), uploads and URLs together


@dataclass(frozen=True)
class UploadedFile:
    field: str
    data: bytes


def decode_upload(target: Target, upload: UploadedFile, limits: imaging.UploadLimits,
                  require_alpha_mode: bool) -> imaging.DecodedImage:
    dall_e_2 = target.profile.family is Family.DALL_E_2
    if dall_e_2 and len(upload.data) >= DALL_E_2_MAX_UPLOAD:
        raise InvalidRequest("Uploaded image must be a PNG and less than 4 MB.", param=upload.field)
    decoded = imaging.decode_image(upload.data, upload.field, limits)
    if dall_e_2:
        if decoded.format != "PNG":
            raise InvalidRequest("Uploaded image must be a PNG and less than 4 MB.", param=upload.field)
        if decoded.size[0] != decoded.size[1]:
            raise InvalidRequest(f"Uploaded image must be square; got {decoded.size[0]}x{decoded.size[1]}.",
                                 param=upload.field)
        if require_alpha_mode and decoded.mode not in ("RGBA", "LA", "L"):
            raise InvalidRequest(f"Invalid input image - format must be in ['RGBA', 'LA', 'L'], got "
                                 f"{decoded.mode}.", param=upload.field)
    return decoded


def decode_edit_inputs(target: Target, images: Sequence[UploadedFile], mask: UploadedFile | None,
                       limits: imaging.UploadLimits) -> tuple[list[imaging.DecodedImage], imaging.DecodedImage | None]:
    if not images:
        raise InvalidRequest("Missing required parameter: 'image'.", param="image",
                             code="missing_required_parameter")
    if len(images) > MAX_INPUT_IMAGES:
        raise InvalidRequest(f"Invalid value: {len(images)} images. At most {MAX_INPUT_IMAGES} images may be sent.",
                             param="image")
    limit = target.model.max_input_images
    if len(images) > limit:
        raise NotImplementedByServer(
            f"The model '{target.model.name}' accepts at most {limit} input image{'s' if limit > 1 else ''}; "
            f"got {len(images)}. Several input images need a model that takes several.", param="image")
    decoded = [decode_upload(target, upload, limits, require_alpha_mode=True) for upload in images]
    decoded_mask = None
    if mask is not None:
        decoded_mask = decode_upload(target, mask, limits, require_alpha_mode=False)
        if decoded_mask.size != decoded[0].size:
            raise InvalidRequest(
                f"Invalid mask: the mask is {decoded_mask.size[0]}x{decoded_mask.size[1]} but the image is "
                f"{decoded[0].size[0]}x{decoded[0].size[1]}; they must have the same dimensions.",
                param="mask")
    return decoded, decoded_mask


def edit_pixels(image: imaging.DecodedImage, mask: imaging.DecodedImage | None, alpha_is_mask: bool,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The edit's input at the output size, and its repaint mask (None: image-to-image on the whole image)."""
    original = imaging.to_rgb_array(image.image, size)
    if mask is not None:
        return original, imaging.repaint_mask_from_alpha(mask.image, size)
    if alpha_is_mask:
        return original, imaging.repaint_mask_from_alpha(image.image, size)
    return original, None
