"""SASS, the GPU's machine code: a compiled kernel's cubin disassembled by NVIDIA's `nvdisasm`.

`kernel.sass` (and `Specialization.sass`) call `disassemble(compiled.cubin)`. nvdisasm is not
part of nibble; it is looked up, first found wins, in:

1. `$NIBBLE_NVDISASM` (a path to the executable),
2. `PATH` (tools/env.sh adds the bin folders of NVIDIA's pip packages to it),
3. `$CUDA_HOME/bin`, `$CUDA_PATH/bin`, `/usr/local/cuda/bin`,
4. the `bin` folders of the installed `nvidia` pip packages (`pip install
   nvidia-cuda-nvdisasm` puts it in `site-packages/nvidia/<cuXX>/bin` or
   `site-packages/nvidia/cuda_nvdisasm/bin`).

When none is found, `MissingToolError` says how to install it. The command line's
`nibble compile --emit sass` does the same in C++ (cli/cmd_compile.cpp); the package does not
call into the command-line tool, so that a wheel needs neither the tool nor a shell.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from typing import Optional


class MissingToolError(RuntimeError):
    """An NVIDIA tool (nvdisasm, ptxas) that an introspection needs is not installed."""


def find_nvdisasm() -> Optional[str]:
    """The path of nvdisasm (in the order the module's docstring gives), or None."""
    configured = os.environ.get("NIBBLE_NVDISASM")
    if configured:
        return configured if os.path.isfile(configured) else None
    found = shutil.which("nvdisasm")
    if found:
        return found
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(variable)
        if root and os.path.isfile(os.path.join(root, "bin", "nvdisasm")):
            return os.path.join(root, "bin", "nvdisasm")
    if os.path.isfile("/usr/local/cuda/bin/nvdisasm"):
        return "/usr/local/cuda/bin/nvdisasm"
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(glob.glob(os.path.join(root, "*", "bin", "nvdisasm"))):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def disassemble(cubin: bytes, kernel: str = "the kernel") -> str:
    """The SASS text of a cubin (`nvdisasm -c`: code sections only).

    Raises MissingToolError when the cubin is empty (ptxas was not found when the kernel was
    compiled) or nvdisasm cannot be found, and RuntimeError with nvdisasm's output when it
    fails."""
    if not cubin:
        raise MissingToolError(
            f"{kernel}: .sass needs a cubin, and none was built because ptxas was not found; "
            "install the CUDA toolkit or the nvidia-cuda-nvcc wheel, or set $NIBBLE_PTXAS")
    tool = find_nvdisasm()
    configured = os.environ.get("NIBBLE_NVDISASM")
    if tool is None and configured:
        raise MissingToolError(f"{kernel}: .sass needs NVIDIA's nvdisasm, and $NIBBLE_NVDISASM "
                               f"({configured}) is not a file")
    if tool is None:
        raise MissingToolError(
            f"{kernel}: .sass needs NVIDIA's nvdisasm, which was not found ($NIBBLE_NVDISASM, "
            "PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, the nvidia pip packages): install the "
            "CUDA toolkit or `pip install nvidia-cuda-nvdisasm`")
    with tempfile.TemporaryDirectory(prefix="nibble-sass-") as directory:
        path = os.path.join(directory, "kernel.cubin")
        with open(path, "wb") as file:
            file.write(cubin)
        try:
            result = subprocess.run([tool, "-c", path], capture_output=True, text=True,
                                    timeout=120)
        except OSError as error:
            raise MissingToolError(f"{kernel}: cannot run nvdisasm ({tool}): {error}") from None
    if result.returncode != 0:
        raise RuntimeError(f"{kernel}: nvdisasm ({tool}) failed with exit status "
                           f"{result.returncode}:\n{result.stderr or result.stdout}")
    return result.stdout
