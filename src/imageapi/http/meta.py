"""Models, health and result files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from imageapi.errors import NotFound
from imageapi.http.auth import Authenticated
from imageapi.service.images import ImagesService

api_router = APIRouter()
root_router = APIRouter()

_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@api_router.get("/models")
async def list_models(request: Request, _: Authenticated) -> dict[str, Any]:
    service: ImagesService = request.app.state.images
    return {"object": "list", "data": service.list_models()}


@api_router.get("/files/{name}")
async def get_result_file(request: Request, name: str, sig: str = "") -> FileResponse:
    """No bearer key: the signed, expiring URL is the capability, as OpenAI's result URLs are."""
    service: ImagesService = request.app.state.images
    path = service.result_path(name, sig)
    if path is None:
        raise NotFound("This file URL is invalid or has expired.", code="file_not_found")
    extension = name.rsplit(".", 1)[-1]
    return FileResponse(path, media_type=_MEDIA_TYPES[extension], headers={"cache-control": "private, max-age=3600"})


@root_router.get("/health")
async def health(request: Request) -> JSONResponse:
    service: ImagesService = request.app.state.images
    ready, body = service.health()
    return JSONResponse(body, status_code=200 if ready else 503)
