"""Element types, layouts and packing as Python objects."""
import xml.etree.ElementTree as ElementTree

import ml_dtypes
import numpy as np
import pytest

import nibble as nb


def test_dtypes_are_objects():
    assert nb.u4.bits == 4 and nb.u4.name == "u4" and nb.u4.kind == "uint"
    assert nb.f6e3m2.bits == 6 and nb.f6e3m2.exponent_bits == 3 and nb.f6e3m2.mantissa_bits == 2
    f5 = nb.dtype("f5e2m2")
    assert f5.bits == 5 and f5 == nb.dtype("f5e2m2") and f5 != nb.f6e3m2
    assert repr(nb.f16) == "nibble.f16" and str(nb.bf16) == "bf16"
    assert len({nb.u4, nb.dtype("u4"), nb.i4}) == 2  # hashable by value
    with pytest.raises(nb._core.DTypeError, match="f9e9m9"):
        nb.dtype("f9e9m9")


def test_encode_and_decode():
    assert nb.f4e2m1.encode(1.5) == 0b0011 and nb.f4e2m1.decode(0b0011) == 1.5
    assert nb.f4e2m1.encode(100.0) == nb.f4e2m1.encode(6.0)  # saturates
    values = np.array([[0.0, 0.5], [-3.0, 1e9]])
    codes = nb.f6e3m2.encode(values)
    assert codes.shape == (2, 2) and codes.dtype == np.uint64
    decoded = nb.f6e3m2.decode(codes)
    assert decoded[0, 1] == 0.5 and decoded[1, 0] == -3.0
    assert decoded[1, 1] == nb.f6e3m2.largest_finite
    # Exact against ml_dtypes on every f8e4m3 code.
    every = np.arange(256, dtype=np.uint64)
    finite = ~np.isnan(every.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64))
    np.testing.assert_array_equal(
        nb.f8e4m3.decode(every)[finite],
        every.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)[finite])


@pytest.mark.parametrize("name", ["u4", "i4", "u3", "f4e2m1", "f6e3m2", "u1", "i7"])
def test_pack_round_trips(name):
    type_ = nb.dtype(name)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 2 ** type_.bits, (6, 10)).astype(np.uint64)
    packed = nb.pack_codes(codes, type_)
    assert packed.dtype == np.uint8 and packed.size == (60 * type_.bits + 7) // 8
    np.testing.assert_array_equal(nb.unpack_codes(packed, type_, (6, 10)), codes)
    values = nb.unpack(packed, type_, (6, 10))
    np.testing.assert_array_equal(nb.pack(values, type_), packed)


def test_pack_bit_order_and_signed_values():
    assert nb.pack([1, 2, 3, 4], nb.u4).tolist() == [0x21, 0x43]  # low nibble first
    assert nb.pack([-1, 7], nb.i4).tolist() == [0x7F]
    assert nb.unpack(np.array([0x7F], np.uint8), nb.i4, 2).tolist() == [-1, 7]
    with pytest.raises(ValueError, match="does not fit in u4"):
        nb.pack([16], nb.u4)


def test_layout_notation_and_pictures():
    layout = nb.Layout("S[(8,4):(4@lane,1@reg)]")
    assert str(layout) == "S[(8,4):(4@lane,1@reg)]"
    assert layout.size == 32 and layout.shard == [(8, 4, "lane"), (4, 1, "reg")]
    assert layout.apply(5) == [{"lane": 4, "reg": 1}]
    grid = layout.grid()
    assert "T4:r1" in grid
    svg = layout.draw()
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg")
    assert layout._repr_svg_() == svg
    assert layout == nb.Layout(str(layout)) and repr(layout).startswith("Layout(")
    with pytest.raises(nb._core.LayoutError, match="lanex"):
        nb.Layout("S[(4,8):(8@lane,1@lanex)]")


def test_memory_layout_with_swizzle_and_atoms():
    tile = nb.Layout("S[(8,64):(64@smem,1@smem)]")
    plain = tile.grid(dtype=nb.f16)
    swizzled = tile.grid(dtype=nb.f16, swizzle="128B")
    assert plain != swizzled
    with pytest.raises(ValueError, match="dtype"):
        tile.grid(swizzle="128B")
    mma = nb.Layout.atom("mma.m16n8k16.a")
    assert mma.shape == (16, 16) and "T0:r0" in mma.grid()
    assert "mma.m16n8k16.a" in nb.atom_names()


def test_numpy_dtype_mapping():
    assert nb.to_numpy(nb.bf16) == np.dtype(ml_dtypes.bfloat16)
    assert nb.to_numpy(nb.u4) is None
    assert nb.from_numpy(np.dtype(np.float16)) == nb.f16
    assert np.dtype(np.uint8) in nb.accepted_numpy_dtypes(nb.f6e3m2)
