"""The names a kernel uses: parameter annotations and the built-in functions of the script
syntax.

Outside a kernel the built-ins do nothing but explain themselves: `@nibble.jit` reads the
kernel's syntax tree and turns each call into VM statements (compiler.py, one method per
built-in, `_builtin_<name>`). Each function here carries the built-in's name and its
documentation, and raises when called outside a kernel.
"""
from __future__ import annotations

from typing import Optional

from .dtypes import DataType


class PointerType:
    """`nb.ptr[f16]`: a pointer to f16 elements, whose base address is a multiple of
    `align` bytes (16 unless given: `nb.ptr[f16, 8]`). Plain `nb.ptr` takes the element type
    from the argument at launch (the kernel is specialized on it)."""

    def __init__(self, element: Optional[DataType], align: int = 16):
        self.element = element
        self.align = align

    def __class_getitem__(cls, item) -> "PointerType":
        element, align = (item if isinstance(item, tuple) else (item, 16))
        if not isinstance(element, DataType):
            raise TypeError(f"nb.ptr[...] takes an element type such as nb.f16, not {element!r}")
        return cls(element, align)

    def __repr__(self) -> str:
        element = self.element.name if self.element is not None else "?"
        return f"nb.ptr[{element}, {self.align}]"


ptr = PointerType


class constexpr:  # noqa: N801 (an annotation, spelled as Triton spells it)
    """`bn: nb.constexpr = 64`: a compile-time parameter. Its value specializes the kernel:
    shapes, Python `range` loops and `if`s over it are resolved while compiling, and each new
    value compiles a new program (cached)."""


def _builtin(name: str):
    def wrap(function):
        def outside_kernel(*args, **kwargs):
            raise RuntimeError(f"nibble.{name}() is only meaningful inside a @nibble.jit kernel")

        outside_kernel.__name__ = name
        outside_kernel.__qualname__ = name
        outside_kernel.__doc__ = function.__doc__
        outside_kernel.__nibble_builtin__ = name
        return outside_kernel

    return wrap


@_builtin("launch")
def launch(grid=None, warps=4, shared_memory=0, cluster=None):
    """The grid (1 to 3 dimensions of blocks; expressions of the parameters) and the warps of
    a block; `shared_memory` sets the shared-memory budget in bytes (0: the sum of the tiles);
    `cluster` (sm_90) groups the blocks, 1 to 3 extents dividing the grid's, at most 16 blocks:
    a cluster's blocks run at once, meet at nb.cluster_barrier() and read each other's shared
    tiles (nb.load(tile[...], block=rank)). Written once, at the top level of the kernel."""


@_builtin("block_id")
def block_id(axis):
    """The index of this block along grid axis 0, 1 or 2."""


@_builtin("grid_dim")
def grid_dim(axis):
    """The number of blocks along grid axis 0, 1 or 2."""


@_builtin("cdiv")
def cdiv(a, b):
    """Ceiling division, (a + b - 1) // b."""


@_builtin("multiple_of")
def multiple_of(parameter, divisor):
    """States that an integer parameter is a multiple of `divisor` (a constant): the kernel
    may rely on it, and launches check it."""


@_builtin("static_assert")
def static_assert(condition, message=""):
    """Fails compilation unless the compile-time `condition` holds."""


@_builtin("view")
def view(pointer, shape, strides=None):
    """A global tensor over a pointer parameter: `shape` in elements, row-major unless
    `strides` are given."""


@_builtin("shared")
def shared(shape, dtype, swizzle=None, layout=None):
    """A tile in shared memory (row-major unless `layout` is given), optionally swizzled
    ("128B", "Sw<3,4,3>", …)."""


@_builtin("zeros")
def zeros(shape, dtype=None, layout=None):
    """A register tile of zeros (f32 unless `dtype` is given)."""


@_builtin("full")
def full(shape, value, dtype=None, layout=None):
    """A register tile filled with `value` (f32 unless `dtype` is given)."""


@_builtin("empty")
def empty(shape, dtype=None, layout=None):
    """An uninitialized register tile."""


@_builtin("load")
def load(tile, other=0.0, block=None):
    """Loads a box of a global or shared tensor into registers: `nb.load(A[m0:m0+bm, :])`.
    Global elements outside the tensor read `other`. The explicit form
    `nb.load(A, offsets=[m0, 0], shape=[bm, bk])` says the same. With `block`, the box of a
    shared tile is read from the cluster's block of that rank (x fastest), after a
    nb.cluster_barrier() that both passed."""


@_builtin("store")
def store(tile, value):
    """Stores a register tile into a box of a global or shared tensor:
    `nb.store(C[m0:m0+bm, n0:n0+bn], acc)`; global elements outside the tensor are skipped."""


@_builtin("copy_async")
def copy_async(destination, source, threads=None, in_bounds=()):
    """Copies a box of a global tensor into a shared tile asynchronously:
    `nb.copy_async(As[0:bm, :], A[m0:m0+bm, k0:k0+bk])`. Complete it with nb.commit(),
    nb.wait(n) and nb.barrier(). Elements outside the source are zero-filled; `in_bounds`
    lists dimensions along which the box is promised to lie inside the source (the
    interpreter checks the promise, the GPU code skips those bounds checks)."""


@_builtin("commit")
def commit():
    """Closes the current group of asynchronous copies."""


@_builtin("wait")
def wait(pending=0):
    """Waits until at most `pending` groups of copies are still in flight."""


@_builtin("barrier")
def barrier():
    """Every thread of the block arrives; shared-memory writes before it are visible after."""


@_builtin("cluster_barrier")
def cluster_barrier():
    """Every thread of every block of the cluster arrives; each block's shared-memory writes
    before it are visible to the others' nb.load(..., block=) after it. Every block passes each
    one, and a block whose tiles its peers read passes one more after their reads."""


@_builtin("atomic_add")
def atomic_add(tile, value):
    """Adds a register tile into a box of a global tensor, atomically."""


@_builtin("fetch_add")
def fetch_add(element, value=1):
    """Adds `value` once per block to one i32/u32 element of a global tensor, after every thread
    of the block arrived and its global stores were released, and returns the old value to every
    thread: the last of n blocks gets n - 1 and can read what the others stored."""


@_builtin("cast")
def cast(x, dtype):
    """Converts every element to `dtype` (round to nearest even, saturating)."""


@_builtin("bitcast")
def bitcast(x, dtype, shape):
    """The same bits per thread read as `dtype` elements of `shape`."""


@_builtin("repeat")
def repeat(x, count, axis):
    """Each element `count` times along `axis` (a group scale over its rows)."""


@_builtin("broadcast")
def broadcast(x, shape):
    """Extent-1 dimensions repeated to `shape`."""


@_builtin("permute")
def permute(x, dims):
    """Dimension d of the result is dimension dims[d] of x."""


@_builtin("trans")
def trans(x):
    """The transpose of a 2-D tile."""


@_builtin("reshape")
def reshape(x, shape):
    """The same elements in row-major order, another shape."""


@_builtin("set_layout")
def set_layout(x, layout):
    """Gives a register tile a layout (text or nibble.Layout)."""


@_builtin("dot")
def dot(a, b, acc=None):
    """a · b accumulated in f32 (i32 for integers): `acc += nb.dot(a, b)` or
    `nb.dot(a, b, acc)` update `acc` in place; `c = nb.dot(a, b)` starts from zeros."""


@_builtin("sum")
def sum(x, axis):  # noqa: A001 (shadows the builtin on purpose: nb.sum)
    """The sum along `axis`, which stays with extent 1."""


@_builtin("max")
def max(x, axis):  # noqa: A001
    """The maximum along `axis`, which stays with extent 1."""


@_builtin("min")
def min(x, axis):  # noqa: A001
    """The minimum along `axis`, which stays with extent 1."""


@_builtin("maximum")
def maximum(a, b):
    """The larger of a and b, element by element."""


@_builtin("minimum")
def minimum(a, b):
    """The smaller of a and b, element by element."""


@_builtin("exp2")
def exp2(x):
    """2 ** x, element by element."""


@_builtin("exp")
def exp(x):
    """e ** x, element by element (as exp2(x * log2(e)))."""


@_builtin("log2")
def log2(x):
    """log2(x), element by element."""


@_builtin("rsqrt")
def rsqrt(x):
    """1 / sqrt(x), element by element."""


@_builtin("abs")
def abs(x):  # noqa: A001
    """|x|, element by element."""


@_builtin("fma")
def fma(a, b, c):
    """a * b + c, rounded once."""


@_builtin("where")
def where(condition, a, b):
    """a where the (u1) condition holds, else b."""


@_builtin("shuffle")
def shuffle(x, mode, lane):
    """Exchanges register values between the lanes of a warp: mode "xor", "up", "down" or
    "index"."""


@_builtin("range")
def range(start, stop=None, step=1, unroll=0):  # noqa: A001
    """A loop run on the device: `for k0 in nb.range(0, k, bk):`. `unroll`: 0 lets the compiler
    decide, 1 never unrolls, n unrolls by n."""


@_builtin("static_range")
def static_range(start, stop=None, step=1):
    """A loop unrolled while compiling; its bounds are compile-time constants."""


@_builtin("device_print")
def device_print(label, value=None):
    """Prints a tensor or a scalar (from the interpreter; thread 0 of each block on the GPU).
    Python's print() inside a kernel does the same."""
