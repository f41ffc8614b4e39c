#!/usr/bin/env bash
# Set up everything the project needs on a fresh Debian machine: Chromium and fonts for the
# browser tests, a virtual environment with torch and the package (editable, with test extras),
# and the front-end bundle. Safe to run again. PYTHON=... picks the interpreter for the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root (or sudo) to run: $*" >&2; return 1
  fi
}

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || [ -d /usr/share/fonts/truetype/dejavu ] || packages+=(fonts-dejavu-core)
if [ ${#packages[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi

echo "== installing torch"
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1

echo "== building the front end"
(cd js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)

echo "== installing clip_widgets (editable, with test extras)"
.venv/bin/pip install -q -e ".[test]"

echo "installed: $(.venv/bin/python -c 'import clip_widgets, torch, open_clip; print(f"clip_widgets {clip_widgets.__version__}, torch {torch.__version__}, open_clip {open_clip.__version__}")'), $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium'), node $(node --version)"
