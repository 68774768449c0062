"""The Python kernels compiled for the GPU: introspection everywhere (codegen needs no GPU), and
launches on torch CUDA tensors (marker `gpu`) checked against the interpreter."""
import numpy as np
import pytest

import nibble as nb
from test_jit_kernels import (cluster_rotate, cluster_rotate_expected, gemm, gemv_u4,
                              last_block_sum, softmax, vector_add)


def test_llvm_ir_ptx_and_report():
    spec = gemv_u4.specialize(group=128, bn=64, bk=256)
    assert "define" in spec.llvm_ir and "gemv_u4" in spec.llvm_ir
    assert ".entry gemv_u4" in spec.ptx
    assert "registers" in spec.report and "cast u4 -> f16" in spec.report
    assert gemv_u4.ptx == spec.ptx  # the kernel shows its last specialization


def test_numpy_arrays_are_refused_on_the_gpu_path(monkeypatch):
    monkeypatch.delenv("NIBBLE_INTERPRET", raising=False)
    x = np.ones(64, np.float32)
    with pytest.raises((TypeError, RuntimeError), match="interpret"):
        vector_add(x, x, x, 64)


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    return torch


def poisoned(torch, shape, dtype):
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


@pytest.mark.gpu
def test_vector_add_on_gpu(torch):
    n = 1000
    x = torch.randn(n, device="cuda")
    y = torch.randn(n, device="cuda")
    out = poisoned(torch, (n,), torch.float32)
    vector_add(x, y, out, n)
    torch.cuda.synchronize()
    assert torch.equal(out, x + y)


@pytest.mark.gpu
def test_softmax_on_gpu(torch):
    rows, cols = 33, 200
    x = torch.randn(rows, cols, device="cuda")
    y = poisoned(torch, (rows, cols), torch.float32)
    softmax(x, y, rows, cols)
    torch.cuda.synchronize()
    torch.testing.assert_close(y, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("stages", [1, 2])
def test_gemm_on_gpu(torch, stages):
    m, n, k = 70, 96, 80
    a = torch.randn(m, k, device="cuda", dtype=torch.float16)
    b = torch.randn(k, n, device="cuda", dtype=torch.float16)
    c = poisoned(torch, (m, n), torch.float16)
    gemm(a, b, c, m, n, k, bm=32, bn=32, bk=16, stages=stages)
    torch.cuda.synchronize()
    torch.testing.assert_close(c.float(), (a.float() @ b.float()), rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
def test_gemv_u4_on_gpu_matches_the_interpreter(torch):
    n, k = 256, 1024
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, k)).astype(np.float16)
    codes = rng.integers(0, 16, (k, n))
    scales = rng.uniform(0.01, 0.1, (k // 128, n)).astype(np.float16)
    w = nb.pack(codes, nb.u4)
    expected = np.zeros((1, n), np.float16)
    nb.interpret(gemv_u4)(x, w, scales, expected, n, k)
    y = poisoned(torch, (1, n), torch.float16)
    gemv_u4(torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda(),
            torch.from_numpy(scales).cuda(), y, n, k)
    torch.cuda.synchronize()
    np.testing.assert_allclose(y.cpu().numpy().astype(np.float32), expected.astype(np.float32),
                               rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_bad_device_arguments(torch):
    x = torch.ones(4, 64, device="cuda")
    with pytest.raises(ValueError, match=r"parameter 'x' .* is on cpu"):
        softmax(torch.ones(4, 64), x, 4, 64)
    with pytest.raises(TypeError, match=r"parameter 'y' .* expected f32 elements, got f16"):
        softmax(x, x.half(), 4, 64)
    with pytest.raises(ValueError, match=r"parameter 'x' .* not contiguous"):
        softmax(torch.ones(64, 4, device="cuda").T, x, 4, 64)
    with pytest.raises(TypeError, match=r"parameter 'x' .* numpy arrays run on the interpreter"):
        softmax(np.ones((4, 64), np.float32), x, 4, 64)


@pytest.mark.gpu
def test_fetch_add_on_gpu(torch):
    x = torch.randn(8, 64, device="cuda")
    workspace = torch.zeros(8, 64, device="cuda")
    counter = torch.zeros(1, dtype=torch.int32, device="cuda")
    for _ in range(2):
        y = poisoned(torch, (1, 64), torch.float32)
        last_block_sum(x, workspace, counter, y)
        torch.cuda.synchronize()
        expected = torch.zeros(64, device="cuda")
        for r in range(8):
            expected += x[r]
        assert torch.equal(y[0], expected)
        assert counter.item() == 0



@pytest.mark.gpu
def test_clusters_on_gpu(torch):
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("clusters need sm_90")
    x = torch.randn(8, 64, device="cuda")
    y = poisoned(torch, (8, 64), torch.float32)
    cluster_rotate(x, y)
    torch.cuda.synchronize()
    expected = cluster_rotate_expected(x.cpu().numpy())
    assert np.array_equal(y.cpu().numpy(), expected)
