"""`nibble compile`: each stage of a printed example, NIBBLE_DUMP, and errors."""
import os
import subprocess

import pytest


@pytest.fixture
def vector_add_file(nibble_cli, tmp_path):
    program = tmp_path / "vector_add.nbl"
    program.write_text(nibble_cli("example", "vector_add").stdout)
    return program


def test_report_and_ptx(nibble_cli, vector_add_file):
    report = nibble_cli("compile", vector_add_file).stdout
    assert "kernel vector_add for sm_90a: 128 threads per block" in report
    assert "spills 0/0 bytes" in report and "opt (" in report
    ptx = nibble_cli("compile", vector_add_file, "--target", "sm_80", "--emit", "ptx").stdout
    assert ".target sm_80" in ptx and ".entry vector_add" in ptx
    assert "ld.global.nc.v4.f32" in ptx or "ld.global.v4.f32" in ptx  # 16-byte vector loads
    llvm = nibble_cli("compile", vector_add_file, "--emit", "llvm").stdout
    assert "define" in llvm and "ptx_kernel" in llvm


def test_nibble_dump_keeps_every_stage(nibble_cli, vector_add_file, tmp_path):
    dump = tmp_path / "dump"
    binary = nibble_cli.binary
    subprocess.run([str(binary), "compile", str(vector_add_file)], check=True, capture_output=True,
                   env=dict(os.environ, NIBBLE_DUMP=str(dump)))
    names = sorted(p.name for p in dump.iterdir())
    for suffix in ["vm", "ll", "ptx", "report.txt"]:
        assert f"vector_add.0.{suffix}" in names
    assert "@ S[" in (dump / "vector_add.0.vm").read_text()  # layouts inferred


def test_compile_errors(nibble_cli, vector_add_file):
    result = nibble_cli("compile", vector_add_file, "--target", "sm_70", check=False)
    assert result.returncode == 1 and "unknown target 'sm_70'" in result.stderr
    result = nibble_cli("compile", vector_add_file, "--emit", "cubin", check=False)
    assert result.returncode == 2 and "give -o FILE" in result.stderr
