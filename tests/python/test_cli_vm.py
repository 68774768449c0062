"""`nibble example`, `check` and `run`: the printed form of every example checks and runs on the
interpreter, results match numpy, and broken programs get located errors."""
import numpy as np
import pytest

EXAMPLES = ["gemm", "gemv_u4", "quant_gemm_decode", "quant_gemm_prefill", "softmax", "vector_add"]
# The kernel each prints (the quantized GEMMs are named after their configuration).
KERNEL = {"quant_gemm_decode": "quant_gemm_u4_f16_g128_decode",
          "quant_gemm_prefill": "quant_gemm_u4_f16_g128_prefill"}


def test_examples_are_listed(nibble_cli):
    listed = [line.split()[0] for line in nibble_cli("example").stdout.splitlines()]
    assert listed == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_printed_examples_check(nibble_cli, tmp_path, name):
    program = tmp_path / f"{name}.nbl"
    program.write_text(nibble_cli("example", name).stdout)
    result = nibble_cli("check", program, "--print")
    assert f"kernel '{KERNEL.get(name, name)}" in result.stdout
    assert "is well formed" in result.stdout
    assert "@ ?" not in result.stdout.split("\n", 1)[1]  # every layout inferred


def test_vector_add_runs_and_matches_numpy(nibble_cli, tmp_path):
    program = tmp_path / "vector_add.nbl"
    program.write_text(nibble_cli("example", "vector_add").stdout)
    rng = np.random.default_rng(1)
    n = 1000  # not a multiple of the 256-element block: the tail is masked
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    np.save(tmp_path / "x_in.npy", x)
    np.save(tmp_path / "y_in.npy", y)
    np.save(tmp_path / "out_in.npy", np.full(n, np.nan, dtype=np.float32))  # poisoned
    out_dir = tmp_path / "out"
    nibble_cli("run", program, f"x={tmp_path / 'x_in.npy'}", f"y={tmp_path / 'y_in.npy'}",
               f"out={tmp_path / 'out_in.npy'}", f"n={n}", "--out", out_dir, "--grid", "4,1,1")
    np.testing.assert_array_equal(np.load(out_dir / "out.npy"), x + y)


def test_gemv_u4_runs_and_matches_numpy(nibble_cli, tmp_path):
    program = tmp_path / "gemv.nbl"
    program.write_text(nibble_cli("example", "gemv_u4").stdout)
    n, k, group = 96, 512, 128
    out_dir = tmp_path / "out"
    nibble_cli("run", program, "--args", f"x=random:{k}", f"w=random:{k * n}", f"s=random:{k // group * n}",
               f"y=zeros:{n}", f"n={n}", f"k={k}", "--seed", "7", "--out", out_dir)
    x = np.load(out_dir / "x.npy").astype(np.float64)
    packed = np.load(out_dir / "w.npy")
    codes = np.stack([packed & 15, packed >> 4], axis=1).reshape(k, n).astype(np.float64)
    scales = np.load(out_dir / "s.npy").astype(np.float64)
    weights = (codes - 8) * np.repeat(scales.reshape(k // group, n), group, axis=0)
    expected = x @ weights
    got = np.load(out_dir / "y.npy").astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-2)


def test_out_of_bounds_store_names_instruction_block_and_index(nibble_cli, tmp_path):
    program = tmp_path / "oob.nbl"
    program.write_text(nibble_cli("example", "vector_add").stdout)
    # A buffer of 100 elements, but n = 300 says otherwise: block 0 stores past the end.
    result = nibble_cli("run", program, "x=random:300", "y=random:300", "out=zeros:100", "n=300",
                        check=False)
    assert result.returncode == 1
    assert "store_global" in result.stderr
    assert "block (0, 0, 0)" in result.stderr and "element [100]" in result.stderr
    assert "vector_add.cpp" in result.stderr and "400-byte buffer of parameter 'out'" in result.stderr


def test_check_reports_parse_and_verify_errors_with_lines(nibble_cli, tmp_path):
    program = tmp_path / "bad.nbl"
    # Without the printed source-location comments, errors point into the file itself.
    text = "\n".join(line.split("  #")[0] for line in nibble_cli("example", "vector_add").stdout.splitlines())
    program.write_text(text.replace("store_global %Out[start], %sum", "store_global %Out[start], %missing"))
    result = nibble_cli("check", program, check=False)
    assert result.returncode == 1
    assert "bad.nbl:17" in result.stderr and "missing" in result.stderr
    program.write_text(text.replace("%sum = add %xs, %ys : f32 register[256]",
                                    "%sum = add %xs, %ys : f16 register[256]"))
    result = nibble_cli("check", program, check=False)
    assert result.returncode == 1
    assert "bad.nbl:16:" in result.stdout
    assert "add: operand %xs is f32 but the operation is on f16" in result.stdout
    # With them, errors point at the kernel author's C++ line.
    printed = nibble_cli("example", "vector_add").stdout
    program.write_text(printed.replace("%sum = add %xs, %ys : f32", "%sum = add %xs, %ys : f16"))
    result = nibble_cli("check", program, check=False)
    assert "vector_add.cpp:22:" in result.stdout


def test_run_explains_bad_arguments(nibble_cli, tmp_path):
    program = tmp_path / "vector_add.nbl"
    program.write_text(nibble_cli("example", "vector_add").stdout)
    result = nibble_cli("run", program, "x=random:10", "y=random:10", "out=zeros:10", check=False)
    assert result.returncode == 2 and "parameter 'n' has no value" in result.stderr
    result = nibble_cli("run", program, "x=random:10", "y=random:10", "out=zeros:10", "n=10", "q=1",
                        check=False)
    assert result.returncode == 2 and "no parameter 'q'" in result.stderr
    result = nibble_cli("run", program, "x=data.txt", "y=random:10", "out=zeros:10", "n=10", check=False)
    assert result.returncode == 2 and "FILE.npy, random:COUNT or zeros:COUNT" in result.stderr
