#!/usr/bin/env bash
# Every test: install, build, then the Catch2 suites through CTest and the Python suite through
# pytest. Both always run; the command fails if either fails. GPU tests (CTest label / pytest
# marker `gpu`) run where a GPU is present and are reported as skipped elsewhere.
set -uo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/install-deps.sh" || exit 1
bash "$here/build.sh" || exit 1
source "$here/env.sh"

ctest --test-dir "$build" --output-on-failure -j "${NIBBLE_JOBS:-2}"
ctest_status=$?

# The Python suite tests the installed package: pip builds it incrementally in build/pip.
if CMAKE_BUILD_PARALLEL_LEVEL="${NIBBLE_JOBS:-2}" "$python" -m pip install -q --no-build-isolation "$repo"; then
  "$python" -m pytest -q "$repo/tests/python"
  pytest_status=$?
else
  echo "pip install of the nibble package failed" >&2
  pytest_status=1
fi

if ((ctest_status != 0 || pytest_status != 0)); then
  echo "tests failed: ctest exit $ctest_status, pytest exit $pytest_status" >&2
  exit 1
fi
