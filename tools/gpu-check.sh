#!/usr/bin/env bash
# The one-shot GPU check, for a fresh GPU box as it comes:  bash tools/gpu-check.sh OUTDIR [--dry-run] [--data-dir DIR]
#
# Needs Python >= 3.11 with torch (a CUDA build, any recent version), JAX with its CUDA plugins, nvidia-ml-py, numpy,
# pandas, matplotlib, jinja2, psutil, pytest and pytest-benchmark, plus the wheels tools/gpu-wheels.sh prepares
# (pydantic, platformdirs, keras and their pure-Python needs). TensorFlow and asv are not needed: Keras-on-TensorFlow
# cases are recorded as skipped with the reason. With FASHIONBENCH_WHEELS=DIR (the folder gpu-wheels.sh filled) the
# wheels are installed offline with `pip install --no-deps --target DIR/site` on first use; FASHIONBENCH_SITE=DIR
# points at an already installed target folder instead. The data set: --data-dir DIR or $FASHIONBENCH_DATA with the
# four Fashion-MNIST *-ubyte.gz files (or `apt-get install dataset-fashion-mnist`); the gpu-marked tests get the same
# folder as $FASHIONBENCH_DATA. The plan, its parts and their estimates (fitted to the 2026-12-04 H200 walls): --dry-run,
# and docs/gpu.md.
#
# Writes at most 7 files into OUTDIR (found.json, gpu-tests.txt, probe.json, records.tar.gz, report.html, summary.csv,
# summary.md) and exits 1 when a GPU sanity rule or a gpu-marked test failed.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash tools/gpu-check.sh OUTDIR [--dry-run] [--data-dir DIR]" >&2
    exit 2
fi
checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
site=${FASHIONBENCH_SITE:-}
if [ -n "${FASHIONBENCH_WHEELS:-}" ]; then
    site=${site:-$FASHIONBENCH_WHEELS/site}
    if [ ! -d "$site" ]; then
        "$python" -m pip install --no-deps --no-index --quiet --target "$site" "$FASHIONBENCH_WHEELS"/*.whl
    fi
fi
export PYTHONPATH="$checkout${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
echo "checkout: $checkout ($(git -C "$checkout" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "python: $("$python" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader || true
else
    echo "nvidia-smi: not found"
fi
exec "$python" -m suite gpu-check "$@"
