#!/usr/bin/env bash
# Every benchmark, one after the other; each prints ratios measured side by side in one run.
# Extra arguments go to each benchmark (e.g. --repeats 5).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" bench/bench_surgery.py --model ViT-B-16 "$@"
"$PY" bench/bench_surgery.py --model RN50 "$@"
"$PY" bench/bench_featvis.py "$@"
"$PY" bench/bench_atlas.py "$@"
"$PY" bench/bench_collection.py "$@"
