"""`kernel.sass`: the cubin disassembled by nvdisasm (no GPU needed: ptxas assembles, nvdisasm
reads), and clear errors when either tool is missing or fails."""
import os
import shutil

import pytest

import nibble as nb
from nibble import sass
from test_jit_kernels import gemm, vector_add

needs_tools = pytest.mark.skipif(
    sass.find_nvdisasm() is None or not (shutil.which("ptxas") or os.path.isfile(
        "/usr/local/cuda/bin/ptxas") or os.environ.get("NIBBLE_PTXAS")),
    reason="needs ptxas and nvdisasm (tools/install-deps.sh)")


@needs_tools
def test_sass_of_a_kernel():
    spec = vector_add.specialize(x=nb.f32, y=nb.f32, out=nb.f32, block=256)
    text = spec.sass
    assert ".text.vector_add" in text and "EXIT" in text
    assert "LDG.E" in text and "STG.E" in text
    assert vector_add.sass == text  # the kernel shows its last specialization


@needs_tools
def test_sass_shows_tensor_core_instructions_for_dot():
    text = gemm.specialize(bm=32, bn=32, bk=16, stages=1).sass
    assert "HMMA" in text


@needs_tools
def test_nvdisasm_from_the_pip_package_is_found_without_path(monkeypatch):
    found = sass.find_nvdisasm()
    if "site-packages" not in found:
        pytest.skip("nvdisasm does not come from the nvidia pip package here")
    for variable in ("NIBBLE_NVDISASM", "CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    if os.path.isfile("/usr/local/cuda/bin/nvdisasm"):
        pytest.skip("the CUDA toolkit's nvdisasm comes first")
    assert sass.find_nvdisasm() == found


def test_a_missing_nvdisasm_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("NIBBLE_NVDISASM", "/nonexistent/nvdisasm")
    assert sass.find_nvdisasm() is None
    with pytest.raises(nb.MissingToolError, match=r"vector_add: .sass needs NVIDIA's nvdisasm, "
                                                  r"and \$NIBBLE_NVDISASM \(/nonexistent/nvdisasm\)"
                                                  " is not a file"):
        sass.disassemble(b"\x7fELF not really", "vector_add")
    monkeypatch.delenv("NIBBLE_NVDISASM")
    monkeypatch.setattr(sass, "find_nvdisasm", lambda: None)
    with pytest.raises(nb.MissingToolError, match=r"vector_add: .sass needs NVIDIA's nvdisasm, "
                                                  r"which was not found .* `pip install "
                                                  "nvidia-cuda-nvdisasm`"):
        sass.disassemble(b"\x7fELF not really", "vector_add")


def test_a_failing_nvdisasm_shows_its_output(monkeypatch, tmp_path):
    fake = tmp_path / "nvdisasm"
    fake.write_text("#!/bin/sh\necho 'nvdisasm fatal   : not an ELF file' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("NIBBLE_NVDISASM", str(fake))
    with pytest.raises(RuntimeError, match=r"(?s)k: nvdisasm \(.*\) failed with exit status 3:"
                                           r"\nnvdisasm fatal   : not an ELF file"):
        sass.disassemble(b"junk", "k")


def test_no_cubin_means_no_ptxas():
    with pytest.raises(nb.MissingToolError, match=r"k: .sass needs a cubin, and none was built "
                                                  "because ptxas was not found"):
        sass.disassemble(b"", "k")
