#!/usr/bin/env bash
# Installs everything nibble needs to build and test on Debian 12: Debian packages with
# apt-get, Python packages with pip into the project's virtual environment ($NIBBLE_VENV,
# default .venv in the repository), and ptxas from PyPI when no CUDA toolkit provides one.
# Quick and silent when everything is present; loud, with the failing step, when not.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NIBBLE_VENV:-$repo/.venv}"
log="$(mktemp -t nibble-install-XXXXXX.log)"
trap 'rm -f "$log"' EXIT

fail() {
  echo "install-deps: $1" >&2
  if [[ -s "$log" ]]; then
    echo "---- last lines of the log ----" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

debian_packages=(
  cmake ninja-build g++ git ccache clang-format
  llvm-19-dev libfmt-dev catch2 nlohmann-json3-dev zlib1g-dev libzstd-dev libxml2-dev
  python3 python3-dev python3-venv python3-pip
)

missing=()
for package in "${debian_packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || fail "need root (or sudo) to install: ${missing[*]}"
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >>"$log" 2>&1 || fail "apt-get update failed"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
    fail "apt-get install failed for: ${missing[*]}"
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "install-deps: creating the Python environment $venv"
  python3 -m venv "$venv" >>"$log" 2>&1 || fail "python3 -m venv $venv failed"
fi
python="$venv/bin/python"

python_modules_present() {
  "$python" -c "import pytest, numpy, ml_dtypes, pybind11, scikit_build_core" >/dev/null 2>&1 &&
    "$python" -c "import ml_dtypes; ml_dtypes.float4_e2m1fn" >/dev/null 2>&1 &&
    [[ -n "$(find_pip_tool nvdisasm)" ]]
}

# A binary shipped by one of NVIDIA's PyPI packages inside the environment.
find_pip_tool() {
  compgen -G "$venv/lib/python3*/site-packages/nvidia/*/bin/$1" | head -n 1 || true
}

if ! python_modules_present; then
  echo "install-deps: installing Python packages into $venv"
  "$python" -m pip install -q --upgrade pip >>"$log" 2>&1 || fail "pip upgrade failed"
  "$python" -m pip install -q -r "$repo/tools/requirements.txt" >>"$log" 2>&1 ||
    fail "pip install -r tools/requirements.txt failed"
  python_modules_present || fail "Python packages are still missing after pip install"
fi

system_ptxas() {
  for candidate in "${NIBBLE_PTXAS:-}" "${CUDA_HOME:+$CUDA_HOME/bin/ptxas}" \
    "$(command -v ptxas || true)" /usr/local/cuda/bin/ptxas; do
    [[ -n "$candidate" && -x "$candidate" ]] && { echo "$candidate"; return; }
  done
}
if [[ -z "$(system_ptxas)" && -z "$(find_pip_tool ptxas)" ]]; then
  echo "install-deps: no CUDA toolkit found; installing ptxas from PyPI (nvidia-cuda-nvcc)"
  "$python" -m pip install -q nvidia-cuda-nvcc >>"$log" 2>&1 || fail "pip install nvidia-cuda-nvcc failed"
  [[ -n "$(find_pip_tool ptxas)" ]] || fail "ptxas is still missing after pip install"
fi
