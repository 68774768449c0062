"""Layouts as Python objects, printed in the algebra's notation and drawn as pictures.

    >>> frag = nibble.Layout("S[(8,4):(4@lane,1@reg)]")
    >>> print(frag)             # S[(8,4):(4@lane,1@reg)]
    >>> print(frag.grid())      # which thread and register holds each element
    >>> frag                    # in a notebook: the SVG picture (_repr_svg_)

A layout maps the row-major index of a tensor's elements to places on named axes (lanes,
warps, registers, shared memory, …); layout/layout.h states the algebra.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

from . import _core
from .dtypes import DataType, dtype

Swizzle = _core.Swizzle


def swizzle(spec: Union[str, Swizzle, None]) -> Swizzle:
    """A swizzle from "none", "32B", "64B", "128B" or "Sw<bits,base,shift>"."""
    if spec is None:
        return Swizzle()
    if isinstance(spec, Swizzle):
        return spec
    return Swizzle.parse(spec)


class Layout:
    """A layout of the named-axis algebra; `Layout(text)` reads the notation of layout.h, and
    `Layout.atom("mma.m16n8k16.a")` gives a hardware atom's layout."""

    __slots__ = ("_layout", "shape", "element_bits", "swizzle")

    def __init__(self, text: Union[str, "Layout", _core.Layout],
                 shape: Optional[Sequence[int]] = None):
        if isinstance(text, Layout):
            text = text._layout
        self._layout = text if isinstance(text, _core.Layout) else _core.Layout.parse(text)
        # The logical shape to draw; None: from the shard (see _picture_shape).
        self.shape = tuple(shape) if shape is not None else None
        self.element_bits = 0
        self.swizzle = Swizzle()

    @classmethod
    def atom(cls, name: str) -> "Layout":
        """The layout of a hardware atom (ldmatrix, mma fragments, …); `atom_names()` lists
        them."""
        found = _core.find_atom(name)
        if found is None:
            raise ValueError(f"no atom named '{name}'; atoms: {', '.join(_core.atom_names())}")
        _, shape, layout, element_bits, atom_swizzle = found
        result = cls(layout, shape)
        if not atom_swizzle.is_identity:
            result.element_bits, result.swizzle = element_bits, atom_swizzle
        return result

    @classmethod
    def row_major(cls, shape: Sequence[int], axis: str) -> "Layout":
        return cls(_core.Layout.row_major(list(shape), axis), shape)

    @property
    def size(self) -> int:
        """The number of logical elements."""
        return self._layout.size

    @property
    def replication(self) -> int:
        return self._layout.replication

    @property
    def shard(self) -> list[tuple[int, int, str]]:
        """The shard's iters as (extent, stride, axis)."""
        return self._layout.shard

    @property
    def replica(self) -> list[tuple[int, int, str]]:
        return self._layout.replica

    @property
    def axes(self) -> list[str]:
        return self._layout.axes

    def span(self, axis: str) -> int:
        return self._layout.span(axis)

    def apply(self, index: int) -> list[dict[str, int]]:
        """Every place of element `index`, as {axis: value}."""
        return [dict(place) for place in self._layout.apply(index)]

    def _picture_shape(self, shape) -> tuple[int, int]:
        if shape is None:
            shape = self.shape
        if shape is not None:
            if len(shape) != 2:
                raise ValueError(f"a picture is 2-D; shape {tuple(shape)} is not")
            return int(shape[0]), int(shape[1])
        shard = self._layout.shard
        if len(shard) == 2:
            return shard[0][0], shard[1][0]
        side = math.isqrt(self.size)
        if side * side == self.size:
            return side, side
        if self.size <= 64:
            return 1, self.size
        raise ValueError(f"give shape=(rows, columns) to draw the {self.size} elements")

    def _options(self, dtype_, swizzle_):
        bits = dtype(dtype_).bits if dtype_ is not None else self.element_bits
        sw = swizzle(swizzle_) if swizzle_ is not None else self.swizzle
        if not sw.is_identity and bits == 0:
            raise ValueError("a swizzle acts on bytes: give dtype= to draw it")
        return bits, sw

    def grid(self, shape: Optional[Sequence[int]] = None,
             dtype: Union[str, DataType, None] = None,
             swizzle: Union[str, Swizzle, None] = None) -> str:
        """A text grid: the place of each element (T{thread}:r{slot} for register layouts,
        the byte address for memory layouts given a dtype)."""
        rows, columns = self._picture_shape(shape)
        bits, sw = self._options(dtype, swizzle)
        return self._layout.text_grid(rows, columns, bits, sw, str(self))

    def draw(self, shape: Optional[Sequence[int]] = None,
             dtype: Union[str, DataType, None] = None,
             swizzle: Union[str, Swizzle, None] = None) -> str:
        """The same picture as an SVG document (cells coloured by thread, or by bank)."""
        rows, columns = self._picture_shape(shape)
        bits, sw = self._options(dtype, swizzle)
        return self._layout.svg(rows, columns, bits, sw, str(self))

    def _repr_svg_(self) -> str:
        try:
            return self.draw()
        except ValueError:
            return None  # the notebook falls back to the text form

    def __str__(self) -> str:
        return str(self._layout)

    def __repr__(self) -> str:
        return f'Layout("{self._layout}")'

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and self._layout == other._layout

    def __hash__(self) -> int:
        return hash(str(self._layout))


def as_core_layout(spec: Union[str, Layout, None]) -> Optional[_core.Layout]:
    """The C++ layout of a text, a Layout or None."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return _core.Layout.parse(spec)
    return spec._layout


def atom_names() -> list[str]:
    return _core.atom_names()
