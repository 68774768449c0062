"""Element types as Python objects, their numpy counterparts, and packing of sub-byte arrays.

Every type of nibble is a `DataType` (`nibble.u4`, `nibble.f6e3m2`, `nibble.dtype("f5e2m2")`)
with `name`, `bits`, `encode` (numbers to bit patterns, rounded to nearest even and saturated
as the VM does) and `decode` (bit patterns to exact values).

In memory, elements of b bits sit in a little-endian bit stream: element i occupies bits
[i*b, (i+1)*b). `pack` turns numbers into that stream (a uint8 array) and `unpack` turns it
back; `pack_codes`/`unpack_codes` do the same for raw bit patterns.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import ml_dtypes
import numpy as np

from . import _core

DataType = _core.DataType


def dtype(name: Union[str, DataType]) -> DataType:
    """The type named `name` (u1…u8, u16, u32, i1…i8, i16, i32, i64, f16, bf16, f32, f64,
    f8e4m3, f8e5m2, and any small float fNeXmY with 3 <= N <= 8)."""
    if isinstance(name, DataType):
        return name
    return DataType.parse(name)


u1, u2, u3, u4, u5, u6, u7, u8 = (dtype(f"u{b}") for b in range(1, 9))
u16, u32 = dtype("u16"), dtype("u32")
i1, i2, i3, i4, i5, i6, i7, i8 = (dtype(f"i{b}") for b in range(1, 9))
i16, i32, i64 = dtype("i16"), dtype("i32"), dtype("i64")
f16, bf16, f32, f64 = dtype("f16"), dtype("bf16"), dtype("f32"), dtype("f64")
f8e4m3, f8e5m2 = dtype("f8e4m3"), dtype("f8e5m2")
f6e3m2, f6e2m3, f4e2m1 = dtype("f6e3m2"), dtype("f6e2m3"), dtype("f4e2m1")

# The numpy dtypes that hold a type one element per item, exactly.
_NUMPY = {
    "u8": np.dtype(np.uint8), "u16": np.dtype(np.uint16), "u32": np.dtype(np.uint32),
    "i8": np.dtype(np.int8), "i16": np.dtype(np.int16), "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16),
    "f32": np.dtype(np.float32), "f64": np.dtype(np.float64),
    "f8e4m3": np.dtype(ml_dtypes.float8_e4m3fn), "f8e5m2": np.dtype(ml_dtypes.float8_e5m2),
}


def to_numpy(type_: DataType) -> Optional[np.dtype]:
    """The numpy dtype of one element, or None for types stored packed (as uint8)."""
    return _NUMPY.get(type_.name)


def from_numpy(np_dtype: np.dtype) -> Optional[DataType]:
    """The nibble type of a numpy dtype, or None."""
    for name, candidate in _NUMPY.items():
        if candidate == np_dtype:
            return dtype(name)
    return None


def accepted_numpy_dtypes(type_: DataType) -> list[np.dtype]:
    """The numpy dtypes an array may have to pass as a pointer to `type_` elements: the exact
    one, and uint8 for packed and byte-sized float types (raw bytes)."""
    exact = to_numpy(type_)
    if exact is None:
        return [np.dtype(np.uint8)]
    if type_.bits == 8 and type_.is_float:
        return [exact, np.dtype(np.uint8)]
    return [exact]


def _codes(values, type_: DataType) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "iub" and type_.is_integer:
        codes = values.astype(np.int64) & ((1 << type_.bits) - 1)
        lo, hi = type_.lowest_finite, type_.largest_finite
        bad = (values < lo) | (values > hi)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"pack: value {values[index]} at {index} does not fit in "
                             f"{type_.name} [{int(lo)}, {int(hi)}]")
        return codes.astype(np.uint64)
    return type_.encode(values.astype(np.float64))


def pack(values, type_: Union[str, DataType]) -> np.ndarray:
    """Numbers (any shape, row-major) as the packed bit stream of `type_` elements: a 1-D uint8
    array of ceil(n * bits / 8) bytes. Floats round to nearest even and saturate as the VM's
    casts do; integers must fit the type (two's complement for signed ones)."""
    type_ = dtype(type_)
    codes = _codes(values, type_).reshape(-1)
    return type_.pack_codes(codes)


def unpack(data, type_: Union[str, DataType], shape: Union[int, Sequence[int]]) -> np.ndarray:
    """The numbers of a packed bit stream, as an array of `shape`: int64 for integer types,
    float64 (exact) for floats."""
    type_ = dtype(type_)
    codes = unpack_codes(data, type_, shape)
    if type_.is_integer:
        values = codes.astype(np.int64)
        if type_.is_signed:
            values = np.where(values >= (1 << (type_.bits - 1)), values - (1 << type_.bits), values)
        return values
    return type_.decode(codes)


def pack_codes(codes, type_: Union[str, DataType]) -> np.ndarray:
    """Bit patterns (each below 2**bits) as the packed bit stream: a 1-D uint8 array."""
    type_ = dtype(type_)
    return type_.pack_codes(np.asarray(codes, dtype=np.uint64).reshape(-1))


def unpack_codes(data, type_: Union[str, DataType], shape: Union[int, Sequence[int]]) -> np.ndarray:
    """The bit patterns of a packed bit stream, as a uint64 array of `shape`."""
    type_ = dtype(type_)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    data = np.ascontiguousarray(np.asarray(data)).view(np.uint8).reshape(-1)
    return type_.unpack_codes(data, math.prod(shape)).reshape(shape)
