"""GPU arrays from other libraries, as kernel arguments.

A pointer argument of a GPU launch may be any of, tried in this order:

1. a torch tensor (`data_ptr()`, `is_cuda`): launched on torch's current stream of its device;
2. an object with `__cuda_array_interface__` (CuPy, Numba, JAX, …; versions 0–3): its
   `typestr`, `shape`, `strides` (bytes; None = C-contiguous), `data` (address, read-only flag),
   `mask` (must be None) and `stream` (v3: the launch goes on that stream);
3. an object with `__dlpack__` and `__dlpack_device__` (the array API standard): the device must
   be CUDA (kDLCUDA, or kDLCUDAManaged) and GPU 0; the tensor is exported with
   `__dlpack__(stream=S)` where S is the launch stream (1, the legacy default stream, when the
   launch goes on stream 0), so that the producer orders its work before the kernel. The
   capsule (a `dltensor` or `dltensor_versioned` PyCapsule holding a DLManagedTensor) is read
   with ctypes and kept alive until the launch has been issued; it is not consumed, so the
   producer's capsule destructor releases it.

`describe(...)` turns each into a `DeviceArray` (address, element type, contiguity, read-only,
stream) or raises a TypeError/ValueError naming the parameter; jit.py then checks it against the
parameter (element type, contiguity, alignment, writes) before anything runs.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

# Element types of torch tensors, of __cuda_array_interface__ typestrs (without the byte-order
# character) and of DLPack (type code, bits), as nibble's dtype names.
TORCH_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
                "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
                "uint16": "u16", "uint32": "u32", "float8_e4m3fn": "f8e4m3",
                "float8_e5m2": "f8e5m2"}
TYPESTRS = {"f2": "f16", "f4": "f32", "f8": "f64", "i1": "i8", "i2": "i16", "i4": "i32",
            "i8": "i64", "u1": "u8", "u2": "u16", "u4": "u32"}
DLPACK_DTYPES = {(0, 8): "i8", (0, 16): "i16", (0, 32): "i32", (0, 64): "i64", (1, 8): "u8",
                 (1, 16): "u16", (1, 32): "u32", (2, 16): "f16", (2, 32): "f32", (2, 64): "f64",
                 (4, 16): "bf16", (10, 8): "f8e4m3", (12, 8): "f8e5m2"}
_DLPACK_CODE_NAMES = {0: "int", 1: "uint", 2: "float", 3: "opaque handle", 4: "bfloat",
                      5: "complex", 6: "bool"}

# DLPack device types (dlpack.h DLDeviceType).
KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13
_DLPACK_DEVICE_NAMES = {1: "the CPU (kDLCPU)", 2: "CUDA (kDLCUDA)",
                        3: "pinned host memory (kDLCUDAHost)", 4: "OpenCL", 7: "Vulkan",
                        8: "Metal", 10: "ROCm (kDLROCM)", 11: "ROCm host memory",
                        13: "CUDA managed memory (kDLCUDAManaged)", 14: "oneAPI"}
# DLManagedTensorVersioned.flags: the producer forbids writes.
DLPACK_FLAG_READ_ONLY = 1


@dataclass
class DeviceArray:
    """What a launch needs to know of a GPU array argument."""

    source: str  # "torch tensor", "__cuda_array_interface__" or "DLPack"
    dtype: Optional[str]  # nibble's name of the element type; None when nibble has none
    dtype_text: str  # the producer's name of it, for messages
    address: int
    contiguous: bool
    readonly: bool = False
    stream: Optional[int] = None  # the producer's stream, when it names one
    keep_alive: Any = field(default=None, repr=False)  # a DLPack capsule, until the launch


def has_device_protocol(value) -> bool:
    """Whether `value` offers one of the ways above to reach GPU memory."""
    return ((hasattr(value, "data_ptr") and hasattr(value, "is_cuda"))
            or hasattr(value, "__cuda_array_interface__") or hasattr(value, "__dlpack__"))


def is_torch_tensor(value) -> bool:
    return hasattr(value, "data_ptr") and hasattr(value, "is_cuda") and hasattr(value, "device")


def producer_stream(value) -> Optional[int]:
    """The stream an argument asks the launch to go on: torch's current stream for a CUDA
    tensor, the `stream` of a __cuda_array_interface__ (v3), else None."""
    if is_torch_tensor(value):
        if not value.is_cuda:
            return None
        import torch  # present: the argument is one of its tensors

        return torch.cuda.current_stream(value.device).cuda_stream
    if hasattr(value, "__cuda_array_interface__"):
        try:
            stream = value.__cuda_array_interface__.get("stream")
        except Exception:  # reported by describe()
            return None
        return stream if isinstance(stream, int) and not isinstance(stream, bool) else None
    return None


def describe(where: str, value, launch_stream: int) -> DeviceArray:
    """The DeviceArray of a pointer argument; `where` ("kernel(): parameter 'x' (a pointer to
    f16)") starts every message. `launch_stream` is the CUstream the launch will use (0 for the
    legacy default stream), passed to `__dlpack__` so that the producer synchronizes with it.
    Raises TypeError for objects that are not GPU arrays and ValueError for GPU arrays that
    cannot be used (another device, a mask, a foreign byte order, …)."""
    if isinstance(value, np.ndarray):
        raise TypeError(f"{where}: numpy arrays run on the interpreter (nibble.interpret(kernel) "
                        "or NIBBLE_INTERPRET=1); on the GPU pass CUDA tensors")
    if is_torch_tensor(value):
        return _describe_torch(where, value)
    if hasattr(value, "__cuda_array_interface__"):
        return _describe_cuda_array_interface(where, value)
    if hasattr(value, "__dlpack__"):
        return _describe_dlpack(where, value, launch_stream)
    raise TypeError(f"{where} takes a CUDA array (a torch tensor, or an object with "
                    f"__cuda_array_interface__ or __dlpack__), not {type(value).__name__}")


def _describe_torch(where: str, value) -> DeviceArray:
    if not value.is_cuda:
        raise ValueError(f"{where}: the tensor is on {value.device}, not on the GPU")
    index = getattr(value.device, "index", None)
    if index not in (None, 0):
        raise ValueError(f"{where}: the tensor is on {value.device}; nibble launches on GPU 0 "
                         "(choose the GPU with CUDA_VISIBLE_DEVICES)")
    text = str(value.dtype).replace("torch.", "")
    return DeviceArray("torch tensor", TORCH_DTYPES.get(text), text, value.data_ptr(),
                       value.is_contiguous(), stream=producer_stream(value))


def _contiguous(shape, strides, item_size: int) -> bool:
    """Whether `strides` (in bytes) are those of a row-major array of `shape`; dimensions of
    extent 1 may have any stride, and an empty array is contiguous."""
    if any(extent == 0 for extent in shape):
        return True
    expected = item_size
    for extent, stride in zip(reversed(shape), reversed(strides)):
        if extent != 1 and stride != expected:
            return False
        expected *= extent
    return True


def _describe_cuda_array_interface(where: str, value) -> DeviceArray:
    try:
        interface = value.__cuda_array_interface__
    except Exception as error:
        raise TypeError(f"{where}: reading its __cuda_array_interface__ failed: "
                        f"{type(error).__name__}: {error}") from None
    if not isinstance(interface, dict):
        raise TypeError(f"{where}: __cuda_array_interface__ is a dict, not "
                        f"{type(interface).__name__}")
    missing = [key for key in ("shape", "typestr", "data") if key not in interface]
    if missing:
        raise TypeError(f"{where}: __cuda_array_interface__ lacks {', '.join(missing)}")
    typestr, shape = interface["typestr"], tuple(interface["shape"])
    if not isinstance(typestr, str) or len(typestr) < 3:
        raise TypeError(f"{where}: __cuda_array_interface__ typestr {typestr!r} is not a numpy "
                        "type string such as '<f2'")
    if typestr[0] == ">" and typestr[1:] not in ("i1", "u1"):
        raise ValueError(f"{where}: the array is big-endian ({typestr}); nibble kernels read "
                         "little-endian memory")
    if interface.get("mask") is not None:
        raise ValueError(f"{where}: masked arrays (__cuda_array_interface__ 'mask') are not "
                         "supported")
    data = interface["data"]
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{where}: __cuda_array_interface__ 'data' is (address, read-only), "
                        f"not {data!r}")
    address, readonly = int(data[0] or 0), bool(data[1])
    item_size = int(typestr[2:]) if typestr[2:].isdigit() else 1
    strides = interface.get("strides")
    contiguous = strides is None or _contiguous(shape, tuple(strides), item_size)
    stream = interface.get("stream")
    if isinstance(stream, bool) or (stream is not None and not isinstance(stream, int)):
        raise TypeError(f"{where}: __cuda_array_interface__ 'stream' is an int or None, not "
                        f"{stream!r}")
    if stream == 0:
        raise ValueError(f"{where}: __cuda_array_interface__ 'stream' is 0, which the protocol "
                         "forbids (1 is the legacy default stream)")
    return DeviceArray("__cuda_array_interface__", TYPESTRS.get(typestr[1:]), typestr[1:],
                       address, contiguous, readonly, stream)


# ---- DLPack ------------------------------------------------------------------------------------


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


class _DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", _DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64),
                ("dl_tensor", _DLTensor)]


_capsule_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid.restype = ctypes.c_int
_capsule_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def dlpack_device_name(device_type: int) -> str:
    return _DLPACK_DEVICE_NAMES.get(device_type, f"DLPack device type {device_type}")


def dlpack_dtype_text(code: int, bits: int, lanes: int) -> str:
    text = f"{_DLPACK_CODE_NAMES.get(code, f'type code {code}')} {bits} bits"
    return text + (f" x {lanes} lanes" if lanes != 1 else "")


@dataclass
class DLPackTensor:
    """The fields of a DLPack capsule's DLTensor that a launch uses."""

    address: int  # data + byte_offset
    device_type: int
    device_id: int
    code: int
    bits: int
    lanes: int
    shape: tuple
    strides: Optional[tuple]  # in elements; None = row-major contiguous
    readonly: bool

    @property
    def dtype(self) -> Optional[str]:
        return DLPACK_DTYPES.get((self.code, self.bits)) if self.lanes == 1 else None

    @property
    def contiguous(self) -> bool:
        if self.strides is None:
            return True
        return _contiguous(self.shape, self.strides, 1)


def read_dlpack_capsule(capsule) -> DLPackTensor:
    """The DLTensor inside a `dltensor` or `dltensor_versioned` capsule (not consumed).
    Raises TypeError for anything else, a capsule already consumed included."""
    if _capsule_is_valid(capsule, b"dltensor"):
        managed = _DLManagedTensor.from_address(_capsule_pointer(capsule, b"dltensor"))
        tensor, readonly = managed.dl_tensor, False
    elif _capsule_is_valid(capsule, b"dltensor_versioned"):
        managed = _DLManagedTensorVersioned.from_address(
            _capsule_pointer(capsule, b"dltensor_versioned"))
        if managed.version.major != 1:
            raise TypeError(f"a DLPack {managed.version.major}.{managed.version.minor} tensor; "
                            "nibble reads DLPack 1.x")
        tensor, readonly = managed.dl_tensor, bool(managed.flags & DLPACK_FLAG_READ_ONLY)
    else:
        raise TypeError(f"__dlpack__ returned {type(capsule).__name__}, not an unused DLPack "
                        "capsule ('dltensor' or 'dltensor_versioned')")
    ndim = tensor.ndim
    shape = tuple(tensor.shape[i] for i in range(ndim)) if ndim else ()
    strides = tuple(tensor.strides[i] for i in range(ndim)) if ndim and tensor.strides else None
    return DLPackTensor((tensor.data or 0) + tensor.byte_offset, tensor.device.device_type,
                        tensor.device.device_id, tensor.dtype.code, tensor.dtype.bits,
                        tensor.dtype.lanes, shape, strides, readonly)


def _describe_dlpack(where: str, value, launch_stream: int) -> DeviceArray:
    if not hasattr(value, "__dlpack_device__"):
        raise TypeError(f"{where}: the object has __dlpack__ but no __dlpack_device__, which the "
                        "DLPack protocol requires")
    try:
        device_type, device_id = (int(v) for v in value.__dlpack_device__())
    except Exception as error:
        raise TypeError(f"{where}: __dlpack_device__() did not give (device type, device id): "
                        f"{type(error).__name__}: {error}") from None
    _check_dlpack_device(where, device_type, device_id)
    # The DLPack convention for CUDA streams: 1 is the legacy default stream (the driver's
    # stream 0); 0 is not allowed.
    stream = launch_stream if launch_stream else 1
    try:
        try:
            capsule = value.__dlpack__(stream=stream, max_version=(1, 0))
        except TypeError:  # a producer older than DLPack 1.0 takes no max_version
            capsule = value.__dlpack__(stream=stream)
    except Exception as error:
        raise ValueError(f"{where}: exporting it with __dlpack__(stream={stream}) failed: "
                         f"{type(error).__name__}: {error}") from None
    try:
        tensor = read_dlpack_capsule(capsule)
    except TypeError as error:
        raise TypeError(f"{where}: {error}") from None
    _check_dlpack_device(where, tensor.device_type, tensor.device_id)
    return DeviceArray("DLPack", tensor.dtype,
                       dlpack_dtype_text(tensor.code, tensor.bits, tensor.lanes),
                       tensor.address, tensor.contiguous, tensor.readonly, keep_alive=capsule)


def _check_dlpack_device(where: str, device_type: int, device_id: int) -> None:
    if device_type not in (KDL_CUDA, KDL_CUDA_MANAGED):
        raise ValueError(f"{where}: the array is on {dlpack_device_name(device_type)}, not on a "
                         "CUDA GPU")
    if device_id != 0:
        raise ValueError(f"{where}: the array is on GPU {device_id}; nibble launches on GPU 0 "
                         "(choose the GPU with CUDA_VISIBLE_DEVICES)")
