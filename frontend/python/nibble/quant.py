"""Weight-only quantization for the quantized GEMM (`nibble.ops.quant_matmul`).

    qw = nibble.quantize(w, dtype="u4", group_size=128)    # w: [K, N], numpy or torch
    qw.dequantize()                                         # float32 [K, N], exactly what the
                                                            # kernels multiply by
    c = nibble.ops.quant_matmul(a, qw)                      # a: [..., K] f16 (or bf16)

`quantize` turns real weights W[K, N] into codes of a narrow type (u1…u8, i2…i8, small floats
such as f4e2m1, f6e3m2, f8e4m3) with one scale per group of `group_size` consecutive rows in
each column, and optionally zero points (unsigned integers only):

    dequant(W)[k, n] = (decode(code[k, n]) - zero[k // group_size, n]) · scale[k // group_size, n]

How scales are chosen, per group: signed integers iB are symmetric (scale = max|w| / (2^(B-1) - 1),
zero 0); unsigned integers uB are symmetric around the implicit zero point 2^(B-1), or with
`zero_points=True` asymmetric (scale = (max - min) / (2^B - 1), zero = round(-min / scale));
floats use scale = max|w| / the largest finite value of the type. Scales are rounded to the
scale type (f16 or bf16) before the codes are computed, so `dequantize()` is exactly what a
kernel computes from the stored bytes (examples/quant/quantize.h is the C++ side).

The layout is the GEMM's: W is [K, N] (in features x out features), C = A · dequant(W). A torch
`nn.Linear` keeps its weight as [out_features, in_features] = [N, K]: pass `layout="nk"` (or use
`nibble.ops.QuantizedLinear.from_linear`).
"""
from __future__ import annotations

from typing import Any, Optional, Union

import ml_dtypes
import numpy as np

from . import _core
from .dtypes import DataType, dtype as _dtype

QuantizeError = _core.QuantizeError
QuantGemmError = _core.QuantGemmError

# The numpy dtypes of 16-bit codes of the scale (and activation) types.
_SCALE_NUMPY = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}
# Weights quantize() takes, by numpy dtype.
_WEIGHT_NUMPY = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
                 np.dtype(ml_dtypes.bfloat16))


def _is_torch_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _weights_as_numpy(w, what: str) -> tuple[np.ndarray, str]:
    """`w` as a float64 numpy array, and the name of its element type ("f16", "bf16", …)."""
    if _is_torch_tensor(w):
        import torch  # present: w is one of its tensors

        names = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32",
                 torch.float64: "f64"}
        if w.dtype not in names:
            raise TypeError(f"{what}: weights must be a floating tensor (f16, bf16, f32 or f64), "
                            f"not {w.dtype}")
        return w.detach().to(device="cpu", dtype=torch.float64).numpy(), names[w.dtype]
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{what}: weights must be a numpy array or a torch tensor, not "
                        f"{type(w).__name__}")
    if w.dtype not in _WEIGHT_NUMPY:
        raise TypeError(f"{what}: weights must be float16, bfloat16 (ml_dtypes), float32 or "
                        f"float64, not {w.dtype}")
    name = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}[w.dtype.name]
    return w.astype(np.float64), name


class QuantizedWeight:
    """A quantized weight matrix W[K, N], as `nibble.quantize` makes it.

    Attributes: `dtype` (the weight type, a `nibble.DataType`), `scale_dtype` (f16 or bf16: the
    activation type the GEMM takes), `shape` (K, N), `group_size` (rows per group; K when
    per-channel), `per_channel`, `zero_points`, `scales` and `zeros` ([K // group_size, N]
    numpy arrays of the scale type; `zeros` is None without zero points), `packed` (the codes,
    row-major over [K, N], as the little-endian bit stream of `nibble.pack`: a uint8 array) and
    `nbytes` (bytes of codes, scales and zeros).

    The GEMM re-packs the codes into the order its tensor-core fragments read, which depends on
    the kernel configuration (hence on M); each re-packed variant is made once and kept here,
    on the host and per CUDA device it has been used on.
    """

    def __init__(self, core: Any):
        """Wraps a `nibble._core.QuantizedWeight`; use `nibble.quantize` or `from_parts`."""
        self._core = core
        self._prepared: dict[tuple, Any] = {}
        self._on_device: dict[tuple, tuple] = {}

    @classmethod
    def from_parts(cls, packed, scales, zeros=None, *, dtype: Union[str, DataType],
                   shape: Optional[tuple[int, int]] = None) -> "QuantizedWeight":
        """A weight from codes quantized elsewhere: `packed` the [K, N] codes of `dtype` as a
        row-major bit stream (uint8; numpy or torch), `scales` [groups, N] f16 or bf16 (numpy
        float16 / ml_dtypes.bfloat16, or torch), `zeros` the same shape and type (unsigned
        integer weights only). `shape` (K, N) defaults to N from the scales and K from the
        number of packed bytes. Unsigned integer weights without zero points are centred on the
        implicit zero point 2^(bits-1), as `quantize` makes them. Raises QuantizeError when the
        parts do not fit together."""
        weight_type = _dtype(dtype)
        scales = _host_array(scales, "scales")
        if scales.ndim != 2 or scales.dtype not in _SCALE_NUMPY.values():
            raise TypeError("QuantizedWeight.from_parts: scales must be a 2-D array [groups, N] "
                            f"of float16 or bfloat16, not {scales.ndim}-D {scales.dtype}")
        scale_name = "f16" if scales.dtype == np.float16 else "bf16"
        packed = np.ascontiguousarray(_host_array(packed, "packed")).view(np.uint8).reshape(-1)
        groups, n = scales.shape
        if shape is None:
            k = (packed.size * 8) // (weight_type.bits * n)
        else:
            k, shape_n = (int(v) for v in shape)
            if shape_n != n:
                raise QuantizeError(f"QuantizedWeight.from_parts: shape has N = {shape_n}, the "
                                    f"scales {n}")
        group_size = k // groups if groups > 0 and k % groups == 0 else 0
        if group_size == 0:
            raise QuantizeError(f"QuantizedWeight.from_parts: K = {k} is not a multiple of the "
                                f"{groups} groups of the scales")
        codes = lambda a: np.ascontiguousarray(a).view(np.uint16)  # noqa: E731
        zero_codes = None
        if zeros is not None:
            zeros = _host_array(zeros, "zeros")
            if zeros.dtype != scales.dtype:
                raise TypeError(f"QuantizedWeight.from_parts: zeros are {zeros.dtype}, the "
                                f"scales {scales.dtype}")
            zero_codes = codes(zeros)
        return cls(_core.QuantizedWeight(weight_type, _dtype(scale_name), k, n, group_size,
                                         packed, codes(scales), zero_codes))

    # What the weight is.

    @property
    def dtype(self) -> DataType:
        return self._core.weight_type

    @property
    def scale_dtype(self) -> DataType:
        return self._core.scale_type

    @property
    def shape(self) -> tuple[int, int]:
        return (self._core.k, self._core.n)

    @property
    def group_size(self) -> int:
        return self._core.group_size

    @property
    def per_channel(self) -> bool:
        return self._core.group_size == self._core.k

    @property
    def zero_points(self) -> bool:
        return self._core.zeros is not None

    @property
    def scales(self) -> np.ndarray:
        return self._core.scales.view(_SCALE_NUMPY[self.scale_dtype.name])

    @property
    def zeros(self) -> Optional[np.ndarray]:
        zeros = self._core.zeros
        return None if zeros is None else zeros.view(_SCALE_NUMPY[self.scale_dtype.name])

    @property
    def packed(self) -> np.ndarray:
        return self._core.packed

    @property
    def nbytes(self) -> int:
        scale_bytes = self._core.groups * self._core.n * 2
        return self.packed.size + scale_bytes * (2 if self.zero_points else 1)

    def dequantize(self, dtype=np.float32) -> np.ndarray:
        """dequant(W) [K, N] as numpy `dtype` (float32 or float64; float64 is exact)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dequantize: dtype must be float32 or float64, not {dtype}")
        return self._core.dequantize().astype(dtype)

    def reference_matmul(self, a) -> np.ndarray:
        """A[M, K] · dequant(W) in float64 (A given as any real numpy array): the reference
        the kernels are checked against."""
        return self._core.reference_matmul(np.asarray(a, dtype=np.float64))

    def __reduce__(self):
        # Pickles as its parts (torch.save of a QuantizedLinear included); the caches of
        # re-packed variants are not kept.
        return (_rebuild, (self.packed, self.scales, self.zeros, self.dtype.name, self.shape))

    def __repr__(self) -> str:
        k, n = self.shape
        group = "per-channel" if self.per_channel else f"group_size={self.group_size}"
        zeros = ", zero_points" if self.zero_points else ""
        return (f"nibble.QuantizedWeight({self.dtype.name}, shape=({k}, {n}), {group}, "
                f"scales={self.scale_dtype.name}{zeros})")

    # The GEMM's variants (nibble.ops).

    def prepared(self, config) -> Any:
        """The weight re-packed for `config` (a `_core.QuantGemmConfig`), made once. Raises
        QuantGemmError when the weight does not fit the configuration."""
        key = config_key(config)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = _core.prepare_weight(self._core, config)
            self._prepared[key] = prepared
        return prepared

    def on_device(self, config, device) -> tuple:
        """The re-packed codes, scales and zeros (None without zero points) for `config` as
        torch tensors on `device`, uploaded once."""
        import torch

        key = (config_key(config), str(device))
        arrays = self._on_device.get(key)
        if arrays is None:
            prepared = self.prepared(config)
            upload = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
            zeros = upload(prepared.zeros.view(np.int16)) if self.zero_points else None
            arrays = (upload(prepared.codes), upload(prepared.scales.view(np.int16)), zeros)
            self._on_device[key] = arrays
        return arrays


def _rebuild(packed, scales, zeros, dtype: str, shape: tuple[int, int]) -> QuantizedWeight:
    return QuantizedWeight.from_parts(packed, scales, zeros, dtype=dtype, shape=shape)


def config_key(config) -> tuple:
    """Every field of a QuantGemmConfig, as a dictionary key."""
    return (config.weight.name, config.activation.name, config.group_size, config.zero_points,
            config.schedule, config.block_m, config.block_n, config.block_k, config.warps,
            config.split_k, config.unroll, config.stages, config.persistent_blocks,
            config.scale_after_mma, config.min_blocks_per_sm, config.weights_as_a, config.wgmma,
            config.copy_after_wait, config.finish_in_gemm, config.cluster_split)


def _host_array(value, what: str) -> np.ndarray:
    """A numpy array of a numpy array or a torch tensor (any device), bit for bit."""
    if _is_torch_tensor(value):
        import torch

        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{what} must be a numpy array or a torch tensor, not {type(value).__name__}")


def quantize(w, dtype: Union[str, DataType] = "u4", group_size: Optional[int] = 128,
             zero_points: bool = False, scale_dtype: Union[str, DataType, None] = None,
             layout: str = "kn") -> QuantizedWeight:
    """Quantizes the weights `w` for `nibble.ops.quant_matmul`.

    `w` is a 2-D numpy array (float16, float32, float64, or ml_dtypes.bfloat16) or torch tensor
    (any floating dtype and device; copied to the CPU): [K, N] with `layout="kn"` (the default;
    C = A · W), [N, K] with `layout="nk"` (torch.nn.Linear's [out_features, in_features]).
    `dtype` is the weight type (a name such as "u4", "i8", "f4e2m1", "f8e4m3", or a
    `nibble.DataType`; at most 8 bits, not i1, u1 only with zero points); `group_size` the rows
    per scale (None or 0: one scale per column); `zero_points` asks for asymmetric unsigned
    integers; `scale_dtype` "f16" or "bf16" is the type of the scales and so of the activations
    the GEMM will take (default: bf16 for bf16 weights, f16 otherwise).

    Raises QuantizeError (a ValueError) for K not a multiple of the group size, an unsupported
    weight or scale type, zero points on a type that is not unsigned, or a NaN/infinite weight
    (naming its [k, n]); TypeError for inputs that are not floating arrays."""
    values, source = _weights_as_numpy(w, "quantize")
    if values.ndim != 2:
        raise ValueError(f"quantize: weights must be 2-D, not {values.ndim}-D {values.shape}")
    if layout == "nk":
        values = np.ascontiguousarray(values.T)
    elif layout != "kn":
        raise ValueError(f"quantize: layout is 'kn' ([K, N]) or 'nk' ([N, K]), not {layout!r}")
    if scale_dtype is None:
        scale_dtype = "bf16" if source == "bf16" else "f16"
    group = 0 if group_size is None else int(group_size)
    core = _core.quantize(np.ascontiguousarray(values), _dtype(dtype), group, _dtype(scale_dtype),
                          bool(zero_points))
    return QuantizedWeight(core)
