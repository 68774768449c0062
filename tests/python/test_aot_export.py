"""`python -m nibble.aot_export` writes a specialized @nibble.jit kernel as a VM file that
`nibble aot` builds into a library with no Python in it."""
import subprocess
import sys
import textwrap

KERNEL = textwrap.dedent("""
    import nibble as nb
    from nibble import f32

    @nb.jit
    def scale(x: nb.ptr[f32], out: nb.ptr[f32], n: int, block: nb.constexpr = 256):
        nb.launch(grid=nb.cdiv(n, block), warps=4)
        X = nb.view(x, [n])
        O = nb.view(out, [n])
        start = nb.block_id(0) * block
        v = nb.load(X[start:start + block])
        nb.store(O[start:start + block], v * 2.0)
""")


def export(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "nibble.aot_export", *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path)


def test_exported_kernels_become_one_library_function(nibble_cli, tmp_path):
    (tmp_path / "my_kernels.py").write_text(KERNEL)
    for block in (256, 1024):
        result = export(tmp_path, "my_kernels:scale", f"block={block}", "-o",
                        tmp_path / f"scale_{block}.nbvm")
        assert result.returncode == 0, result.stderr
    assert "param block: i32 const = 1024" in (tmp_path / "scale_1024.nbvm").read_text()
    (tmp_path / "kernels.json").write_text("""{
        "library": "py_kernels", "targets": ["sm_80"],
        "kernels": [{"function": "scale", "vm": ["scale_256.nbvm", "scale_1024.nbvm"]}]}""")
    nibble_cli("aot", tmp_path / "kernels.json", "-o", tmp_path / "out", "--quiet")
    header = (tmp_path / "out" / "py_kernels.h").read_text()
    # The block size differs between the variants, so the caller passes it and it is matched.
    assert ("nbl_status scale(nbl_stream stream, nbl_devptr x, nbl_devptr out, int32_t n, "
            "int32_t block);") in header


def test_export_errors_name_the_parameter(tmp_path):
    (tmp_path / "my_kernels.py").write_text(KERNEL)
    result = export(tmp_path, tmp_path / "my_kernels.py:scale", "blok=64", "-o", tmp_path / "x")
    assert result.returncode == 2 and "blok" in result.stderr
    assert not (tmp_path / "x").exists()
    result = export(tmp_path, "my_kernels:nothing", "-o", tmp_path / "x")
    assert result.returncode != 0 and "not a @nibble.jit kernel" in result.stderr
