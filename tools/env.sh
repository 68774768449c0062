# Sourced by the tools/ scripts: where things are, and the tools found by install-deps.sh.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NIBBLE_VENV:-$repo/.venv}"
build="${NIBBLE_BUILD_DIR:-$repo/build}"
python="$venv/bin/python"
# ptxas and nvdisasm from NVIDIA's PyPI packages, when the system has none.
for tool_dir in "$venv"/lib/python3*/site-packages/nvidia/*/bin; do
  [[ -d "$tool_dir" ]] && PATH="$PATH:$tool_dir"
done
export PATH
export NIBBLE_BUILD_DIR="$build"
# ccache keys without the build directory, so that build/ and the pip build (build/pip) share
# their objects.
export CCACHE_NOHASHDIR=1
