#!/usr/bin/env bash
# Lint, JS unit tests, then every Python test: compute modules, widgets, headless-Chromium widget
# tests in JupyterLab, Notebook 7 and Voila, and notebook execution. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# A venv made before a test dependency was added (Notebook 7, Voila, pytest-xdist) is brought up to date too.
if [ ! -x .venv/bin/python ] || [ ! -f clip_widgets/static/surgery.js ] || [ ! -d js/node_modules ] \
  || ! .venv/bin/python -c "import notebook, voila, xdist" 2>/dev/null; then
  bash scripts/install.sh
fi
# In CI a browser test that cannot start Chromium fails instead of skipping.
if [ -n "${CI:-}" ]; then export CLIP_WIDGETS_REQUIRE_BROWSER=1; fi

echo "== ruff"
.venv/bin/ruff check clip_widgets tests bench tools
.venv/bin/ruff format --check clip_widgets tests bench tools
echo "== JS build and tests"
(cd js && npm run build --silent && npm test --silent)
echo "== Python tests"
# One pytest worker per core, at most four (each runs torch on one thread; see tests/conftest.py);
# CLIP_WIDGETS_TEST_WORKERS=0 runs them all in this process.
cores=$(.venv/bin/python -c "import os; print(len(os.sched_getaffinity(0)))")
workers=${CLIP_WIDGETS_TEST_WORKERS:-$(( cores < 2 ? 0 : (cores > 4 ? 4 : cores) ))}
.venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadgroup "$@"
