#!/usr/bin/env bash
# Sets up the environment, then lints and runs every test tier (unit, in-process API, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -p no:cacheprovider -q --durations=15 "$@"
