#!/usr/bin/env bash
# Quick start: install the bot, the test tools and redis-server, then run lint, types and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check bot adapters tests bench
.venv/bin/ruff format --check bot adapters tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
