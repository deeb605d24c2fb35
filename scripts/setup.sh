#!/usr/bin/env bash
# Creates .venv and installs the bot into it; with --dev also the test tools, redis-server
# and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  command -v redis-server >/dev/null || apt_install redis-server
  # nginx: the replicas scenario runs two bots behind deploy/nginx-replicas.conf.
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx-light
  # chromium: the web chat page is tested in a real headless browser.
  command -v chromium >/dev/null || apt_install chromium
  # Go and gorilla/websocket (Debian's, no module download): a Go WebSocket client written
  # as the product brief's example talks to the web channel in the tests.
  { command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/gorilla/websocket ]; } ||
    apt_install golang-go golang-github-gorilla-websocket-dev
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
