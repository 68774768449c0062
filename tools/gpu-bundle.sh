#!/usr/bin/env bash
# Packs what the GPU machine needs into .gpu/ (ignored by git, carried by the device tool):
# libnibble.so (LLVM inside, stripped), the GPU test and bench executables (stripped). The GPU
# machine has no LLVM, so everything that compiles kernels is built here.
#   bash tools/gpu-bundle.sh        then, on the GPU machine:  bash tools/gpu-run.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$repo/tools/build.sh"
bundle="$repo/.gpu"
rm -rf "$bundle"
mkdir -p "$bundle/lib" "$bundle/bin"
strip --strip-debug -o "$bundle/lib/libnibble.so.0" "$build/libnibble.so.0"
# The GPU tests only (the CPU tests run in CI; the carry limit is 64 MB).
for executable in "$build"/tests/*/test_*gpu* "$build"/bench/bench_* "$build/cli/nibble" \
  "$build"/examples/aot/aot_*example; do
  [[ -f "$executable" && -x "$executable" ]] || continue
  strip --strip-debug -o "$bundle/bin/$(basename "$executable")" "$executable"
done
# The AOT example libraries (their programs find them through LD_LIBRARY_PATH there).
for library in "$build"/examples/aot/lib*.so; do
  [[ -f "$library" ]] && strip --strip-debug -o "$bundle/lib/$(basename "$library")" "$library"
done
# For tools/gpu-python.sh: the examples archive the extension links, and fmt's headers.
strip --strip-debug -o "$bundle/lib/libnibble_examples.a" "$build/examples/libnibble_examples.a"
mkdir -p "$bundle/include" && cp -r /usr/include/fmt "$bundle/include/"
du -sh "$bundle" | sed 's/^/gpu bundle: /'
