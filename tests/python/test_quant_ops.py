"""nibble.quantize, nibble.QuantizedWeight and nibble.ops.quant_matmul: the quantized GEMM on the
interpreter against the float64 reference, the quantizer's round trip, the errors a bad call
gets before anything runs; on the GPU (marker `gpu`) quant_matmul on torch CUDA tensors and
QuantizedLinear against torch."""
import pickle

import ml_dtypes
import numpy as np
import pytest

import nibble as nb
from nibble import ops

BF16 = np.dtype(ml_dtypes.bfloat16)


def random_weights(k, n, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(0, 0.05, (k, n)).astype(dtype)


def random_activations(shape, dtype, seed=1):
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32).astype(dtype)


def assert_matches_reference(c, a, qw):
    """C within the rounding of f32 accumulation and of C to the activation type, as the C++
    tests check (tests/examples/quant_gemm_support.h)."""
    k, n = qw.shape
    a2 = a.astype(np.float64).reshape(-1, k)
    reference = qw.reference_matmul(a2)
    w = qw.dequantize(np.float64)
    eps = 2.0**-8 if qw.scale_dtype.name == "bf16" else 2.0**-11
    tolerance = 2 * eps * (np.abs(a2) @ np.abs(w)) + eps * np.abs(reference) + 1e-6
    got = np.asarray(c).astype(np.float64).reshape(-1, n)
    assert got.shape == reference.shape
    bad = np.abs(got - reference) > tolerance
    assert not bad.any(), (f"{bad.sum()} of {bad.size} differ; first at "
                           f"{np.argwhere(bad)[0]}: {got[bad][0]} vs {reference[bad][0]}")


# The interpreter: weight types, group sizes, zero points, bf16, batch dimensions.

@pytest.mark.parametrize("weight_type", ["u4", "u8", "u3", "i4", "i8", "f4e2m1", "f8e4m3",
                                         "f6e3m2"])
def test_weight_types_against_the_reference(weight_type):
    qw = nb.quantize(random_weights(256, 64), dtype=weight_type, group_size=128)
    a = random_activations((3, 256), np.float16)
    c = ops.quant_matmul(a, qw)
    assert c.dtype == np.float16 and c.shape == (3, 64)
    assert_matches_reference(c, a, qw)


@pytest.mark.parametrize("group_size", [32, 64, None])
def test_group_sizes(group_size):
    qw = nb.quantize(random_weights(256, 64, seed=2), dtype="u4", group_size=group_size)
    assert qw.per_channel == (group_size is None)
    assert qw.scales.shape == (1 if group_size is None else 256 // group_size, 64)
    a = random_activations((5, 256), np.float16)
    assert_matches_reference(ops.quant_matmul(a, qw), a, qw)


@pytest.mark.parametrize("weight_type", ["u4", "u8", "u3"])
def test_zero_points(weight_type):
    # Weights with an offset: asymmetric quantization is what zero points are for.
    w = random_weights(256, 64, seed=3) + 0.02
    qw = nb.quantize(w, dtype=weight_type, group_size=64, zero_points=True)
    assert qw.zero_points and qw.zeros.shape == (4, 64) and qw.zeros.dtype == np.float16
    a = random_activations((7, 256), np.float16)
    assert_matches_reference(ops.quant_matmul(a, qw), a, qw)


@pytest.mark.parametrize("weight_type", ["u4", "i8", "f8e4m3", "u3", "i4", "f4e2m1"])
def test_bf16_activations(weight_type):
    w = random_weights(256, 64, seed=4).astype(BF16)
    qw = nb.quantize(w, dtype=weight_type, group_size=64)  # bf16 weights: bf16 scales
    assert qw.scale_dtype == nb.bf16 and qw.scales.dtype == BF16
    a = random_activations((3, 256), BF16)
    c = ops.quant_matmul(a, qw)
    assert c.dtype == BF16
    assert_matches_reference(c, a, qw)


def test_leading_dimensions_are_flattened_and_a_vector_gives_a_vector():
    qw = nb.quantize(random_weights(128, 64, seed=5), dtype="u4", group_size=64)
    a = random_activations((2, 3, 128), np.float16)
    c = ops.quant_matmul(a, qw)
    assert c.shape == (2, 3, 64)
    assert_matches_reference(c, a, qw)
    np.testing.assert_array_equal(ops.quant_matmul(a[1, 2], qw), c[1, 2])
    assert ops.quant_matmul(a[:0], qw).shape == (0, 3, 64)


def test_prefill_schedule_split_k_and_caches():
    qw = nb.quantize(random_weights(1024, 128, seed=6), dtype="u4", group_size=128)
    a = random_activations((77, 1024), np.float16)
    assert_matches_reference(ops.quant_matmul(a, qw), a, qw)
    prefill = ops.choose_config(77, qw, "f16", 132)
    assert prefill.schedule == "prefill"
    # Decode with a small N splits K; one configuration (and one re-packed weight) per bucket.
    decode = ops.choose_config(3, qw, "f16", 132)
    assert decode.schedule == "decode" and decode.split_k > 1
    assert ops.choose_config(7, qw, "f16", 132) is decode
    assert ops.choose_config(9, qw, "f16", 132) is not decode  # 16-row tiles
    assert ops.choose_config(20, qw, "f16", 132) is not decode
    for m in (3, 9, 16):
        a = random_activations((m, 1024), np.float16, seed=m)
        assert_matches_reference(ops.quant_matmul(a, qw), a, qw)
    assert len(qw._prepared) == 3  # prefill, decode-8 and decode-16


def test_raw_parts_and_from_parts():
    qw = nb.quantize(random_weights(256, 64, seed=7) + 0.01, dtype="u4", group_size=64,
                     zero_points=True)
    a = random_activations((3, 256), np.float16)
    expected = ops.quant_matmul(a, qw)
    raw = ops.quant_matmul(a, qw.packed, qw.scales, qw.zeros, dtype="u4")
    np.testing.assert_array_equal(raw, expected)
    rebuilt = nb.QuantizedWeight.from_parts(qw.packed, qw.scales, qw.zeros, dtype=nb.u4)
    assert rebuilt.shape == (256, 64) and rebuilt.group_size == 64
    np.testing.assert_array_equal(rebuilt.dequantize(), qw.dequantize())
    # Pickling keeps the parts.
    unpickled = pickle.loads(pickle.dumps(qw))
    assert unpickled.zero_points and unpickled.group_size == 64
    np.testing.assert_array_equal(ops.quant_matmul(a, unpickled), expected)
    # Symmetric unsigned codes: the implicit zero point 2^(bits-1).
    sym = nb.quantize(random_weights(128, 64, seed=8), dtype="u4", group_size=None)
    again = nb.QuantizedWeight.from_parts(sym.packed, sym.scales, dtype="u4", shape=(128, 64))
    np.testing.assert_array_equal(again.dequantize(), sym.dequantize())


# The quantizer.

@pytest.mark.parametrize("weight_type,zero_points", [("u4", False), ("u4", True), ("i4", False),
                                                     ("u3", True), ("f4e2m1", False),
                                                     ("f8e4m3", False)])
def test_quantizer_round_trip(weight_type, zero_points):
    k, n, group = 128, 48, 32
    w = random_weights(k, n, seed=9, dtype=np.float64)
    qw = nb.quantize(w, dtype=weight_type, group_size=group, zero_points=zero_points)
    t = nb.dtype(weight_type)
    assert qw.dtype == t and qw.shape == (k, n) and qw.group_size == group
    assert qw.packed.dtype == np.uint8 and qw.packed.size == (k * n * t.bits + 7) // 8
    # dequantize() is the documented formula on the stored codes, scales and zeros.
    codes = nb.unpack_codes(qw.packed, t, (k, n))
    values = t.decode(codes)
    scales = np.repeat(qw.scales.astype(np.float64), group, axis=0)
    if qw.zeros is not None:
        zeros = np.repeat(qw.zeros.astype(np.float64), group, axis=0)
    elif t.is_integer and not t.is_signed:
        zeros = 2.0**(t.bits - 1)
    else:
        zeros = 0.0
    if t.is_integer and t.is_signed:
        values = np.where(codes >= 2**(t.bits - 1), codes.astype(np.float64) - 2**t.bits, values)
    dequant = qw.dequantize(np.float64)
    np.testing.assert_array_equal(dequant, (values - zeros) * scales)
    assert qw.dequantize().dtype == np.float32
    # Symmetric integer codes are within half a step of the weights; with zero points the zero
    # is rounded to an integer, which may cost up to a step at the ends of the range; floats
    # are within their relative step.
    error = np.abs(dequant - w)
    if t.is_integer:
        steps = 1.0 if zero_points else 0.5
        assert np.all(error <= scales * steps * (1 + 1e-6) + 1e-12)
    else:
        assert np.all(error <= np.abs(w) / 4 + scales / 2)


def test_quantize_inputs_and_layouts():
    w = random_weights(128, 64, seed=10)
    assert nb.quantize(w).scale_dtype == nb.f16
    assert nb.quantize(w, scale_dtype="bf16").scales.dtype == BF16
    assert nb.quantize(w.astype(np.float16)).scale_dtype == nb.f16
    assert nb.quantize(w.astype(BF16)).scale_dtype == nb.bf16
    # [N, K] (torch.nn.Linear's layout) gives the same weight as its transpose.
    np.testing.assert_array_equal(nb.quantize(np.ascontiguousarray(w.T), layout="nk").dequantize(),
                                  nb.quantize(w).dequantize())
    assert repr(nb.quantize(w, group_size=None)) == \
        "nibble.QuantizedWeight(u4, shape=(128, 64), per-channel, scales=f16)"
    tall = nb.quantize(random_weights(256, 64), dtype="u8", zero_points=True, scale_dtype="bf16")
    assert repr(tall) == ("nibble.QuantizedWeight(u8, shape=(256, 64), group_size=128, "
                          "scales=bf16, zero_points)")
    assert tall.nbytes == 256 * 64 + 2 * (2 * 64 * 2)


# Errors, before anything runs.

def test_quantize_errors():
    w = random_weights(200, 64)
    with pytest.raises(nb.QuantizeError, match="K = 200 is not a multiple of the group size 128"):
        nb.quantize(w)
    with pytest.raises(nb.QuantizeError, match="weight type f16 has 16 bits"):
        nb.quantize(w, dtype="f16", group_size=40)
    with pytest.raises(nb.QuantizeError, match="zero points are for unsigned integer weights"):
        nb.quantize(w, dtype="i4", group_size=40, zero_points=True)
    with pytest.raises(nb.QuantizeError, match="scales must be f16 or bf16, not f32"):
        nb.quantize(w, group_size=40, scale_dtype="f32")
    with pytest.raises(TypeError, match="float16, bfloat16"):
        nb.quantize(np.ones((128, 64), np.int32))
    with pytest.raises(ValueError, match="must be 2-D"):
        nb.quantize(np.ones(128, np.float32))
    bad = random_weights(128, 64)
    bad[3, 5] = np.nan
    with pytest.raises(nb.QuantizeError, match=r"\[3, 5\]"):
        nb.quantize(bad)
    assert issubclass(nb.QuantizeError, ValueError) and issubclass(nb.QuantGemmError, ValueError)


def test_quant_matmul_errors():
    qw = nb.quantize(random_weights(256, 64), dtype="u4", group_size=128)
    a = random_activations((3, 256), np.float16)
    with pytest.raises(TypeError, match="A must be float16 or bfloat16"):
        ops.quant_matmul(a.astype(np.float32), qw)
    with pytest.raises(ValueError, match="last dimension must be K = 256"):
        ops.quant_matmul(a[:, :128], qw)
    with pytest.raises(nb.QuantGemmError, match="scales are f16, the activations bf16"):
        ops.quant_matmul(a.astype(BF16), qw)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        ops.quant_matmul(a.tolist(), qw)
    with pytest.raises(TypeError, match="carries its scales"):
        ops.quant_matmul(a, qw, qw.scales)
    with pytest.raises(TypeError, match="dtype="):
        ops.quant_matmul(a, qw.packed, qw.scales)
    # N not a multiple of the kernel's tile.
    narrow = nb.quantize(random_weights(256, 48), dtype="u4", group_size=128)
    with pytest.raises(nb.QuantGemmError, match="N=48 is not a multiple of block_n 64"):
        ops.quant_matmul(a, narrow)
    # A group size the kernels do not take.
    small = nb.quantize(random_weights(256, 64), dtype="u4", group_size=8)
    with pytest.raises(nb.QuantGemmError, match="group size 8 is below 16"):
        ops.quant_matmul(a, small)
    with pytest.raises(nb.QuantizeError, match="1000 packed bytes given"):
        nb.QuantizedWeight.from_parts(np.zeros(1000, np.uint8), qw.scales, dtype="u4",
                                      shape=(256, 64))


def test_quantized_linear_needs_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs torch"):
            ops.QuantizedLinear
    else:
        assert issubclass(ops.QuantizedLinear, torch.nn.Module)


# torch on the CPU: the interpreter behind the torch API (where torch is installed).

def test_torch_cpu_tensors_run_on_the_interpreter():
    torch = pytest.importorskip("torch")
    w = torch.randn(128, 64, dtype=torch.float32) * 0.05
    qw = nb.quantize(w, dtype="u4", group_size=64)
    a = torch.randn(2, 5, 128).to(torch.float16)
    c = ops.quant_matmul(a, qw)
    assert isinstance(c, torch.Tensor) and c.shape == (2, 5, 64) and c.dtype == torch.float16
    np.testing.assert_array_equal(c.numpy(), ops.quant_matmul(a.numpy(), qw))

    linear = torch.nn.Linear(128, 64, bias=True).to(torch.bfloat16)
    layer = ops.QuantizedLinear.from_linear(linear, dtype="u8", group_size=64)
    x = torch.randn(3, 128).to(torch.bfloat16)
    expected = x.double() @ torch.from_numpy(layer.qweight.dequantize(np.float64)) + \
        linear.bias.double()
    assert torch.allclose(layer(x).double(), expected, rtol=2e-2, atol=2e-2)


# On the GPU.

@pytest.fixture
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    return torch


@pytest.mark.gpu
@pytest.mark.parametrize("activation", ["f16", "bf16"])
@pytest.mark.parametrize("weight_type,group_size,zero_points",
                         [("u4", 128, False), ("u4", 64, True), ("u8", None, False),
                          ("i4", 32, False), ("f4e2m1", 128, False), ("f8e4m3", 128, False),
                          ("u3", 128, False), ("f6e3m2", 128, False)])
def test_quant_matmul_on_gpu(torch_cuda, activation, weight_type, group_size, zero_points):
    torch = torch_cuda
    dtype = torch.float16 if activation == "f16" else torch.bfloat16
    k, n = 1024, 256
    w = torch.randn(k, n, device="cuda") * 0.05
    qw = nb.quantize(w, dtype=weight_type, group_size=group_size, zero_points=zero_points,
                     scale_dtype=activation)
    dequant = torch.from_numpy(qw.dequantize()).cuda()
    for shape in [(1, k), (7, k), (2, 3, k), (200, k)]:
        a = torch.randn(shape, device="cuda").to(dtype)
        c = ops.quant_matmul(a, qw)
        assert c.shape == (*shape[:-1], n) and c.dtype == dtype and c.is_cuda
        expected = a.float() @ dequant
        tolerance = 2e-2 if activation == "bf16" else 4e-3
        scale = expected.abs().max().item()
        assert (c.float() - expected).abs().max().item() <= tolerance * scale, shape
    # Twice the same shape: the same configuration, weight variant and upload.
    uploads = len(qw._on_device)
    ops.quant_matmul(torch.randn(7, k, device="cuda").to(dtype), qw)
    assert len(qw._on_device) == uploads


@pytest.mark.gpu
def test_quant_matmul_on_gpu_matches_the_interpreter(torch_cuda):
    torch = torch_cuda
    qw = nb.quantize(random_weights(512, 128, seed=11), dtype="u4", group_size=128)
    a = random_activations((5, 512), np.float16)
    on_gpu = ops.quant_matmul(torch.from_numpy(a).cuda(), qw).cpu().numpy()
    assert_matches_reference(on_gpu, a, qw)
    assert_matches_reference(ops.quant_matmul(a, qw), a, qw)


@pytest.mark.gpu
def test_quant_matmul_gpu_errors(torch_cuda):
    torch = torch_cuda
    qw = nb.quantize(torch.randn(256, 128) * 0.05, dtype="u4", group_size=128)
    a = torch.randn(4, 256, device="cuda").half()
    with pytest.raises(ValueError, match="not contiguous"):
        ops.quant_matmul(torch.randn(256, 4, device="cuda").half().t(), qw)
    with pytest.raises(TypeError, match="torch.float16 or torch.bfloat16"):
        ops.quant_matmul(a.float(), qw)
    with pytest.raises(nb.QuantGemmError, match="scales are f16, the activations bf16"):
        ops.quant_matmul(a.bfloat16(), qw)
    with pytest.raises(ValueError, match="K = 256"):
        ops.quant_matmul(a[:, :128].contiguous(), qw)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_quantized_linear_on_gpu(torch_cuda, dtype_name):
    torch = torch_cuda
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    linear = torch.nn.Linear(1024, 512, bias=True).to(device="cuda", dtype=dtype)
    layer = ops.QuantizedLinear.from_linear(linear, dtype="u4", group_size=128)
    assert layer.in_features == 1024 and layer.out_features == 512
    x = torch.randn(2, 9, 1024, device="cuda", dtype=dtype)
    y = layer(x)
    assert y.shape == (2, 9, 512) and y.dtype == dtype
    # Against the same layer with the dequantized weight: only rounding differs.
    dequant = torch.from_numpy(layer.qweight.dequantize()).cuda()
    exact = x.float() @ dequant + linear.bias.float()
    assert (y.float() - exact).abs().max().item() <= 3e-2 * exact.abs().max().item()
    # Against the original layer: u4 with groups of 128 is close.
    original = linear(x).float()
    relative = (y.float() - original).norm() / original.norm()
    assert relative.item() < 0.15
    # f32 input to an f16/bf16 layer: cast in and out.
    assert layer(x.float()).dtype == torch.float32
