"""Operators built on nibble's kernels.

`quant_matmul(a, w)` is the weight-only quantized GEMM C = A · dequant(W) of examples/quant_gemm.h
(decode and prefill schedules on mma.sync, any weight type of at most 8 bits), and
`QuantizedLinear` (present when torch is installed) is a drop-in for `torch.nn.Linear` on top
of it:

    qw = nibble.quantize(w, dtype="u4", group_size=128)     # w: [K, N]
    c = nibble.ops.quant_matmul(a, qw)                       # a: [..., K] f16 → c: [..., N] f16

    layer = nibble.ops.QuantizedLinear.from_linear(linear, dtype="u4", group_size=128)
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import ml_dtypes
import numpy as np

from . import _core
from .dtypes import DataType, dtype as _dtype
from .quant import QuantGemmError, QuantizedWeight, config_key

# QuantizedLinear (torch only) is reached through __getattr__ below.
__all__ = ["quant_matmul", "QuantGemmError"]

_ACTIVATION_NUMPY = {np.dtype(np.float16): "f16", np.dtype(ml_dtypes.bfloat16): "bf16"}
# The SMs the interpreter's configurations are chosen for (the C++ default: an H100 SXM).
_INTERPRETER_SM_COUNT = 132

_configs: dict[tuple, Any] = {}  # shape bucket, weight, activation, … → QuantGemmConfig
_devices: dict[tuple, Any] = {}  # (config, stream) → QuantGemmDevice
_sm_count: Optional[int] = None
_sm: Optional[int] = None  # the GPU's compute capability (90: sm_90a)


def _interpret_requested() -> bool:
    return os.environ.get("NIBBLE_INTERPRET", "") not in ("", "0")


def _m_bucket(m: int) -> int:
    """The configurations of choose_quant_gemm_config change with M only at 8, 16, 32 and 64
    (decode tiles: 8-row tiles, and on sm_90a the wgmma decode past 8 or 16 rows) and at 128 and
    512 (prefill tiles); one configuration serves each bucket."""
    for bound in (8, 16, 32, 64, 128, 512):
        if m <= bound:
            return bound
    return 513


def choose_config(m: int, weight: QuantizedWeight, activation: str, sm_count: int, sm: int = 80):
    """The configuration for a call with M rows of `activation`-type A on `weight` on a GPU of
    `sm_count` multiprocessors and architecture `sm` (90: the wgmma kernels), chosen once per
    shape bucket (see _m_bucket) and kept. Raises QuantGemmError when none fits (N not a
    multiple of the tile, a group size the kernels do not take, …)."""
    k, n = weight.shape
    group = 0 if weight.per_channel else weight.group_size
    key = (_m_bucket(m), n, k, weight.dtype.name, activation, group, weight.zero_points, sm_count,
           sm)
    config = _configs.get(key)
    if config is None:
        config = _core.choose_quant_gemm_config(m, n, k, weight.dtype, _dtype(activation), group,
                                                weight.zero_points, sm_count, sm)
        _configs[key] = config
    return config


def _device_gemm(config, stream: int):
    """The kernels of `config` loaded on the GPU, one per stream (the split-K workspace a
    QuantGemmDevice keeps must not be shared by calls that may overlap)."""
    key = (config_key(config), stream)
    device = _devices.get(key)
    if device is None:
        device = _core.QuantGemmDevice(config)
        _devices[key] = device
    return device


def _multiprocessors() -> int:
    global _sm_count
    if _sm_count is None:
        _sm_count = int(_core.device_info()["multiprocessors"])
    return _sm_count


def _compute_capability() -> int:
    global _sm
    if _sm is None:
        _sm = int(_core.device_info()["compute_capability"])
    return _sm


def _is_torch_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "data_ptr")


def _as_weight(w, scales, zeros, dtype) -> QuantizedWeight:
    if isinstance(w, QuantizedWeight):
        if scales is not None or zeros is not None:
            raise TypeError("quant_matmul: a QuantizedWeight carries its scales and zeros; pass "
                            "none beside it")
        return w
    if scales is None or dtype is None:
        raise TypeError("quant_matmul: w is a nibble.QuantizedWeight, or packed codes with "
                        "scales= and dtype= (the weight type)")
    return QuantizedWeight.from_parts(w, scales, zeros, dtype=dtype)


def _check_k(a_shape, k: int, n: int) -> None:
    if len(a_shape) == 0 or a_shape[-1] != k:
        raise ValueError(f"quant_matmul: A is {tuple(a_shape)}; its last dimension must be "
                         f"K = {k} of the weight [K, N] = [{k}, {n}]")


def quant_matmul(a, w, scales=None, zeros=None, *, dtype: Union[str, DataType, None] = None):
    """C = A · dequant(W), the weight-only quantized GEMM.

    `a` is [..., K] (leading dimensions are flattened into M, C is [..., N]) of f16 or bf16:
    the type of the weight's scales. `w` is a `nibble.QuantizedWeight` (from `nibble.quantize`;
    its re-packed variants and its uploads are kept on it, so repeated calls do no weight work).
    Raw parts are accepted too, for weights quantized elsewhere: `w` the [K, N] codes as a
    row-major bit stream (uint8), `scales` [groups, N], `zeros` optional, `dtype` the weight
    type; they are wrapped with `QuantizedWeight.from_parts` and re-packed on every call, so
    wrap them once yourself where calls repeat.

    Where it runs: torch CUDA tensors run on the GPU (GPU 0, torch's current stream; A must be
    contiguous), the configuration chosen for (M, N, K) once per shape bucket and the weight
    re-packed and uploaded once per configuration; the result is a new tensor on A's device.
    numpy arrays (float16 or ml_dtypes.bfloat16) and torch CPU tensors run the same kernels on
    the interpreter and return the same kind of array; `NIBBLE_INTERPRET=1` sends CUDA tensors
    there too (copied through the host).

    Raises, before anything runs: TypeError for A of another type or dtype; ValueError for a
    K that does not match, a non-contiguous CUDA tensor or one on another GPU; QuantGemmError
    (a ValueError, the C++ check's text) for shapes the kernels do not take (N not a multiple
    of the tile, K not a multiple of the group size or of block_k), scales of another type than
    A, or an unsupported weight type."""
    weight = _as_weight(w, scales, zeros, dtype)
    k, n = weight.shape
    if isinstance(a, np.ndarray):
        activation = _ACTIVATION_NUMPY.get(a.dtype)
        if activation is None:
            raise TypeError(f"quant_matmul: A must be float16 or bfloat16 (ml_dtypes), not "
                            f"{a.dtype}")
        _check_k(a.shape, k, n)
        codes = np.ascontiguousarray(a).view(np.uint16).reshape(-1, k)
        c = _interpret(codes, weight, activation)
        return c.view(a.dtype).reshape(*a.shape[:-1], n)
    if _is_torch_tensor(a):
        return _torch_matmul(a, weight)
    raise TypeError(f"quant_matmul: A must be a numpy array or a torch tensor, not "
                    f"{type(a).__name__}")


def _interpret(codes: np.ndarray, weight: QuantizedWeight, activation: str) -> np.ndarray:
    """C codes [M, N] (uint16) from A codes [M, K] on the interpreter."""
    m = codes.shape[0]
    if m == 0:
        return np.zeros((0, weight.shape[1]), np.uint16)
    config = choose_config(m, weight, activation, _INTERPRETER_SM_COUNT)
    prepared = weight.prepared(config)
    return _core.run_quant_gemm_interpreted(prepared, m, codes)


def _torch_matmul(a, weight: QuantizedWeight):
    import torch

    names = {torch.float16: "f16", torch.bfloat16: "bf16"}
    activation = names.get(a.dtype)
    if activation is None:
        raise TypeError(f"quant_matmul: A must be torch.float16 or torch.bfloat16, not {a.dtype}")
    k, n = weight.shape
    _check_k(tuple(a.shape), k, n)
    lead = tuple(a.shape[:-1])
    if not a.is_cuda or _interpret_requested():
        codes = a.detach().cpu().contiguous().view(torch.int16).numpy().view(np.uint16)
        c = _interpret(codes.reshape(-1, k), weight, activation)
        out = torch.from_numpy(c.view(np.int16)).view(a.dtype)
        return out.reshape(*lead, n).to(a.device)
    if a.device.index not in (None, 0):
        raise ValueError(f"quant_matmul: A is on {a.device}; nibble launches on GPU 0 (choose "
                         "the GPU with CUDA_VISIBLE_DEVICES)")
    if not a.is_contiguous():
        raise ValueError(f"quant_matmul: A (shape {tuple(a.shape)}, strides {a.stride()}) is not "
                         "contiguous; pass a.contiguous()")
    a2 = a.reshape(-1, k)
    m = a2.shape[0]
    c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    if m == 0:
        return c.reshape(*lead, n)
    config = choose_config(m, weight, activation, _multiprocessors(), _compute_capability())
    w_codes, w_scales, w_zeros = weight.on_device(config, a.device)  # checks scales vs A
    stream = torch.cuda.current_stream(a.device).cuda_stream
    gemm = _device_gemm(config, stream)
    gemm.run(a2.data_ptr(), w_codes.data_ptr(), w_scales.data_ptr(),
             0 if w_zeros is None else w_zeros.data_ptr(), c.data_ptr(), m, n, k, stream)
    return c.reshape(*lead, n)


def __getattr__(name: str):
    # QuantizedLinear subclasses torch.nn.Module: made on first use, so that torch stays an
    # optional dependency of the package.
    if name == "QuantizedLinear":
        try:
            from ._torch_ops import QuantizedLinear
        except ImportError as error:
            raise ImportError(f"nibble.ops.QuantizedLinear needs torch ({error})") from error
        globals()["QuantizedLinear"] = QuantizedLinear
        return QuantizedLinear
    raise AttributeError(f"module 'nibble.ops' has no attribute {name!r}")

