#!/usr/bin/env bash
# Runs on the GPU machine after tools/gpu-bundle.sh: builds nibble._core for the machine's own
# Python (it has no LLVM, so the extension links the carried libnibble.so and
# libnibble_examples.a instead of building them) and runs the pytest `gpu` tests on it.
# Summary in $OUT/python-gpu.txt (or .gpu/out).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$repo/.gpu"
out="${OUT:-$bundle/out}"
work="$bundle/python"
mkdir -p "$out" "$work/nibble"
python=python3
suffix=$("$python" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
include=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
pybind=$("$python" -c "import pybind11; print(pybind11.get_include())")
cp -r "$repo"/frontend/python/nibble/. "$work/nibble/"
for source in "$repo"/frontend/python/bindings/*.cpp; do
  g++ -std=c++20 -O2 -fPIC -DFMT_HEADER_ONLY=1 -I"$repo" -I"$bundle/include" -I"$include" \
    -I"$pybind" -c "$source" -o "$work/$(basename "$source" .cpp).o" &
done
wait
g++ -shared -o "$work/nibble/_core$suffix" "$work"/*.o "$bundle/lib/libnibble_examples.a" \
  "$bundle/lib/libnibble.so.0" -Wl,-rpath,"$bundle/lib" || { echo "extension build failed"; exit 1; }
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NIBBLE_CACHE_DIR="${NIBBLE_CACHE_DIR:-/tmp/nibble-cache}"
export NIBBLE_BUILD_DIR="$bundle/build"
mkdir -p "$NIBBLE_BUILD_DIR/cli" && cp "$bundle/bin/nibble" "$NIBBLE_BUILD_DIR/cli/nibble"
cd "$repo"
PYTHONPATH="$work" NIBBLE_GPU_TESTS=1 "$python" -m pytest tests/python -m gpu -q -p no:cacheprovider \
  2>&1 | tee "$out/python-gpu.txt" | tail -30
