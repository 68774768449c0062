"""The program under construction: parameters, the tensor table and the statement bodies,
assembled in Python and handed to the C++ side (`_core.Program`) in one piece by `finish`.

This is the Python twin of the C++ builder's bookkeeping (frontend/cpp/kernel_builder.h) with
every location given explicitly, as the compiler knows it from the syntax tree: unique names,
one tensor per first definition, bodies opened and closed as blocks, and the in-place update of
a tensor by retargeting the instruction that just computed its new value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import _core
from .dtypes import DataType

# Instructions whose first argument is a result that may be an existing tensor (an in-place
# update), as in kernel_builder.cpp's ResultField.
_RETARGETABLE = {
    "load_global", "load_shared", "cast", "view", "slice", "repeat", "permute", "reshape",
    "elementwise", "reduce", "shuffle",
}


@dataclass
class Instruction:
    factory: str  # the _core.Instruction factory
    args: list
    location: _core.SourceLocation

    def to_core(self) -> _core.Statement:
        make = getattr(_core.Instruction, self.factory)
        return _core.Statement.instruction(make(*self.args), self.location)


@dataclass
class Block:
    """A for, if or while statement and the bodies built for it."""

    kind: str  # "for", "if", "while"
    fields: dict
    location: _core.SourceLocation
    body: list = field(default_factory=list)
    else_body: list = field(default_factory=list)

    def to_core(self) -> _core.Statement:
        body = [s.to_core() for s in self.body]
        f = self.fields
        if self.kind == "for":
            return _core.Statement.for_loop(f["var"], f["start"], f["stop"], f["step"], body,
                                            f["unroll"], self.location)
        if self.kind == "if":
            return _core.Statement.if_else(f["condition"], body,
                                           [s.to_core() for s in self.else_body], self.location)
        return _core.Statement.while_loop(f["condition"], body, self.location)


@dataclass
class Simple:
    """let, assign, fetch_add and break."""

    kind: str
    args: list
    location: _core.SourceLocation

    def to_core(self) -> _core.Statement:
        if self.kind == "break":
            return _core.Statement.break_loop(self.location)
        return getattr(_core.Statement, self.kind)(*self.args, self.location)


@dataclass
class TensorEntry:
    name: str
    type: _core.TensorType
    location: _core.SourceLocation
    named: bool = False  # given a name by the kernel (rather than a fallback)


class ProgramBuilder:
    def __init__(self, name: str):
        self.name = name
        self.params: list[_core.Parameter] = []
        self.tensors: list[TensorEntry] = []
        self.grid: Optional[list[_core.Expr]] = None
        self.warps = 4
        self.shared_memory_bytes = 0
        self.cluster = [1, 1, 1]
        self._root: list = []
        self._bodies: list[list] = [self._root]
        self._tensor_names: set[str] = set()
        self._scalar_names: set[str] = set()
        self._next_var_id = 0

    # ---- names ------------------------------------------------------------------------------

    @staticmethod
    def _unique(base: str, taken: set[str]) -> str:
        if not _core.is_identifier(base):
            base = "t"
        name, suffix = base, 0
        while name in taken or _core.is_reserved_word(name):
            suffix += 1
            name = f"{base}_{suffix}"
        taken.add(name)
        return name

    def scalar_name(self, base: str) -> str:
        return self._unique(base, self._scalar_names)

    # ---- parameters -------------------------------------------------------------------------

    def add_pointer(self, name: str, dtype: DataType, align: int) -> int:
        self._scalar_names.add(name)
        self.params.append(_core.Parameter(name, _core.ParameterKind.Pointer, dtype,
                                           alignment_bytes=align))
        return len(self.params) - 1

    def add_scalar(self, name: str, dtype: DataType, value: Optional[int] = None) -> _core.Expr:
        self._scalar_names.add(name)
        self.params.append(_core.Parameter(name, _core.ParameterKind.Scalar, dtype,
                                           compile_time=value is not None, value=value))
        index = len(self.params) - 1
        return _core.Expr.param(name, index, dtype)

    # ---- tensors ----------------------------------------------------------------------------

    def define_tensor(self, type_: _core.TensorType, fallback: str,
                      location: _core.SourceLocation) -> int:
        name = self._unique(fallback, self._tensor_names)
        self.tensors.append(TensorEntry(name, type_, location))
        return len(self.tensors) - 1

    def rename_tensor(self, index: int, name: str) -> None:
        entry = self.tensors[index]
        if entry.named:
            return
        self._tensor_names.discard(entry.name)
        entry.name = self._unique(name, self._tensor_names)
        entry.named = True

    # ---- statements -------------------------------------------------------------------------

    def emit(self, factory: str, location: _core.SourceLocation, *args) -> None:
        self._bodies[-1].append(Instruction(factory, list(args), location))

    def new_var(self, name: str, type_: DataType) -> _core.Expr:
        var = _core.Expr.var(self.scalar_name(name), self._next_var_id, type_)
        self._next_var_id += 1
        return var

    def let(self, name: str, value: _core.Expr, location: _core.SourceLocation) -> _core.Expr:
        var = self.new_var(name, value.type)
        self._bodies[-1].append(Simple("let", [var, value], location))
        return var

    def fetch_add(self, name: str, counter: int, offsets: list, value: _core.Expr,
                  type_: DataType, location: _core.SourceLocation) -> _core.Expr:
        var = self.new_var(name, type_)
        self._bodies[-1].append(Simple("fetch_add", [var, counter, offsets, value], location))
        return var

    def assign(self, var: _core.Expr, value: _core.Expr, location: _core.SourceLocation) -> None:
        self._bodies[-1].append(Simple("assign", [var, value], location))

    def break_loop(self, location: _core.SourceLocation) -> None:
        self._bodies[-1].append(Simple("break", [], location))

    def open_block(self, kind: str, location: _core.SourceLocation, **fields) -> Block:
        block = Block(kind, fields, location)
        self._bodies[-1].append(block)
        self._bodies.append(block.body)
        return block

    def switch_to_else(self, block: Block) -> None:
        assert self._bodies[-1] is block.body
        self._bodies[-1] = block.else_body

    def close_block(self, block: Block) -> None:
        assert self._bodies[-1] is block.body or self._bodies[-1] is block.else_body
        self._bodies.pop()

    def can_retarget(self, value: int) -> bool:
        """Whether tensor `value` is the fresh result of the instruction just built, so that
        the instruction can write another tensor instead."""
        body = self._bodies[-1]
        return (bool(body) and isinstance(body[-1], Instruction)
                and body[-1].factory in _RETARGETABLE and body[-1].args[0] == value
                and value == len(self.tensors) - 1)

    def retarget(self, value: int, target: int) -> None:
        """Makes the instruction that computed `value` write `target`; `value` disappears."""
        assert self.can_retarget(value)
        self._bodies[-1][-1].args[0] = target
        self._tensor_names.discard(self.tensors[value].name)
        self.tensors.pop()

    # ---- result -----------------------------------------------------------------------------

    def finish(self) -> _core.Program:
        assert len(self._bodies) == 1, "a block is still open"
        program = _core.Program()
        program.name = self.name
        program.params = self.params
        one = _core.Expr.int_constant(1, _core.DataType.parse("i32"))
        grid = list(self.grid or [])
        program.grid = grid + [one] * (3 - len(grid))
        program.warps = self.warps
        program.shared_memory_bytes = self.shared_memory_bytes
        program.cluster = list(self.cluster)
        program.tensors = [_core.TensorInfo(t.name, t.type, t.location) for t in self.tensors]
        program.body = [s.to_core() for s in self._root]
        program.next_var_id = self._next_var_id
        return program
