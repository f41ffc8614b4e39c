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
# First every test but the browser tests, in one pytest-xdist worker per core (at most four; each
# runs torch on one thread, see tests/conftest.py); then the browser tests, again a worker per
# core, each file whole in one worker: run beside the heavy tests, pages that draw from a busy
# kernel timed out. CLIP_WIDGETS_TEST_WORKERS=0 runs everything in one process. Arguments with
# their own -m run once, as given.
cores=$(.venv/bin/python -c "import os; print(len(os.sched_getaffinity(0)))")
workers=${CLIP_WIDGETS_TEST_WORKERS:-$(( cores < 2 ? 0 : (cores > 4 ? 4 : cores) ))}
run_pytest() {  # exit status 5, "no tests collected", is not a failure: a -k can select one part only
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || { local status=$?; [ "$status" -eq 5 ] || return "$status"; }
}
case " $* " in
  *" -m "*) run_pytest -n "$workers" --dist loadgroup "$@" ;;
  *)
    status=0
    run_pytest -n "$workers" --dist loadgroup -m "not browser" "$@" || status=$?
    run_pytest -n "$workers" --dist loadgroup -m browser "$@" || status=$?
    exit "$status"
    ;;
esac
