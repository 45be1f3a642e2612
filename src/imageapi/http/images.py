"""The three image endpoints. Each route parses, authenticates, calls one service method, answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from imageapi.errors import InvalidRequest
from imageapi.http.auth import Principal
from imageapi.http.bodies import ParsedBody, parse_body, validate
from imageapi.http.fast_json import json_response
from imageapi.http.image_refs import fetch_references, image_references, mask_reference
from imageapi.http.ratelimits import RateLimited, images_charged
from imageapi.http.streaming import sse_response
from imageapi.service.images import ImagesService, RequestContext
from imageapi.service.requests import ImageEditRequest, ImageGenerationRequest, ImageVariationRequest
from imageapi.service.tasks import Submitter, TasksService, wants_task
from imageapi.service.uploads import UploadedFile

router = APIRouter()


def _service(request: Request) -> ImagesService:
    return request.app.state.images


def _context(request: Request) -> RequestContext:
    return RequestContext(trace_id=request.state.trace_id, base_url=str(request.base_url))


def _tasks(request: Request) -> TasksService:
    return request.app.state.tasks


def _submitter(request: Request, principal: Principal) -> Submitter:
    """Async mode (callback_url / async): who submits, for the task's owner, trace id and result URLs."""
    return Submitter(owner=principal.key_id, trace_id=request.state.trace_id, base_url=str(request.base_url))


async def _body(request: Request) -> ParsedBody:
    return await parse_body(request, request.app.state.settings.max_image_bytes)


@router.post("/images/generations")
async def create_image(request: Request, principal: RateLimited) -> Response:
    body = await _body(request)
    generation = validate(ImageGenerationRequest, body.fields)
    async with images_charged(request, principal, generation.n):
        if wants_task(generation):
            return json_response(await _tasks(request).submit_generation(generation, _submitter(request, principal)))
        if generation.stream:
            return sse_response(await _service(request).stream_generation(generation, _context(request)))
        return json_response(await _service(request).generate(generation, _context(request)))


@router.post("/images/edits")
async def create_image_edit(request: Request, principal: RateLimited) -> Response:
    body = await _body(request)
    image_refs, mask_ref = image_references(body), mask_reference(body)
    edit = validate(ImageEditRequest, body.fields)
    masks = body.file_list("mask")
    if len(masks) + (mask_ref is not None) > 1:
        raise InvalidRequest("Only one 'mask' file may be sent.", param="mask")
    async with images_charged(request, principal, edit.n):
        if image_refs or mask_ref:  # the prompt policy refuses before the server fetches anything for it
            await _service(request).check_prompt(edit.prompt, edit.moderation, _context(request))
        images = body.file_list("image") + await fetch_references(request, image_refs, "image")
        masks += await fetch_references(request, [mask_ref] if mask_ref else [], "mask")
        mask = masks[0] if masks else None
        if wants_task(edit):
            return json_response(await _tasks(request).submit_edit(edit, images, mask,
                                                                   _submitter(request, principal)))
        if edit.stream:
            return sse_response(await _service(request).stream_edit(edit, images, mask, _context(request)))
        return json_response(await _service(request).edit(edit, images, mask, _context(request)))


@router.post("/images/variations")
async def create_image_variation(request: Request, principal: RateLimited) -> Response:
    body = await _body(request)
    image_refs = image_references(body)
    variation = validate(ImageVariationRequest, body.fields)
    images: list[UploadedFile] = body.file_list("image") + await fetch_references(request, image_refs, "image")
    if len(images) != 1:
        raise InvalidRequest("Missing required parameter: 'image'." if not images else
                             "Variations take exactly one 'image' file.", param="image",
                             code="missing_required_parameter" if not images else "invalid_value")
    async with images_charged(request, principal, variation.n):
        if wants_task(variation):
            return json_response(await _tasks(request).submit_variation(variation, images[0],
                                                                        _submitter(request, principal)))
        return json_response(await _service(request).variation(variation, images[0], _context(request)))
