"""`imageapi keys create | list | revoke`: manage the keys in the data dir's key store.

`create` prints the new key alone on its last line; it is shown only then (the store keeps a hash).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from imageapi.keys.store import KeyNotFound, KeyStore, StoredKey

DEFAULT_DATA_DIR = Path("imageapi-data")


def add_keys_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", help="a label for the key (who or what uses it)")
    create.add_argument("--images-per-minute", type=int, help="this key's image limit (default: the server's)")
    create.add_argument("--requests-per-minute", type=int, help="this key's request limit (default: the server's)")
    actions.add_parser("list", help="list keys (no secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key by id (key_...) or by its displayed prefix")
    revoke.add_argument("key", metavar="ID_OR_PREFIX")
    for action in actions.choices.values():
        action.add_argument("--data-dir", type=Path, help="where result files and state live "
                                                            "(also IMAGEAPI_DATA_DIR; default imageapi-data)")


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or Path(os.environ.get("IMAGEAPI_DATA_DIR", DEFAULT_DATA_DIR))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(key: StoredKey) -> str:
    limits = (f"images/min={key.images_per_minute or 'default'} "
              f"requests/min={key.requests_per_minute or 'default'}")
    state = "active" if key.active else f"revoked {_when(key.revoked_at)}"
    return f"{key.id}  {key.prefix}...  {key.name or '-'}  {limits}  created {_when(key.created_at)}  {state}"


def run_keys(args: argparse.Namespace) -> int:
    store = KeyStore.in_data_dir(_data_dir(args))
    if args.keys_command == "create":
        try:
            record, secret = store.create(args.name, args.images_per_minute, args.requests_per_minute)
        except ValueError as error:
            print(f"imageapi: {error}", file=sys.stderr)
            return 2
        print(f"created {_describe(record)}")
        print("store this key now; it will not be shown again:")
        print(secret)
        return 0
    if args.keys_command == "list":
        for key in store.list():
            print(_describe(key))
        return 0
    try:
        revoked = store.revoke(args.key)
    except KeyNotFound as error:
        print(f"imageapi: {error}", file=sys.stderr)
        return 1
    print(f"revoked {_describe(revoked)}")
    return 0
