#!/usr/bin/env bash
# The main job: install, build, then show the element types and run the demo.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
bash "$here/install-deps.sh"
bash "$here/build.sh"
source "$here/env.sh"
"$build/cli/nibble" dtypes
"$build/cli/nibble" dtypes f4e2m1
"$build/cli/nibble" demo
