"""`imageapi serve`: flags come from the Settings fields and override environment and config file."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from imageapi.config import Settings, load_settings
from imageapi.keys.cli import add_keys_parser, run_keys
from imageapi.keys.store import KeyStore
from imageapi.moderation.policy import load_policy

log = logging.getLogger("imageapi")


def _help(field: str) -> str:
    return Settings.model_fields[field].description or ""


def _serve_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", type=Path, help="TOML config file (also IMAGEAPI_CONFIG)")
    serve.add_argument("--host", help=_help("host") + " Default 127.0.0.1.")
    serve.add_argument("--port", type=int, help=_help("port") + " Default 8000.")
    serve.add_argument("--model", dest="models", action="append", metavar="[NAME=]SOURCE",
                       help="Model to serve (repeatable; the first is the default). SOURCE: a Hugging Face "
                            "repo id, a local diffusers folder, or random:tiny|sd2|sdxl.")
    serve.add_argument("--api-key", dest="api_keys", action="append", metavar="KEY", help=_help("api_keys"))
    serve.add_argument("--allow-no-auth", action="store_true", default=None, help=_help("allow_no_auth"))
    serve.add_argument("--allow-private-urls", action="store_true", default=None, help=_help("allow_private_urls"))
    serve.add_argument("--data-dir", type=Path, help=_help("data_dir"))
    serve.add_argument("--public-url", help=_help("public_url"))
    serve.add_argument("--url-ttl-seconds", type=int, help=_help("url_ttl_seconds"))
    serve.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], help=_help("device"))
    serve.add_argument("--dtype", choices=["auto", "float16", "bfloat16", "float32"], help=_help("dtype"))
    serve.add_argument("--queue-capacity", type=int, help=_help("queue_capacity"))
    serve.add_argument("--png-compress-level", type=int, help=_help("png_compress_level"))
    serve.add_argument("--max-body-bytes", type=int, help=_help("max_body_bytes"))
    serve.add_argument("--log-level", help=_help("log_level"))
    serve.add_argument("--task-workers", type=int, help=_help("task_workers"))
    serve.add_argument("--webhook-secret", help=_help("webhook_secret"))
    serve.add_argument("--webhook-max-attempts", type=int, help=_help("webhook_max_attempts"))
    serve.add_argument("--webhook-window-seconds", type=float, help=_help("webhook_window_seconds"))
    serve.add_argument("--webhook-timeout-seconds", type=float, help=_help("webhook_timeout_seconds"))
    serve.add_argument("--encode-workers", type=int, help=_help("encode_workers"))
    serve.add_argument("--max-batch-images", type=int, help=_help("max_batch_images"))
    serve.add_argument("--max-batch-wait-ms", type=float, help=_help("max_batch_wait_ms"))
    serve.add_argument("--compile", action="store_true", default=None, help=_help("compile"))
    serve.add_argument("--compile-mode", choices=["default", "reduce-overhead", "max-autotune",
                                                  "max-autotune-no-cudagraphs"], help=_help("compile_mode"))
    serve.add_argument("--compile-size", dest="compile_sizes", action="append", metavar="WxH",
                       help=_help("compile_sizes"))
    serve.add_argument("--images-per-minute", type=int, help=_help("images_per_minute") + " Default 50.")
    serve.add_argument("--requests-per-minute", type=int, help=_help("requests_per_minute") + " Default 500.")
    serve.add_argument("--body-read-timeout-seconds", type=float, help=_help("body_read_timeout_seconds"))
    serve.add_argument("--moderation-policy", type=Path, help=_help("moderation_policy"))
    serve.add_argument("--rate-limit-window-seconds", type=float, help=_help("rate_limit_window_seconds"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def has_keys(settings: Settings) -> bool:
    """Flag/env keys, or any key ever created in the data dir's store (revoked ones still mean "keys on")."""
    return bool(settings.api_keys) or bool(KeyStore.in_data_dir(settings.data_dir).list())


def check_exposure(settings: Settings) -> str | None:
    """Why the server must not start as configured, or None."""
    if not settings.models:
        return "no model given: pass --model SOURCE (e.g. --model random:tiny or --model stabilityai/sd-turbo)"
    if settings.moderation_policy is not None:
        try:
            load_policy(settings.moderation_policy)
        except (OSError, ValueError) as error:
            return f"invalid moderation policy {settings.moderation_policy}: {error}"
    if not has_keys(settings) and not is_loopback(settings.host) and not settings.allow_no_auth:
        return (f"refusing to listen on {settings.host} without API keys: give --api-key (or IMAGEAPI_API_KEYS), "
                "create one with `imageapi keys create`, or --allow-no-auth to serve without authentication")
    return None


def serve(settings: Settings) -> int:
    import uvicorn

    from imageapi.app import build_app

    problem = check_exposure(settings)
    if problem:
        log.error("%s", problem)
        return 2
    if not has_keys(settings):
        log.warning("no API keys configured: every request is accepted (%s)",
                    "loopback only" if is_loopback(settings.host) else "--allow-no-auth")
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=10)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imageapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    add_keys_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "keys":
        return run_keys(args)
    given = {key: value for key, value in vars(args).items() if key not in ("command", "config")}
    try:
        settings = load_settings(given, config_file=args.config)
    except (ValidationError, ValueError, OSError) as error:
        print(f"imageapi: invalid settings: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
