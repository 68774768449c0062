"""Specialization: one build per set of compile-time values, reused; introspection of the
programs built."""
import numpy as np
import pytest

import nibble as nb
from nibble import f32


def make_kernel():
    @nb.jit
    def fill(out: nb.ptr[f32], n: int, value: nb.constexpr = 1.0, block: nb.constexpr = 64):
        nb.launch(grid=nb.cdiv(n, block))
        Out = nb.view(out, [n])
        start = nb.block_id(0) * block
        nb.store(Out[start:start + block], nb.full([block], value))

    return fill


def test_same_key_builds_once():
    fill = make_kernel()
    out = np.zeros(256, np.float32)
    for n in (256, 200, 128):  # run-time arguments do not specialize
        nb.interpret(fill)(out, n)
    assert fill.build_count == 1
    assert (out == 1).all()


def test_a_new_constexpr_value_builds_again():
    fill = make_kernel()
    out = np.zeros(256, np.float32)
    nb.interpret(fill)(out, 256, value=2.0)
    nb.interpret(fill)(out, 256, value=2.0)
    assert fill.build_count == 1
    nb.interpret(fill)(out, 256, value=3.0)
    assert fill.build_count == 2 and (out == 3).all()
    nb.interpret(fill)(out, 256, value=3.0, block=128)
    assert fill.build_count == 3
    nb.interpret(fill)(out, 256, value=2.0)  # back to the first key: cached
    assert fill.build_count == 3 and (out == 2).all()


def test_untyped_pointers_specialize_on_the_array_dtype():
    @nb.jit
    def copy(x: nb.ptr, y: nb.ptr, n: int):
        nb.launch(grid=1)
        nb.store(nb.view(y, [n])[0:64], nb.load(nb.view(x, [n])[0:64]))

    for dtype in (np.float32, np.float16, np.float32, np.int8):
        x = np.arange(64).astype(dtype)
        y = np.zeros(64, dtype)
        nb.interpret(copy)(x, y, 64)
        np.testing.assert_array_equal(x, y)
    assert copy.build_count == 3


def test_ir_shows_the_program_with_python_lines():
    fill = make_kernel()
    ir = fill.ir  # the defaults: value=1.0, block=64
    assert ir.startswith("kernel fill {")
    assert "param block: i32 const = 64" in ir
    assert "test_jit_cache.py:" in ir  # every statement's Python line
    assert "store_global" in ir
    spec = fill.specialize(block=128)
    assert "param block: i32 const = 128" in spec.ir
    assert fill.build_count == 2
    assert "@" in spec.lowered_ir  # layouts inferred
    # The text is the VM's format: it parses back to the same program.
    assert nb._core.parse_program(spec.ir, "x").__str__() == spec.ir


def test_ir_needs_values_for_constexprs_without_defaults():
    @nb.jit
    def needs(n: int, block: nb.constexpr):
        nb.launch(grid=1)

    with pytest.raises(TypeError, match="compile-time parameter 'block' has no value"):
        needs.ir
    assert "const = 32" in needs.specialize(block=32).ir
