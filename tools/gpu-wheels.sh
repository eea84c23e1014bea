#!/usr/bin/env bash
# Prepare, on a machine with network, the wheels a GPU box without network lacks:  bash tools/gpu-wheels.sh DIR
#
# The target: CPython 3.12 on x86-64 Linux with torch, JAX, nvidia-ml-py, numpy, pandas, matplotlib, jinja2, psutil,
# pytest, pytest-benchmark (and so packaging, pygments, typing-extensions) but no pydantic, platformdirs, Keras, PyYAML.
# Versions are pinned to the ones installed here (the ones the suite was tested with); override with PIN_FROM=none.
# Carry DIR to the box and run: FASHIONBENCH_WHEELS=DIR bash tools/gpu-check.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash tools/gpu-wheels.sh DIR" >&2; exit 2; }
python=${PYTHON:-python3}
# pydantic's own needs, platformdirs, PyYAML (the report's prices reader), then Keras 3 and what `pip show keras`
# requires that the box lacks: absl-py, h5py, namex, optree, rich (with markdown-it-py, mdurl). ml-dtypes comes with JAX.
packages=(pydantic pydantic-core annotated-types typing-inspection platformdirs pyyaml
          keras absl-py h5py namex optree rich markdown-it-py mdurl)
pinned=()
for package in "${packages[@]}"; do
    version=""
    if [ "${PIN_FROM:-here}" = here ]; then
        version=$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package" 2>/dev/null || true)
    fi
    pinned+=("$package${version:+==$version}")
done
mkdir -p "$1"
"$python" -m pip download --no-deps --dest "$1" --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any "${pinned[@]}"
ls -1 "$1"
