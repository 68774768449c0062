"""Mistakes in kernels and in launches: each a clear Python error naming the place or the
parameter, never a C++ stack trace."""
import inspect
import re

import numpy as np
import pytest

import nibble as nb
from nibble import f16, f32

SOURCE = inspect.getsource(inspect.getmodule(inspect.currentframe())).splitlines()


def marked(marker: str, text: str) -> tuple[int, int]:
    """(line, column) of `text` on the line of this file that carries `# <marker>`."""
    for number, line in enumerate(SOURCE, 1):
        if line.rstrip().endswith(f"# {marker}"):
            return number, line.index(text) + 1
    raise AssertionError(f"no line marked {marker}")


def assert_points_at(error: nb.CompileError, marker: str, text: str, message: str) -> None:
    line, column = marked(marker, text)
    rendered = str(error)
    assert f"test_jit_errors.py:{line}:{column}: error: in kernel" in rendered, rendered
    assert re.search(message, rendered), rendered
    lines = rendered.splitlines()
    source_index = next(i for i, l in enumerate(lines) if l == SOURCE[line - 1])
    caret = lines[source_index + 1]
    assert caret.index("^") == column - 1, rendered
    assert error.lineno == line
    assert "Traceback" not in rendered and "nibble::" not in rendered


# ---- errors of the verifier, located at the Python expression --------------------------------


def test_verifier_message_names_the_python_line():
    @nb.jit
    def bad_dot(a: nb.ptr[f16], c: nb.ptr[f32]):
        nb.launch(grid=1)
        A, C = nb.view(a, [16, 16]), nb.view(c, [16, 16])
        x = nb.load(A[0:16, 0:16])
        y = nb.load(A[0:16, 0:8])
        acc = nb.zeros([16, 16])
        acc += nb.dot(x, y)  # bad-dot
        nb.store(C[:, :], acc)

    with pytest.raises(nb.CompileError) as caught:
        bad_dot.specialize()
    assert_points_at(caught.value, "bad-dot", "nb.dot", r"dot: ")


def test_front_end_message_names_the_python_line():
    @nb.jit
    def bad_shape(a: nb.ptr[f32], n: int):
        nb.launch(grid=1)
        A = nb.view(a, [n])
        t = nb.load(A[0:n])  # open-extent
        nb.store(A[0:16], t)

    with pytest.raises(nb.CompileError) as caught:
        bad_shape.specialize()
    assert_points_at(caught.value, "open-extent", "0:n", r"extent of a slice must be known")


def test_mismatched_tensor_types():
    @nb.jit
    def mixed(a: nb.ptr[f32], b: nb.ptr[f16]):
        nb.launch(grid=1)
        A, B = nb.view(a, [8]), nb.view(b, [8])
        s = nb.load(A[0:8]) + nb.load(B[0:8])  # mixed-add
        nb.store(A[0:8], s)

    with pytest.raises(nb.CompileError) as caught:
        mixed.specialize()
    assert_points_at(caught.value, "mixed-add", "nb.load(A", r"operands are f32 and f16")


def test_fetch_add_takes_one_integer_element():
    @nb.jit
    def float_counter(a: nb.ptr[f32]):
        nb.launch(grid=1)
        A = nb.view(a, [8])
        nb.fetch_add(A[0])  # float-counter

    with pytest.raises(nb.CompileError) as caught:
        float_counter.specialize()
    assert_points_at(caught.value, "float-counter", "nb.fetch_add",
                     r"fetch_add: the counter holds f32, not i32 or u32")

    @nb.jit
    def box_counter(c: nb.ptr[nb.i32]):
        nb.launch(grid=1)
        C = nb.view(c, [8])
        nb.fetch_add(C[0:4])  # box-counter

    with pytest.raises(nb.CompileError) as caught:
        box_counter.specialize()
    assert_points_at(caught.value, "box-counter", "nb.fetch_add",
                     r"fetch_add: the counter is one element")


def test_name_used_after_its_loop():
    @nb.jit
    def escaped(a: nb.ptr[f32], n: int):
        nb.launch(grid=1)
        A = nb.view(a, [n])
        for i in nb.range(0, n, 8):
            t = nb.load(A[i:i + 8])
        nb.store(A[0:8], t)  # escaped

    with pytest.raises(nb.CompileError) as caught:
        escaped.specialize()
    assert_points_at(caught.value, "escaped", "t)", r"'t' is defined inside the for loop at line")


def test_constant_changed_in_a_device_loop():
    @nb.jit
    def counter(n: int):
        nb.launch(grid=1)
        total = 0
        for i in nb.range(0, n):
            total = total + i  # constant-update

    with pytest.raises(nb.CompileError) as caught:
        counter.specialize()
    assert_points_at(caught.value, "constant-update", "total =", r"nb\.i32\(0\)")


# ---- unsupported Python --------------------------------------------------------------------


def test_unsupported_statements_and_expressions():
    @nb.jit
    def with_try(n: int):
        try:  # try
            pass
        except ValueError:
            pass

    @nb.jit
    def with_comprehension(n: int):
        shape = [i for i in range(3)]  # comprehension

    @nb.jit
    def with_class(n: int):
        class Inner:  # class
            pass

    @nb.jit
    def with_lambda(n: int):
        f = lambda v: v  # noqa: E731  # lambda

    @nb.jit
    def with_with(n: int):
        with open("x"):  # with
            pass

    cases = [(with_try, "try", "try:", "try statements are not supported"),
             (with_comprehension, "comprehension", "[i for", "list comprehensions are not"),
             (with_class, "class", "class Inner", "class definitions are not supported"),
             (with_lambda, "lambda", "lambda v", "lambda expressions are not supported"),
             (with_with, "with", "with open", "with statements are not supported")]
    for kernel, marker, text, message in cases:
        with pytest.raises(nb.CompileError) as caught:
            kernel.specialize()
        assert_points_at(caught.value, marker, text, message)


def test_closure_over_a_non_constant():
    table = np.arange(4)

    @nb.jit
    def uses_table(n: int):
        x = table  # closure

    with pytest.raises(nb.CompileError) as caught:
        uses_table.specialize()
    assert_points_at(caught.value, "closure", "table", r"closes over 'table', a ndarray")


def test_calling_an_arbitrary_function():
    @nb.jit
    def calls_numpy(n: int):
        x = np.zeros(4)  # call

    with pytest.raises(nb.CompileError) as caught:
        calls_numpy.specialize()
    assert_points_at(caught.value, "call", "np.zeros", r"cannot be called inside a kernel")


def test_missing_annotation_is_reported_at_decoration():
    with pytest.raises(nb.CompileError, match="parameter 'n' needs an annotation"):
        @nb.jit
        def unannotated(n):
            pass


# ---- bad launches --------------------------------------------------------------------------


@nb.jit
def scale(x: nb.ptr[f32], out: nb.ptr[f32], n: int, block: nb.constexpr = 64):
    nb.launch(grid=nb.cdiv(n, block))
    X, Out = nb.view(x, [n]), nb.view(out, [n])
    start = nb.block_id(0) * block
    nb.store(Out[start:start + block], nb.load(X[start:start + block]) * 2.0)


def arrays(n=64, dtype=np.float32):
    return np.ones(n, dtype), np.zeros(n, dtype)


def test_wrong_argument_count():
    x, out = arrays()
    with pytest.raises(TypeError, match=r"scale\(\): missing a required argument: 'n'"):
        nb.interpret(scale)(x, out)
    with pytest.raises(TypeError, match=r"scale\(\): too many positional arguments"):
        nb.interpret(scale)(x, out, 64, 64, 1)


def test_wrong_dtype_names_the_parameter():
    x, out = arrays(dtype=np.float16)
    with pytest.raises(TypeError, match=r"parameter 'x' points to f32: expected a float32 array, "
                                        r"got float16"):
        nb.interpret(scale)(x, out, 64)


def test_wrong_scalar_type_names_the_parameter():
    x, out = arrays()
    with pytest.raises(TypeError, match=r"parameter 'n' is i32: expected an int, got float"):
        nb.interpret(scale)(x, out, 64.0)
    with pytest.raises(ValueError, match=r"parameter 'n' is i32: 4294967296 is out of range"):
        nb.interpret(scale)(x, out, 2**32)


def test_non_contiguous_array_names_the_parameter():
    x = np.ones(128, np.float32)[::2]
    out = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match=r"parameter 'x': the array is not C-contiguous"):
        nb.interpret(scale)(x, out, 64)


def test_misaligned_array_names_the_parameter():
    x = np.ones(65, np.float32)[1:]  # contiguous, 4 bytes past a 16-byte boundary
    out = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match=r"parameter 'x': the array's address is not a multiple "
                                         r"of 16 bytes"):
        nb.interpret(scale)(x, out, 64)


def test_read_only_output_names_the_parameter():
    x, out = arrays()
    out.setflags(write=False)
    with pytest.raises(ValueError, match=r"parameter 'out': the kernel writes it, but the array "
                                         "is read-only"):
        nb.interpret(scale)(x, out, 64)
    x.setflags(write=False)  # inputs may be read-only
    out = np.zeros(64, np.float32)
    nb.interpret(scale)(x, out, 64)
    assert (out == 2).all()


def test_not_an_array_and_a_bad_constexpr():
    x, out = arrays()
    with pytest.raises(TypeError, match=r"parameter 'x' \(a pointer to f32\) takes a numpy array"):
        nb.interpret(scale)(list(x), out, 64)
    with pytest.raises(TypeError, match=r"compile-time parameter 'block' takes a number"):
        nb.interpret(scale)(x, out, 64, block=np.ones(2))


def test_out_of_bounds_access_is_an_interpreter_error():
    x, out = arrays(n=32)
    with pytest.raises(nb.InterpreterError, match=r"test_jit_errors.py:\d+"):
        nb.interpret(scale)(x, out, 64)  # the arrays are shorter than n


def test_multiple_of_is_checked_at_launch():
    @nb.jit
    def aligned(x: nb.ptr[f32], k: int):
        nb.multiple_of(k, 16)
        nb.launch(grid=1)

    with pytest.raises(ValueError, match=r"parameter 'k' must be a multiple of 16"):
        nb.interpret(aligned)(np.zeros(4, np.float32), 20)


def test_copy_async_in_bounds_promise_is_checked():
    @nb.jit
    def rows(x: nb.ptr[f32], out: nb.ptr[f32], start: int,
             promise: nb.constexpr = (1,)):
        nb.launch(grid=1, warps=1)
        X, OUT = nb.view(x, [6, 32]), nb.view(out, [4, 32])
        tile = nb.shared([4, 32], f32)
        nb.copy_async(tile[:, :], X[start:start + 4, :], in_bounds=promise)
        nb.commit()
        nb.wait(0)
        nb.barrier()
        nb.store(OUT[:, :], nb.load(tile[:, :]))

    x = np.arange(6 * 32, dtype=np.float32).reshape(6, 32)
    out = np.full((4, 32), -1, dtype=np.float32)
    nb.interpret(rows)(x, out, 4)  # rows 6 and 7 lie outside x along dimension 0: zero-filled
    np.testing.assert_array_equal(out, np.vstack([x[4:6], np.zeros((2, 32), np.float32)]))
    with pytest.raises(nb.InterpreterError, match=r"copy_async declares dimension 0 in bounds"):
        nb.interpret(rows)(x, out, 4, promise=(0, 1))
    with pytest.raises(nb.CompileError, match=r"in_bounds lists dimensions of the box"):
        rows.specialize(promise=(2,))
