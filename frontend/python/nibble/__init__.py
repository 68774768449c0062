"""nibble: a low-precision GPU virtual machine and kernel compiler, from Python.

    import nibble as nb
    from nibble import f32

    @nb.jit
    def vector_add(x: nb.ptr[f32], y: nb.ptr[f32], out: nb.ptr[f32], n: int,
                   block: nb.constexpr = 256):
        nb.launch(grid=nb.cdiv(n, block), warps=4)
        X, Y, Out = nb.view(x, [n]), nb.view(y, [n]), nb.view(out, [n])
        start = nb.block_id(0) * block
        nb.store(Out[start:start + block], nb.load(X[start:start + block]) +
                 nb.load(Y[start:start + block]))

    nb.interpret(vector_add)(x, y, out, n)   # numpy arrays, on the CPU interpreter
    print(vector_add.ir)                      # the VM program

The pieces: element types (nibble.dtypes), layouts (nibble.layout), the kernel syntax
(nibble.language, compiled by nibble.compiler), launching (nibble.jit; GPU arrays from torch,
__cuda_array_interface__ and DLPack: nibble.interop), tuning (nibble.autotuner) and SASS
(nibble.sass); the quantized GEMM (nibble.quantize → nibble.QuantizedWeight,
nibble.ops.quant_matmul, nibble.ops.QuantizedLinear with torch).
"""
from . import _core
from .autotuner import AutotuneError, Autotuner, Config, autotune
from .dtypes import (DataType, accepted_numpy_dtypes, bf16, dtype, f4e2m1, f6e2m3, f6e3m2, f8e4m3,
                     f8e5m2, f16, f32, f64, from_numpy, i1, i2, i3, i4, i5, i6, i7, i8, i16, i32,
                     i64, pack, pack_codes, to_numpy, u1, u2, u3, u4, u5, u6, u7, u8, u16, u32,
                     unpack, unpack_codes)
from .errors import CompileError, Diagnostic, InterpreterError
from .jit import InterpretedKernel, JITFunction, Specialization, interpret, jit
from .language import (abs, atomic_add, barrier, bitcast, block_id, broadcast, cast, cdiv,
                       cluster_barrier, commit, constexpr, copy_async, device_print, dot, empty,
                       exp, exp2, fetch_add, fma,
                       full, grid_dim, launch, load, log2, max, maximum, min, minimum,
                       multiple_of, permute, ptr, range, repeat, reshape, rsqrt, set_layout,
                       shared, shuffle, static_assert, static_range, store, sum, trans, view, wait,
                       where, zeros)
from .layout import Layout, Swizzle, atom_names, swizzle
from .quant import QuantGemmError, QuantizedWeight, QuantizeError, quantize
from . import ops  # noqa: E402  (after quant: ops imports it)
from .sass import MissingToolError

__version__ = "0.1.0"
