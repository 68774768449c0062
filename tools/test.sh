#!/usr/bin/env bash
# Every test: install, build, then the Catch2 suites through CTest and the Python suite through
# pytest. Both always run; the command fails if either fails. GPU tests (label/marker `gpu`) run
# only where a GPU is present (NIBBLE_GPU_TESTS=1); elsewhere they are reported as skipped.
set -uo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/install-deps.sh" || exit 1
bash "$here/build.sh" || exit 1
source "$here/env.sh"

ctest_args=(--test-dir "$build" --output-on-failure -j "${NIBBLE_JOBS:-2}")
if [[ "${NIBBLE_GPU_TESTS:-0}" != 1 ]]; then
  ctest_args+=(-LE gpu)
fi
ctest "${ctest_args[@]}"
ctest_status=$?

"$python" -m pytest -q "$repo/tests/python"
pytest_status=$?

if ((ctest_status != 0 || pytest_status != 0)); then
  echo "tests failed: ctest exit $ctest_status, pytest exit $pytest_status" >&2
  exit 1
fi
