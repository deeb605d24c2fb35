#!/usr/bin/env bash
# Quick start: install the bot into .venv and run it (terminal chat on the offline model by default).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bot run "$@"
