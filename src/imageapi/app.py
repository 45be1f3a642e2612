"""build_app(settings): the composition root. Wires settings, engine, stores and routers; owns their
lifecycles (what starts here stops here); installs the one error envelope for every failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imageapi import imaging
from imageapi.config import Settings
from imageapi.engine.models import describe_model
from imageapi.engine.tuning import batch_policy, compile_options, warmup_plan
from imageapi.engine.worker import Engine, ImageBackend
from imageapi.errors import ImageAPIError, InvalidRequest, MethodNotAllowed, NotFound, envelope
from imageapi.http import images as images_routes
from imageapi.http import meta as meta_routes
from imageapi.http import tasks as tasks_routes
from imageapi.http.auth import BearerAuthenticator
from imageapi.http.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from imageapi.keys.store import KeyStore
from imageapi.moderation.moderator import Moderator
from imageapi.ratelimit import RateLimiter
from imageapi.service.images import ImagesService
from imageapi.service.task_runner import TaskRunner
from imageapi.service.tasks import TasksService
from imageapi.storage.blobs import LocalBlobStore, load_or_create_secret
from imageapi.tasks.store import SqliteTaskStore
from imageapi.tasks.webhooks import RetryPolicy, WebhookSender

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], ImageBackend]
SWEEP_INTERVAL_S = 60.0
API_PREFIXES = ("/v1", "/openai")


def diffusers_backend_factory(settings: Settings) -> BackendFactory:
    specs = {spec.name: spec for spec in settings.models}

    def make(name: str) -> ImageBackend:
        from imageapi.backends.diffusers_pipeline import DiffusersBackend  # torch loads with the first model

        spec = specs[name]
        return DiffusersBackend(spec.source, device=settings.device, dtype=settings.dtype,
                                inpaint_source=spec.inpaint_source, **compile_options(spec, settings))

    return make


def build_engine(settings: Settings, backend_factory: BackendFactory | None = None) -> Engine:
    models = [describe_model(spec) for spec in settings.models]
    policies = {spec.name: batch_policy(spec, settings) for spec in settings.models}
    warmup = [batch for model in models for batch in warmup_plan(settings, model, policies[model.name])]
    return Engine(models, backend_factory or diffusers_backend_factory(settings), policies,
                  settings.queue_capacity, warmup)


async def _sweep_forever(blobs: LocalBlobStore) -> None:
    while True:
        try:
            removed = await asyncio.to_thread(blobs.sweep)
            if removed:
                log.info("swept %d expired result files", removed)
        except Exception:  # a failed sweep (disk trouble) is retried next round; it must not end the sweeper
            log.exception("sweeping expired result files failed")
        await asyncio.sleep(SWEEP_INTERVAL_S)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _error_response(request: Request, error: ImageAPIError) -> JSONResponse:
    return JSONResponse(envelope(error, request.state.trace_id), status_code=error.status, headers=error.headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImageAPIError)
    async def api_error(request: Request, error: ImageAPIError) -> JSONResponse:
        return _error_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return _error_response(request, NotFound(f"Invalid URL ({request.method} {request.url.path})"))
        if error.status_code == 405:
            return _error_response(request, MethodNotAllowed(
                f"Method {request.method} is not allowed for {request.url.path}."))
        return _error_response(request, InvalidRequest(str(error.detail), code="bad_request"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return _error_response(request, InvalidRequest(f"Invalid value for '{param}': {first.get('msg')}.",
                                                        param=param))


async def _start_tasks(app: FastAPI, settings: Settings, stack: contextlib.AsyncExitStack) -> None:
    """Async tasks: the durable store, the submission service, the runner (which resumes unfinished work)."""
    store = await asyncio.to_thread(SqliteTaskStore, settings.data_dir / "tasks.sqlite3")
    stack.push_async_callback(asyncio.to_thread, store.close)
    runner: TaskRunner | None = None
    app.state.tasks = TasksService(store, app.state.images, settings.data_dir / "task-inputs",
                                   allow_private_urls=settings.allow_private_urls,
                                   wake_runner=lambda: runner.wake() if runner else None)
    sender = WebhookSender(secret=settings.webhook_secret, timeout_s=settings.webhook_timeout_seconds,
                           allow_private=settings.allow_private_urls)
    runner = TaskRunner(store, app.state.images, app.state.tasks, sender,
                        RetryPolicy(settings.webhook_max_attempts, settings.webhook_window_seconds),
                        workers=settings.task_workers)
    await runner.start()
    stack.push_async_callback(runner.stop)


def build_app(settings: Settings, backend_factory: BackendFactory | None = None) -> FastAPI:
    engine = build_engine(settings, backend_factory)
    data_dir = settings.data_dir
    moderator = Moderator.from_file(settings.moderation_policy) if settings.moderation_policy else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each stop is registered as soon as its start succeeded: a failed start-up, or a failing stop,
        # still stops everything started before it (in reverse order).
        async with contextlib.AsyncExitStack() as stack:
            blobs = LocalBlobStore(data_dir / "results", load_or_create_secret(data_dir / "url-signing.key"),
                                   settings.url_ttl_seconds)
            encoder = ThreadPoolExecutor(settings.encode_workers, thread_name_prefix="imageapi-encode")
            stack.callback(encoder.shutdown, wait=True)
            app.state.images = ImagesService(
                engine, blobs, encoder, default_model=settings.default_model.name, aliases=dict(settings.aliases),
                upload_limits=imaging.UploadLimits(settings.max_image_bytes, settings.max_input_pixels),
                png_level=settings.png_compress_level, public_url=settings.public_url, prompt_checker=moderator)
            if moderator is not None:  # classifiers load in a thread; results are checked before being stored
                await asyncio.to_thread(moderator.load_classifiers)
                app.state.images.output_check = moderator.check_images
            engine.start()
            stack.push_async_callback(asyncio.to_thread, engine.stop)
            stack.push_async_callback(_cancel, asyncio.create_task(_sweep_forever(blobs)))
            await _start_tasks(app, settings, stack)
            yield

    app = FastAPI(title="imageapi", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    # Security (issue 5): flag/env keys plus the data dir's key store; per-key rate limits.
    app.state.authenticator = BearerAuthenticator(settings.api_keys, KeyStore.in_data_dir(data_dir))
    app.state.ratelimiter = RateLimiter(settings.rate_limit_window_seconds)
    for prefix in API_PREFIXES:
        app.include_router(images_routes.router, prefix=prefix)
        app.include_router(meta_routes.api_router, prefix=prefix)
        app.include_router(tasks_routes.router, prefix=prefix)
    app.include_router(meta_routes.root_router)
    _install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       read_timeout_s=settings.body_read_timeout_seconds)
    app.add_middleware(RequestIdMiddleware)
    return app
