"""`@nibble.jit`: kernels written in Python, compiled per specialization, launched on the
interpreter (numpy arrays) or on the GPU.

    @nb.jit
    def add(x: nb.ptr[f32], y: nb.ptr[f32], out: nb.ptr[f32], n: int, block: nb.constexpr = 256):
        ...

    nb.interpret(add)[nb.cdiv(n, 256)](x, y, out, n)   # numpy arrays, on the interpreter
    add[grid](x, y, out, n)                            # the same; NIBBLE_INTERPRET=1 or a GPU

A specialization is the kernel compiled for one value of each compile-time parameter (and one
element type of each untyped `nb.ptr`); it is built once and cached on the kernel object
(`kernel.build_count` counts builds). Arguments are checked before anything runs: a wrong count,
a wrong dtype, a non-contiguous or misaligned array, a read-only array the kernel writes, a
scalar out of range — each a TypeError or ValueError naming the parameter.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _core
from .compiler import KernelCompiler, KernelSource, is_constant
from .dtypes import DataType, accepted_numpy_dtypes, from_numpy
from .errors import InterpreterError, with_source_line
from .interop import TORCH_DTYPES, DeviceArray, describe, producer_stream
from .sass import disassemble

Grid = Union[None, int, tuple, Callable[[dict], Any]]


class Specialization:
    """The kernel compiled for one set of compile-time values: its verified program (`ir`, the
    VM text with the Python line of every statement) and the program after the VM's default
    passes (`lowered_ir`: simplified, dead code removed, layouts inferred), which is what runs."""

    def __init__(self, kernel: "JITFunction", constexprs: dict, pointer_dtypes: dict):
        self.kernel = kernel
        self.constexprs = dict(constexprs)
        self.pointer_dtypes = dict(pointer_dtypes)
        compiler = KernelCompiler(kernel.source, constexprs, pointer_dtypes)
        self.program: _core.Program = compiler.compile()
        self.has_grid = compiler.has_grid
        self.written_params = {self.program.params[i].name for i in compiler.stored_params}
        self._gpu_kernels: dict = {}

    @functools.cached_property
    def ir(self) -> str:
        return _core.print_program(self.program)

    @functools.cached_property
    def lowered(self) -> _core.Program:
        return _core.run_default_passes(self.program)

    @functools.cached_property
    def lowered_ir(self) -> str:
        return _core.print_program(self.lowered)

    # ---- the GPU ------------------------------------------------------------------------------

    @functools.cached_property
    def compiled(self) -> _core.CompiledKernel:
        """The program compiled for the GPU: the device's target when there is a GPU, else
        $NIBBLE_TARGET (default sm_90a)."""
        return _core.compile(self.program, _target())

    @property
    def llvm_ir(self) -> str:
        return self.compiled.llvm_ir

    @property
    def ptx(self) -> str:
        return self.compiled.ptx

    @property
    def report(self) -> str:
        """Registers, spills, shared memory, compile times and codegen's choices."""
        return self.compiled.report

    @functools.cached_property
    def sass(self) -> str:
        """The machine code: the cubin disassembled by nvdisasm (see nibble.sass); raises
        MissingToolError when nvdisasm or ptxas is not installed."""
        return disassemble(self.compiled.cubin, self.kernel.name)

    def gpu_kernel(self, grid: Optional[tuple]) -> "_core.GpuKernel":
        """The kernel loaded on the GPU; a grid given at launch makes a variant with that grid."""
        found = self._gpu_kernels.get(grid)
        if found is None:
            program = self.program
            if grid is not None:
                program = program.copy()
                program.grid = [_core.Expr.int_constant(g, _I32) for g in grid]
            found = self._gpu_kernels[grid] = _core.GpuKernel.build(program)
        return found

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in {**self.constexprs,
                                                      **self.pointer_dtypes}.items())
        return f"<nibble kernel {self.kernel.name}({values})>"


_I32 = DataType.parse("i32")


def _target() -> str:
    if _core.gpu_available():
        return _core.device_target()
    return os.environ.get("NIBBLE_TARGET", "sm_90a")


def _interpret_requested() -> bool:
    return os.environ.get("NIBBLE_INTERPRET", "") not in ("", "0")


class JITFunction:
    """A kernel: `kernel[grid](args…)` launches it, `kernel.ir` shows its VM program."""

    def __init__(self, function: Callable):
        self.function = function
        self.source = KernelSource(function)
        self.name = self.source.name
        self.signature = inspect.signature(function)
        self.params = self.source.params
        self.cache: dict[tuple, Specialization] = {}
        self.build_count = 0
        self._last: Optional[Specialization] = None
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<nibble.jit kernel {self.name}>"

    # ---- specialization ---------------------------------------------------------------------

    def _key(self, constexprs: dict, pointer_dtypes: dict) -> tuple:
        return (tuple((k, type(v).__name__, v) for k, v in constexprs.items()),
                tuple((k, v.name) for k, v in pointer_dtypes.items()))

    def _specialization(self, constexprs: dict, pointer_dtypes: dict) -> Specialization:
        key = self._key(constexprs, pointer_dtypes)
        found = self.cache.get(key)
        if found is None:
            found = Specialization(self, constexprs, pointer_dtypes)
            self.build_count += 1
            self.cache[key] = found
        self._last = found
        return found

    def specialize(self, **values) -> Specialization:
        """The specialization for compile-time values given by name (defaults for the rest),
        and element types for untyped pointers (`x=nb.f16`)."""
        constexprs, pointer_dtypes = {}, {}
        for spec in self.params:
            default = self.signature.parameters[spec.name].default
            if spec.kind == "constexpr":
                if spec.name in values:
                    constexprs[spec.name] = values.pop(spec.name)
                elif default is not inspect.Parameter.empty:
                    constexprs[spec.name] = default
                else:
                    raise TypeError(f"{self.name}: compile-time parameter '{spec.name}' has no "
                                    "value")
                _check_constexpr(self.name, spec.name, constexprs[spec.name])
            elif spec.kind == "pointer" and spec.dtype is None:
                if not isinstance(values.get(spec.name), DataType):
                    raise TypeError(f"{self.name}: untyped pointer '{spec.name}' needs its "
                                    f"element type ({spec.name}=nb.f16, …)")
                pointer_dtypes[spec.name] = values.pop(spec.name)
        if values:
            raise TypeError(f"{self.name}: {', '.join(values)} are not compile-time parameters "
                            "or untyped pointers")
        return self._specialization(constexprs, pointer_dtypes)

    def _current(self) -> Specialization:
        if self._last is None:
            self._last = self.specialize()
        return self._last

    @property
    def ir(self) -> str:
        """The VM text of the last specialization launched (or of the defaults)."""
        return self._current().ir

    @property
    def lowered_ir(self) -> str:
        return self._current().lowered_ir

    @property
    def program(self) -> _core.Program:
        return self._current().program

    @property
    def llvm_ir(self) -> str:
        return self._current().llvm_ir

    @property
    def ptx(self) -> str:
        return self._current().ptx

    @property
    def report(self) -> str:
        return self._current().report

    @property
    def sass(self) -> str:
        """The SASS of the last specialization launched (or of the defaults)."""
        return self._current().sass

    # ---- launch -----------------------------------------------------------------------------

    def __getitem__(self, grid: Grid) -> "Launcher":
        return Launcher(self, grid, interpret=False)

    def __call__(self, *args, **kwargs) -> None:
        Launcher(self, None, interpret=False)(*args, **kwargs)

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.name}(): {error}") from None
        bound.apply_defaults()
        return dict(bound.arguments)


def _check_constexpr(kernel: str, name: str, value) -> None:
    if not is_constant(value):
        raise TypeError(f"{kernel}(): compile-time parameter '{name}' takes a number, string, "
                        f"dtype or layout, not {type(value).__name__}")


class Launcher:
    """`kernel[grid]`: calling it checks the arguments and runs the kernel."""

    def __init__(self, kernel: JITFunction, grid: Grid, interpret: bool):
        self.kernel = kernel
        self.grid = grid
        self.interpret = interpret

    def __call__(self, *args, **kwargs) -> None:
        kernel = self.kernel
        arguments = kernel.bind(args, kwargs)
        on_interpreter = self.interpret or _interpret_requested()
        # GPU arrays are described (and DLPack ones exported) once, before anything compiles.
        devices = None if on_interpreter else _describe_device_arguments(kernel, arguments)
        constexprs, pointer_dtypes = {}, {}
        for spec in kernel.params:
            value = arguments[spec.name]
            if spec.kind == "constexpr":
                _check_constexpr(kernel.name, spec.name, value)
                constexprs[spec.name] = value
            elif spec.kind == "pointer" and spec.dtype is None:
                pointer_dtypes[spec.name] = _untyped_pointer_dtype(
                    kernel.name, spec.name, value, devices[spec.name] if devices else None)
        specialization = kernel._specialization(constexprs, pointer_dtypes)
        grid = _grid(kernel.name, self.grid, arguments, specialization)
        if on_interpreter:
            _run_on_interpreter(specialization, arguments, grid)
        else:
            _run_on_gpu(specialization, arguments, grid, devices)


def _untyped_pointer_dtype(kernel: str, name: str, value,
                           device: Optional[DeviceArray]) -> DataType:
    """The element type an untyped `nb.ptr` takes from its argument (a numpy array on the
    interpreter, a described GPU array otherwise)."""
    found, element = None, getattr(value, "dtype", None)
    if device is not None:
        found, element = device.dtype, device.dtype_text
    elif isinstance(element, np.dtype):
        found = from_numpy(element)
    if found is None:
        raise TypeError(f"{kernel}(): parameter '{name}' (nb.ptr) takes an array whose dtype "
                        f"nibble knows, not {element or type(value).__name__}")
    return found if isinstance(found, DataType) else DataType.parse(found)


def _grid(kernel: str, grid: Grid, arguments: dict, specialization: Specialization):
    """The grid as three ints, or None to let the program's nb.launch grid decide."""
    if callable(grid):
        grid = grid(arguments)
    if grid is None or grid is Ellipsis:
        if not specialization.has_grid:
            raise TypeError(f"{kernel} has no nb.launch(grid=…): launch it as "
                            f"{kernel}[grid](…)")
        return None
    dims = tuple(grid) if isinstance(grid, (tuple, list)) else (grid,)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1
                                          for d in dims):
        raise ValueError(f"{kernel}: the grid is 1 to 3 positive ints, not {grid!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


def _run_on_interpreter(specialization: Specialization, arguments: dict, grid) -> None:
    kernel = specialization.kernel
    values = []
    program = specialization.program
    by_name = {param.name: param for param in program.params}
    for spec in kernel.params:
        value = arguments[spec.name]
        if spec.kind == "constexpr":
            continue  # the program holds its value
        param = by_name[spec.name]
        if spec.kind == "pointer":
            values.append(_host_array(kernel.name, param, value,
                                      spec.name in specialization.written_params))
        else:
            values.append(_scalar(kernel.name, param, value))
    try:
        printed = _core.interpret(specialization.lowered, values, grid)
    except _core.InterpreterError as error:
        raise InterpreterError(with_source_line(str(error))) from None
    if printed:
        sys.stdout.write(printed)


def _host_array(kernel: str, param: _core.Parameter, value, written: bool) -> np.ndarray:
    name, element = param.name, param.dtype
    accepted = accepted_numpy_dtypes(element)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{kernel}(): parameter '{name}' (a pointer to {element.name}) takes a "
                        f"numpy array on the interpreter, not {type(value).__name__}")
    if value.dtype not in accepted:
        wanted = " or ".join(str(d) for d in accepted)
        packed = (f" ({element.name} elements packed with nibble.pack)"
                  if element.is_sub_byte or (element.bits < 8) else "")
        raise TypeError(f"{kernel}(): parameter '{name}' points to {element.name}: expected a "
                        f"{wanted} array{packed}, got {value.dtype}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{kernel}(): parameter '{name}': the array is not C-contiguous "
                         f"(strides {value.strides}); the kernel assumes row-major contiguous "
                         f"memory: pass np.ascontiguousarray({name})")
    if param.alignment_bytes and value.ctypes.data % param.alignment_bytes:
        raise ValueError(f"{kernel}(): parameter '{name}': the array's address is not a "
                         f"multiple of {param.alignment_bytes} bytes, which the kernel assumes")
    if written and not value.flags.writeable:
        raise ValueError(f"{kernel}(): parameter '{name}': the kernel writes it, but the array "
                         "is read-only")
    # Raw bytes: ml_dtypes' types do not export the buffer protocol.
    return value.reshape(-1).view(np.uint8)


def _scalar(kernel: str, param: _core.Parameter, value):
    name, type_ = param.name, param.dtype
    if type_.is_float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                         np.floating)):
            raise TypeError(f"{kernel}(): parameter '{name}' is {type_.name}: expected a number, "
                            f"got {type(value).__name__}")
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{kernel}(): parameter '{name}' is {type_.name}: expected an int, got "
                        f"{type(value).__name__}")
    value = int(value)
    if not type_.lowest_finite <= value <= type_.largest_finite:
        raise ValueError(f"{kernel}(): parameter '{name}' is {type_.name}: {value} is out of "
                         "range")
    if param.divisor > 1 and value % param.divisor:
        raise ValueError(f"{kernel}(): parameter '{name}' must be a multiple of {param.divisor} "
                         f"(nb.multiple_of), got {value}")
    return value


def _pointer_where(kernel: str, name: str, element: Optional[DataType]) -> str:
    pointee = f" (a pointer to {element.name})" if element is not None else ""
    return f"{kernel}(): parameter '{name}'{pointee}"


def _describe_device_arguments(kernel: JITFunction, arguments: dict) -> dict[str, DeviceArray]:
    """The GPU array behind each pointer argument (nibble.interop), keyed by parameter name.
    The launch goes on the first stream an argument names (torch's current stream, a
    __cuda_array_interface__ stream), else on stream 0; DLPack arrays are exported for it."""
    pointers = [spec for spec in kernel.params if spec.kind == "pointer"]
    stream = next((s for s in (producer_stream(arguments[spec.name]) for spec in pointers)
                   if s is not None), 0)
    return {spec.name: describe(_pointer_where(kernel.name, spec.name, spec.dtype),
                                arguments[spec.name], stream)
            for spec in pointers}


def _run_on_gpu(specialization: Specialization, arguments: dict, grid,
                devices: dict[str, DeviceArray]) -> None:
    """Checks every argument against its parameter, then launches: nothing runs unless all
    pass. `devices` (and the DLPack capsules it holds) lives until the launch is issued."""
    kernel = specialization.kernel
    by_name = {param.name: param for param in specialization.program.params}
    values, stream = [], None
    for spec in kernel.params:
        if spec.kind == "constexpr":
            continue
        value, param = arguments[spec.name], by_name[spec.name]
        if spec.kind == "pointer":
            device = devices[spec.name]
            _check_device_array(kernel.name, param, device,
                                spec.name in specialization.written_params)
            values.append(("ptr", device.address))
            stream = device.stream if stream is None else stream
        else:
            values.append(_scalar(kernel.name, param, value))
    if not _core.gpu_available():
        raise RuntimeError(f"{kernel.name}: no GPU here; run on the interpreter with "
                           "nibble.interpret(kernel)[grid](…) or NIBBLE_INTERPRET=1")
    specialization.gpu_kernel(grid).launch(values, _launch_stream(stream))


def _launch_stream(stream: Optional[int]) -> int:
    """The CUstream handle of a producer's stream: 0 (the legacy default stream) for None or 1;
    2 is CU_STREAM_PER_THREAD, which the driver takes as it is."""
    return 0 if stream in (None, 1) else stream


def _check_device_array(kernel: str, param: _core.Parameter, device: DeviceArray,
                        written: bool) -> None:
    """A GPU array against its parameter: element type (sub-byte and nibble-only types travel
    packed in uint8 arrays; 8-bit floats may come as uint8 bytes), contiguity, alignment and
    writes to read-only arrays; each failure a TypeError or ValueError naming the parameter."""
    element = param.dtype
    where = _pointer_where(kernel, param.name, element)
    packed = element.bits < 8 or element.name not in TORCH_DTYPES.values()
    raw_bytes = element.bits == 8 and element.is_float
    accepted = {"u8"} if packed else {element.name} | ({"u8"} if raw_bytes else set())
    if device.dtype not in accepted:
        got = device.dtype or f"{device.dtype_text}, which nibble does not know"
        raise TypeError(f"{where}: expected {' or '.join(sorted(accepted))} elements, got {got} "
                        f"(a {device.source})")
    if not device.contiguous:
        raise ValueError(f"{where}: the {device.source} is not contiguous; the kernel assumes "
                         "row-major contiguous memory (call .contiguous())")
    if param.alignment_bytes and device.address % param.alignment_bytes:
        raise ValueError(f"{where}: the address is not a multiple of {param.alignment_bytes} "
                         "bytes, which the kernel assumes")
    if written and device.readonly:
        raise ValueError(f"{where}: the kernel writes it, but the {device.source} is read-only")


class InterpretedKernel:
    """`nibble.interpret(kernel)`: the same kernel (and cache), always run on the interpreter."""

    def __init__(self, kernel: JITFunction):
        self.kernel = kernel

    def __getitem__(self, grid: Grid) -> Launcher:
        return Launcher(self.kernel, grid, interpret=True)

    def __call__(self, *args, **kwargs) -> None:
        Launcher(self.kernel, None, interpret=True)(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.kernel, name)


def jit(function: Optional[Callable] = None):
    """Makes a kernel of a function written in nibble's script syntax (see nibble.language)."""
    if function is None:
        return jit
    return JITFunction(function)


def interpret(kernel: JITFunction) -> InterpretedKernel:
    """The kernel (or @nibble.autotune kernel), run on the CPU interpreter with numpy arrays."""
    from .autotuner import Autotuner, InterpretedAutotuner

    if isinstance(kernel, (InterpretedKernel, InterpretedAutotuner)):
        return kernel
    if isinstance(kernel, Autotuner):
        return InterpretedAutotuner(kernel)
    if not isinstance(kernel, JITFunction):
        raise TypeError(f"nibble.interpret takes a @nibble.jit kernel, not {type(kernel).__name__}")
    return InterpretedKernel(kernel)
