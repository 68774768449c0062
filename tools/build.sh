#!/usr/bin/env bash
# Configures (once) and builds nibble into $NIBBLE_BUILD_DIR (default build/) with Ninja.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
jobs="${NIBBLE_JOBS:-2}"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${NIBBLE_BUILD_TYPE:-RelWithDebInfo}" \
    -DPython3_EXECUTABLE="$python" >"$build.configure.log" 2>&1 || {
    cat "$build.configure.log" >&2
    exit 1
  }
fi
ninja -C "$build" -j "$jobs" | grep -v "^\[" || true
test "${PIPESTATUS[0]}" -eq 0
