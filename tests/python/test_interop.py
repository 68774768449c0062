"""GPU arrays from other libraries (nibble.interop): DLPack and __cuda_array_interface__ objects
as launch arguments. Without a GPU, fake objects that implement the protocols exercise the
argument checks: a launch whose arguments all pass stops at "no GPU here"; one with a wrong
argument stops before, with an error naming the parameter. On a GPU (marker `gpu`) torch
tensors behind each protocol run the kernel."""
import ctypes

import numpy as np
import pytest

import nibble as nb
from nibble import f16, f32
from nibble import interop

_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_DLTENSOR, _DLTENSOR_VERSIONED = b"dltensor", b"dltensor_versioned"
ADDRESS = 0x7F0000000000  # a plausible device address, 256-byte aligned


class FakeDLPack:
    """An array on a (fake) CUDA device behind the DLPack protocol. Its memory is never touched:
    the launch stops before the GPU. `calls` records the keyword arguments of __dlpack__."""

    def __init__(self, shape=(256,), code=2, bits=32, device=(2, 0), strides=None,
                 address=ADDRESS, versioned=True, readonly=False, accepts_max_version=True):
        self.shape, self.code, self.bits, self.device = shape, code, bits, device
        self.strides, self.address, self.versioned = strides, address, versioned
        self.readonly, self.accepts_max_version = readonly, accepts_max_version
        self.calls = []
        self._alive = []

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, max_version=None, **unknown):
        if max_version is not None and not self.accepts_max_version:
            raise TypeError("__dlpack__() got an unexpected keyword argument 'max_version'")
        self.calls.append({"stream": stream, "max_version": max_version})
        ndim = len(self.shape)
        shape = (ctypes.c_int64 * ndim)(*self.shape)
        strides = (ctypes.c_int64 * ndim)(*self.strides) if self.strides else None
        tensor = interop._DLTensor(
            data=self.address, device=interop._DLDevice(*self.device), ndim=ndim,
            dtype=interop._DLDataType(self.code, self.bits, 1), shape=shape,
            strides=strides, byte_offset=0)
        if self.versioned and max_version is not None:
            managed = interop._DLManagedTensorVersioned(
                version=interop._DLPackVersion(1, 0), manager_ctx=None, deleter=None,
                flags=interop.DLPACK_FLAG_READ_ONLY if self.readonly else 0, dl_tensor=tensor)
            name = _DLTENSOR_VERSIONED
        else:
            managed = interop._DLManagedTensor(dl_tensor=tensor, manager_ctx=None, deleter=None)
            name = _DLTENSOR
        self._alive += [shape, strides, managed]
        return _PyCapsule_New(ctypes.addressof(managed), name, None)


class FakeCudaArray:
    """An array on a (fake) GPU behind __cuda_array_interface__ (version 3)."""

    def __init__(self, shape=(256,), typestr="<f4", strides=None, address=ADDRESS,
                 readonly=False, stream=None, **extra):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr,
                                         "data": (address, readonly), "strides": strides,
                                         "version": 3, "stream": stream, **extra}


@nb.jit
def copy(x: nb.ptr[f32], y: nb.ptr[f32], n: int, block: nb.constexpr = 64):
    nb.launch(grid=nb.cdiv(n, block))
    X, Y = nb.view(x, [n]), nb.view(y, [n])
    start = nb.block_id(0) * block
    nb.store(Y[start:start + block], nb.load(X[start:start + block]))


@nb.jit
def copy_any(x: nb.ptr, y: nb.ptr, n: int):
    nb.launch(grid=1)
    nb.store(nb.view(y, [n])[0:64], nb.load(nb.view(x, [n])[0:64]))


@pytest.fixture(autouse=True)
def gpu_path(monkeypatch, request):
    monkeypatch.delenv("NIBBLE_INTERPRET", raising=False)
    if "gpu" not in request.keywords and nb._core.gpu_available():
        pytest.skip("this test stops at 'no GPU here'; the `gpu` tests cover a GPU")


def passes_checks(kernel, *args):
    """Launches and expects the arguments to pass: the only error left is the missing GPU."""
    with pytest.raises(RuntimeError, match="no GPU here"):
        kernel(*args)


# ---- DLPack ------------------------------------------------------------------------------------


def test_dlpack_arrays_pass_the_checks_and_are_exported_for_the_launch_stream():
    x, y = FakeDLPack(), FakeDLPack()
    passes_checks(copy, x, y, 256)
    # Stream 1 is DLPack's name for the legacy default stream the launch uses.
    assert x.calls == [{"stream": 1, "max_version": (1, 0)}]
    assert y.calls == [{"stream": 1, "max_version": (1, 0)}]


def test_dlpack_producers_without_max_version_are_asked_again():
    x = FakeDLPack(accepts_max_version=False)
    passes_checks(copy, x, FakeDLPack(), 256)
    assert x.calls == [{"stream": 1, "max_version": None}]


def test_dlpack_export_follows_the_stream_another_argument_names():
    x = FakeDLPack()
    passes_checks(copy, FakeCudaArray(stream=7), x, 256)
    assert x.calls == [{"stream": 7, "max_version": (1, 0)}]


def test_untyped_pointers_take_the_dlpack_dtype():
    passes_checks(copy_any, FakeDLPack(code=2, bits=16), FakeDLPack(code=2, bits=16), 64)
    assert "ptr<f16>" in copy_any.ir
    passes_checks(copy_any, FakeDLPack(code=4, bits=16), FakeDLPack(code=4, bits=16), 64)
    assert "ptr<bf16>" in copy_any.ir


def test_dlpack_arrays_off_the_gpu_are_refused():
    with pytest.raises(ValueError, match=r"parameter 'x' .* on the CPU \(kDLCPU\), not on a CUDA"):
        copy(FakeDLPack(device=(1, 0)), FakeDLPack(), 256)
    with pytest.raises(ValueError, match=r"parameter 'y' .* pinned host memory"):
        copy(FakeDLPack(), FakeDLPack(device=(3, 0)), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* on GPU 1; nibble launches on GPU 0"):
        copy(FakeDLPack(device=(2, 1)), FakeDLPack(), 256)


def test_a_real_cpu_dlpack_producer_is_refused():
    class Wrapped:  # numpy's own DLPack export, seen through the protocol only
        def __init__(self, array):
            self.array = array

        def __dlpack__(self, **kwargs):
            return self.array.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.array.__dlpack_device__()

    with pytest.raises(ValueError, match=r"parameter 'x' .* on the CPU"):
        copy(Wrapped(np.zeros(256, np.float32)), FakeDLPack(), 256)


def test_dlpack_managed_memory_is_accepted():
    passes_checks(copy, FakeDLPack(device=(13, 0)), FakeDLPack(), 256)


def test_dlpack_dtype_mismatches_name_both_types():
    with pytest.raises(TypeError, match=r"parameter 'x' \(a pointer to f32\): expected f32 "
                                        r"elements, got f16 \(a DLPack\)"):
        copy(FakeDLPack(bits=16), FakeDLPack(), 256)
    with pytest.raises(TypeError, match=r"parameter 'y' .* got complex 64 bits, which nibble "
                                        "does not know"):
        copy(FakeDLPack(), FakeDLPack(code=5, bits=64), 256)
    with pytest.raises(TypeError, match=r"parameter 'x' \(nb.ptr\) takes an array whose dtype "
                                        "nibble knows, not bool 8 bits"):
        copy_any(FakeDLPack(code=6, bits=8), FakeDLPack(), 64)


def test_dlpack_strides_must_be_row_major():
    square = dict(shape=(16, 16))
    passes_checks(copy, FakeDLPack(strides=(16, 1), **square), FakeDLPack(), 256)
    passes_checks(copy, FakeDLPack(shape=(1, 256), strides=(999, 1)), FakeDLPack(), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* the DLPack is not contiguous"):
        copy(FakeDLPack(strides=(1, 16), **square), FakeDLPack(), 256)
    with pytest.raises(ValueError, match=r"parameter 'y' .* not contiguous"):
        copy(FakeDLPack(), FakeDLPack(shape=(128,), strides=(2,)), 256)


def test_dlpack_alignment_and_read_only_arrays():
    with pytest.raises(ValueError, match=r"parameter 'x' .* not a multiple of 16 bytes"):
        copy(FakeDLPack(address=ADDRESS + 4), FakeDLPack(), 256)
    passes_checks(copy, FakeDLPack(readonly=True), FakeDLPack(), 256)  # x is only read
    with pytest.raises(ValueError, match=r"parameter 'y' .* the kernel writes it, but the "
                                         "DLPack is read-only"):
        copy(FakeDLPack(), FakeDLPack(readonly=True), 256)


def test_broken_dlpack_objects():
    class NoDevice:
        def __dlpack__(self, **kwargs):
            raise AssertionError("not reached")

    with pytest.raises(TypeError, match=r"parameter 'x' .* has __dlpack__ but no "
                                        "__dlpack_device__"):
        copy(NoDevice(), FakeDLPack(), 256)

    class Failing(FakeDLPack):
        def __dlpack__(self, **kwargs):
            raise BufferError("the array is busy")

    with pytest.raises(ValueError, match=r"parameter 'x' .* exporting it with "
                                         r"__dlpack__\(stream=1\) failed: BufferError: the array"):
        copy(Failing(), FakeDLPack(), 256)

    class NotACapsule(FakeDLPack):
        def __dlpack__(self, **kwargs):
            return "capsule"

    with pytest.raises(TypeError, match=r"parameter 'x' .* __dlpack__ returned str, not an "
                                        "unused DLPack capsule"):
        copy(NotACapsule(), FakeDLPack(), 256)

    class BadDevice(FakeDLPack):
        def __dlpack_device__(self):
            return "cuda"

    with pytest.raises(TypeError, match=r"parameter 'x' .* __dlpack_device__\(\) did not give"):
        copy(BadDevice(), FakeDLPack(), 256)


def test_reading_numpys_dlpack_capsules():
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    tensor = interop.read_dlpack_capsule(array.__dlpack__())
    assert tensor.address == array.ctypes.data
    assert (tensor.device_type, tensor.device_id) == (interop.KDL_CPU, 0)
    assert tensor.dtype == "f16" and tensor.shape == (3, 4) and tensor.contiguous
    transposed = interop.read_dlpack_capsule(array.T.__dlpack__())
    assert transposed.shape == (4, 3) and transposed.strides == (1, 4)
    assert not transposed.contiguous
    offset = interop.read_dlpack_capsule(array[1:].__dlpack__())
    assert offset.address == array.ctypes.data + 8
    frozen = np.zeros(8, np.int32)
    frozen.setflags(write=False)
    versioned = interop.read_dlpack_capsule(frozen.__dlpack__(max_version=(1, 0)))
    assert versioned.readonly and versioned.dtype == "i32"


def test_a_consumed_capsule_is_refused():
    capsule = np.zeros(4, np.float32).__dlpack__()
    np.from_dlpack(type("Holder", (), {"__dlpack__": lambda self, **k: capsule,
                                       "__dlpack_device__": lambda self: (1, 0)})())
    with pytest.raises(TypeError, match="not an unused DLPack capsule"):
        interop.read_dlpack_capsule(capsule)


# ---- __cuda_array_interface__ -----------------------------------------------------------------


def test_cuda_array_interface_objects_pass_the_checks():
    passes_checks(copy, FakeCudaArray(), FakeCudaArray(strides=(4,)), 256)
    passes_checks(copy, FakeCudaArray(shape=(16, 16), strides=(64, 4)), FakeCudaArray(), 256)


def test_cuda_array_interface_mistakes():
    with pytest.raises(TypeError, match=r"parameter 'x' .* expected f32 elements, got f16 \(a "
                                        r"__cuda_array_interface__\)"):
        copy(FakeCudaArray(typestr="<f2"), FakeCudaArray(), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* __cuda_array_interface__ is not "
                                         "contiguous"):
        copy(FakeCudaArray(shape=(16, 16), strides=(4, 64)), FakeCudaArray(), 256)
    with pytest.raises(ValueError, match=r"parameter 'y' .* the kernel writes it, but the "
                                         "__cuda_array_interface__ is read-only"):
        copy(FakeCudaArray(), FakeCudaArray(readonly=True), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* masked arrays"):
        copy(FakeCudaArray(mask=FakeCudaArray()), FakeCudaArray(), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* big-endian"):
        copy(FakeCudaArray(typestr=">f4"), FakeCudaArray(), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* 'stream' is 0, which the protocol "
                                         "forbids"):
        copy(FakeCudaArray(stream=0), FakeCudaArray(), 256)
    with pytest.raises(ValueError, match=r"parameter 'x' .* not a multiple of 16 bytes"):
        copy(FakeCudaArray(address=ADDRESS + 8), FakeCudaArray(), 256)

    class Missing:
        __cuda_array_interface__ = {"shape": (4,), "version": 3}

    with pytest.raises(TypeError, match=r"parameter 'x' .* __cuda_array_interface__ lacks "
                                        "typestr, data"):
        copy(Missing(), FakeCudaArray(), 256)


def test_objects_that_are_no_gpu_arrays():
    with pytest.raises(TypeError, match=r"parameter 'x' \(a pointer to f32\) takes a CUDA array "
                                        r"\(a torch tensor, or an object with "
                                        r"__cuda_array_interface__ or __dlpack__\), not list"):
        copy([1.0] * 256, FakeCudaArray(), 256)
    with pytest.raises(TypeError, match=r"parameter 'y' .* numpy arrays run on the interpreter"):
        copy(FakeCudaArray(), np.zeros(256, np.float32), 256)


def test_scalars_are_still_checked_after_gpu_arrays():
    with pytest.raises(TypeError, match=r"parameter 'n' is i32: expected an int, got str"):
        copy(FakeDLPack(), FakeDLPack(), "256")


# ---- on a GPU ----------------------------------------------------------------------------------


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    return torch


class DLPackOnly:
    """A torch tensor seen only through DLPack."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, **kwargs):
        return self.tensor.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


class InterfaceOnly:
    """A torch tensor seen only through __cuda_array_interface__."""

    def __init__(self, tensor):
        self.__cuda_array_interface__ = tensor.__cuda_array_interface__


@pytest.mark.gpu
@pytest.mark.parametrize("wrap", [DLPackOnly, InterfaceOnly])
def test_protocol_arrays_run_on_the_gpu(torch, wrap):
    x = torch.randn(256, device="cuda")
    y = torch.full((256,), float("nan"), device="cuda")
    copy(wrap(x), wrap(y), 256)
    torch.cuda.synchronize()
    assert torch.equal(x, y)


@pytest.mark.gpu
def test_dlpack_half_tensors_specialize_untyped_pointers_on_the_gpu(torch):
    x = torch.randn(64, device="cuda", dtype=torch.float16)
    y = torch.zeros(64, device="cuda", dtype=torch.float16)
    copy_any(DLPackOnly(x), DLPackOnly(y), 64)
    torch.cuda.synchronize()
    assert torch.equal(x, y) and "ptr<f16>" in copy_any.ir
