"""The design's import direction, held by walking every module's imports."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "imageapi"

FORBIDDEN = {
    "http": ("imageapi.engine", "imageapi.backends", "torch", "diffusers", "transformers"),
    "service": ("imageapi.http", "imageapi.backends", "imageapi.moderation", "torch", "diffusers", "transformers",
                "fastapi", "starlette"),
    "engine": ("imageapi.http", "imageapi.service", "fastapi", "starlette", "diffusers", "transformers"),
    "backends": ("imageapi.http", "imageapi.service", "fastapi", "starlette"),
    # Side rooms (task store, key store, moderation): adapters behind ports, below the service.
    "tasks": ("imageapi.http", "imageapi.service", "imageapi.engine", "imageapi.backends", "fastapi", "starlette",
              "torch"),
    "keys": ("imageapi.http", "imageapi.service", "imageapi.engine", "imageapi.backends", "fastapi", "starlette",
             "torch"),
    "moderation": ("imageapi.http", "imageapi.service", "imageapi.engine", "imageapi.backends", "fastapi",
                   "starlette"),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_flow_one_way(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path):
            for banned in FORBIDDEN[layer]:
                assert not (name == banned or name.startswith(banned + ".")), f"{path.name} imports {name}"


def test_torch_stays_out_of_shared_modules():
    for name in ("errors.py", "config.py", "imaging.py", "netguard.py", "pinned_http.py", "fetch.py", "ratelimit.py"):
        assert not {n for n in imported_modules(PACKAGE / name) if n.split(".")[0] in ("torch", "diffusers")}
