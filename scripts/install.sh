#!/usr/bin/env bash
# Set up everything the project needs on a fresh Debian machine: Chromium for the browser tests,
# a virtual environment with torch and the package (editable, with test extras), and the
# front-end bundle. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi dejavu; then
  echo "== installing Chromium and fonts (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing torch"
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1

echo "== building the front end"
(cd js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)

echo "== installing clip_widgets (editable, with test extras)"
.venv/bin/pip install -q -e ".[test]"

echo "installed: $(.venv/bin/python -c 'import clip_widgets, torch, open_clip; print(f"clip_widgets {clip_widgets.__version__}, torch {torch.__version__}, open_clip {open_clip.__version__}")'), $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium')"
