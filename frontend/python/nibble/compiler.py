"""From a kernel's Python syntax tree to a VM program.

The compiler walks the `ast` of the decorated function once per specialization. Python values
known while compiling (numbers, dtypes, layouts, compile-time parameters, tuples of them) are
computed in Python: shapes, `range` loops over them and `if`s on them disappear. Everything
else becomes VM statements, each located at the Python expression that built it:

    Python                                   VM
    x: nb.ptr[f16] / n: int / bn: nb.constexpr  pointer / i32 scalar / compile-time parameter
    n0 = nb.block_id(0) * bn                 let n0 = (%blockIdx.x * 64)
    i = i + 1  (i from an enclosing block)   i = (i + 1)                 (assign)
    X = nb.view(x, [m, k])                   %X = global_view x
    t = nb.load(X[m0:m0 + 64, :])            %t = load_global %X[m0, 0]
    acc += t * 2   /   acc = acc + t * 2     in-place update of %acc
    for k0 in nb.range(0, k, 64):            for k0 in range(0, k, 64) { … }
    for s in range(stages):                  unrolled while compiling
    if / else / while / break                if / else / while / break

Scopes are the VM's: a name bound inside a run-time loop or branch is not visible after it
(the error says so), and assigning to a name of an enclosing block updates that variable or
tensor in place, which is how loop-carried values are written.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import math
import operator
import types
from dataclasses import dataclass
from typing import Any, Optional

from . import _core
from . import language
from .builder import ProgramBuilder
from .dtypes import DataType, dtype as parse_dtype, f32, i32
from .errors import CompileError, Diagnostic
from .layout import Layout, Swizzle, as_core_layout, swizzle as parse_swizzle

_CORE_ERRORS = (_core.ExprError, _core.LayoutError, _core.DTypeError)
_u1 = DataType.parse("u1")
# Called with constant arguments while compiling.
_CALLABLE_CONSTRUCTORS = (Layout, Swizzle, parse_dtype, parse_swizzle)
# Python's built-ins a kernel may call (compiler methods python_<name>).
_PYTHON_BUILTINS = ("range", "min", "max", "abs", "print", "len", "int", "float", "bool")
_LOG2E = 1.4426950408889634

# ---- values of the compiler ----------------------------------------------------------------


@dataclass(eq=False)
class Tensor:
    """A tensor of the program (an entry of the tensor table)."""

    index: int
    builder: ProgramBuilder

    @property
    def entry(self):
        return self.builder.tensors[self.index]

    @property
    def type(self) -> _core.TensorType:
        return self.entry.type

    @property
    def scope(self) -> _core.Scope:
        return self.type.scope

    @property
    def dtype(self) -> DataType:
        return self.type.dtype

    @property
    def shape(self) -> list[int]:
        return list(self.type.shape)

    @property
    def rank(self) -> int:
        return self.type.rank

    @property
    def name(self) -> str:
        return self.entry.name

    def describe(self) -> str:
        if self.scope == _core.Scope.Global:
            return f"global tensor %{self.name}"
        extents = ", ".join(map(str, self.shape))
        scope = "shared" if self.scope == _core.Scope.Shared else "register"
        return f"{scope} tensor %{self.name} ({self.dtype.name}[{extents}])"


@dataclass(eq=False)
class Scalar:
    """A scalar known at run time: a VM expression."""

    expr: _core.Expr
    variable: bool = False  # a `let` variable, which an enclosing-block assignment may update
    loop: bool = False  # a loop variable


@dataclass(eq=False)
class Pointer:
    index: int
    name: str
    dtype: DataType


@dataclass(eq=False)
class Box:
    """`X[a:b, c]`: a box of a global or shared tensor, for load, store and copy_async."""

    tensor: Tensor
    offsets: list  # int | Scalar per dimension
    extents: list  # int, or None where the slice leaves it open (`X[m0:, :]` on a global view)


@dataclass(eq=False)
class StaticRange:
    values: range


@dataclass(eq=False)
class DeviceRange:
    start: Any
    stop: Any
    step: Any
    unroll: int


_CONSTANT_TYPES = (bool, int, float, str, type(None), DataType, Layout, Swizzle)


def is_constant(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(is_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)


def is_number(value) -> bool:
    return isinstance(value, (bool, int, float))


# ---- the kernel's source --------------------------------------------------------------------


@dataclass
class ParameterSpec:
    name: str
    kind: str  # "pointer", "scalar", "constexpr"
    dtype: Optional[DataType]  # pointee or scalar type; None for an untyped pointer
    align: int = 16
    line: int = 0
    column: int = 0


class KernelSource:
    """A kernel function's syntax tree, where it lives, and what its names refer to."""

    def __init__(self, function: types.FunctionType):
        self.function = function
        self.name = function.__name__
        try:
            lines, first_line = inspect.getsourcelines(function)
        except (OSError, TypeError) as error:
            raise TypeError(f"@nibble.jit needs the source of '{self.name}' ({error})") from None
        self.file = inspect.getsourcefile(function) or "<unknown>"
        self.indent = len(lines[0]) - len(lines[0].lstrip())
        source = "".join(line[self.indent:] if line.strip() else "\n" for line in lines)
        self.line_offset = first_line - 1
        tree = ast.parse(source)
        self.tree = tree.body[0]
        if not isinstance(self.tree, ast.FunctionDef):
            raise TypeError(f"@nibble.jit applies to a function; '{self.name}' is not one")
        self.globals = function.__globals__
        self.closure = {}
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                self.closure[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        self.params = self._parameters()

    def location(self, node: ast.AST) -> tuple[int, int, int]:
        """(line, column, end column) of a node, 1-based, in the file."""
        line = self.line_offset + node.lineno
        column = node.col_offset + self.indent + 1
        end = 0
        if getattr(node, "end_lineno", None) == node.lineno and node.end_col_offset is not None:
            end = node.end_col_offset + self.indent + 1
        return line, column, end

    def error(self, node: Optional[ast.AST], message: str) -> CompileError:
        if node is None:
            return CompileError(self.name, [Diagnostic(self.file, 0, 0, message)])
        line, column, end = self.location(node)
        return CompileError(self.name, [Diagnostic(self.file, line, column, message, end)])

    def _parameters(self) -> list[ParameterSpec]:
        arguments = self.tree.args
        if arguments.vararg or arguments.kwarg or arguments.kwonlyargs or arguments.posonlyargs:
            raise self.error(arguments.vararg or arguments.kwarg or self.tree,
                             "kernel parameters are plain names (no *args, **kwargs, keyword-only "
                             "or positional-only parameters)")
        specs = []
        for arg in arguments.args:
            if arg.annotation is None:
                raise self.error(arg, f"parameter '{arg.arg}' needs an annotation: nb.ptr[f16], "
                                      "int, float, a dtype such as nb.i64, or nb.constexpr")
            try:
                annotation = eval(compile(ast.Expression(arg.annotation), self.file, "eval"),
                                  self.globals, dict(self.closure))
            except Exception as error:  # the annotation is user code
                message = f"cannot evaluate the annotation of '{arg.arg}': {error}"
                raise self.error(arg.annotation, message) from None
            line, column, _ = self.location(arg)
            spec = ParameterSpec(arg.arg, "", None, line=line, column=column)
            if annotation is language.constexpr:
                spec.kind = "constexpr"
            elif annotation is language.PointerType:
                spec.kind = "pointer"
            elif isinstance(annotation, language.PointerType):
                spec.kind, spec.dtype, spec.align = "pointer", annotation.element, annotation.align
            elif annotation is int:
                spec.kind, spec.dtype = "scalar", i32
            elif annotation is float:
                spec.kind, spec.dtype = "scalar", f32
            elif isinstance(annotation, DataType) and annotation.bits >= 8:
                spec.kind, spec.dtype = "scalar", annotation
            else:
                raise self.error(arg.annotation,
                                 f"parameter '{arg.arg}': {annotation!r} is not a parameter type "
                                 "(nb.ptr[f16], int, float, a dtype such as nb.i64, nb.constexpr)")
            specs.append(spec)
        return specs


# ---- the compiler ---------------------------------------------------------------------------


class _Scope:
    def __init__(self, kind: str, line: int):
        self.kind = kind  # "kernel", "for", "while", "if", "else"
        self.line = line
        self.names: dict[str, Any] = {}


class _Unsupported(Exception):
    pass


_BINARY_OPS = {
    ast.Add: ("add", _core.BinaryOp.Add, _core.ElementwiseOp.Add, operator.add),
    ast.Sub: ("sub", _core.BinaryOp.Sub, _core.ElementwiseOp.Sub, operator.sub),
    ast.Mult: ("mul", _core.BinaryOp.Mul, _core.ElementwiseOp.Mul, operator.mul),
    ast.Div: ("div", _core.BinaryOp.Div, _core.ElementwiseOp.Div, operator.truediv),
    ast.FloorDiv: ("floordiv", _core.BinaryOp.FloorDiv, None, operator.floordiv),
    ast.Mod: ("mod", _core.BinaryOp.Mod, None, operator.mod),
    ast.Pow: ("pow", None, None, operator.pow),
    ast.LShift: ("shl", _core.BinaryOp.Shl, None, operator.lshift),
    ast.RShift: ("shr", _core.BinaryOp.Shr, None, operator.rshift),
    ast.BitAnd: ("bitand", _core.BinaryOp.BitAnd, None, operator.and_),
    ast.BitOr: ("bitor", _core.BinaryOp.BitOr, None, operator.or_),
    ast.BitXor: ("bitxor", _core.BinaryOp.BitXor, None, operator.xor),
}
_COMPARE_OPS = {
    ast.Eq: ("eq", _core.BinaryOp.Eq, _core.ElementwiseOp.Eq, operator.eq),
    ast.NotEq: ("ne", _core.BinaryOp.Ne, _core.ElementwiseOp.Ne, operator.ne),
    ast.Lt: ("lt", _core.BinaryOp.Lt, _core.ElementwiseOp.Lt, operator.lt),
    ast.LtE: ("le", _core.BinaryOp.Le, _core.ElementwiseOp.Le, operator.le),
    ast.Gt: ("gt", _core.BinaryOp.Gt, _core.ElementwiseOp.Gt, operator.gt),
    ast.GtE: ("ge", _core.BinaryOp.Ge, _core.ElementwiseOp.Ge, operator.ge),
}
_FALLBACK_NAMES = {
    _core.ElementwiseOp.Max: "maximum",
    _core.ElementwiseOp.Min: "minimum",
}
_UNSUPPORTED_STATEMENTS = {
    ast.ClassDef: "class definitions are", ast.FunctionDef: "nested functions are",
    ast.AsyncFunctionDef: "nested functions are", ast.Try: "try statements are",
    ast.With: "with statements are", ast.AsyncWith: "with statements are",
    ast.AsyncFor: "async for is", ast.Raise: "raise is", ast.Import: "import is",
    ast.ImportFrom: "import is", ast.Global: "global is", ast.Nonlocal: "nonlocal is",
    ast.Delete: "del is", ast.Continue: "continue is (the VM's loops have break only)",
}
if hasattr(ast, "Match"):
    _UNSUPPORTED_STATEMENTS[ast.Match] = "match statements are"
if hasattr(ast, "TryStar"):
    _UNSUPPORTED_STATEMENTS[ast.TryStar] = "try statements are"
_UNSUPPORTED_EXPRESSIONS = {
    ast.Lambda: "lambda expressions", ast.ListComp: "list comprehensions",
    ast.SetComp: "set comprehensions", ast.DictComp: "dict comprehensions",
    ast.GeneratorExp: "generator expressions", ast.Await: "await expressions",
    ast.Yield: "yield expressions", ast.YieldFrom: "yield expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Dict: "dicts", ast.Set: "sets", ast.Starred: "starred expressions",
    ast.JoinedStr: "f-strings",
}


class KernelCompiler:
    """Compiles one specialization: the kernel's source with the values of its compile-time
    parameters and the element types of its untyped pointers."""

    def __init__(self, source: KernelSource, constexprs: dict[str, Any],
                 pointer_dtypes: dict[str, DataType]):
        self.source = source
        self.builder = ProgramBuilder(source.name)
        self.scopes = [_Scope("kernel", source.location(source.tree)[0])]
        self.dead: dict[str, tuple[str, int]] = {}  # name -> (block kind, line) it lived in
        self.facts = _core.Facts()
        self.node: ast.AST = source.tree
        self.loop_depth = 0
        self.launched = False
        self.stored_params: set[int] = set()  # pointer parameters the kernel writes
        self.view_params: dict[int, int] = {}  # global view tensor -> pointer parameter
        self._end_columns: dict[tuple[int, int], int] = {}  # (line, column) -> end column
        self._declare_parameters(constexprs, pointer_dtypes)

    # ---- entry ------------------------------------------------------------------------------

    def compile(self) -> _core.Program:
        body = self.source.tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # the docstring
        self.statements(body)
        program = self.builder.finish()
        diagnostics = []
        for location, message, _ in _core.verify(program):
            end = self._end_columns.get((location.line, location.column), 0)
            diagnostics.append(Diagnostic(location.file or self.source.file, location.line,
                                          location.column, message, end))
        if diagnostics:
            raise CompileError(self.source.name, diagnostics)
        return program

    @property
    def has_grid(self) -> bool:
        return self.launched

    # ---- errors and locations ---------------------------------------------------------------

    def error(self, message: str, node: Optional[ast.AST] = None) -> CompileError:
        return self.source.error(node if node is not None else self.node, message)

    def location(self, node: Optional[ast.AST] = None) -> _core.SourceLocation:
        node = node if node is not None else self.node
        line, column, end = self.source.location(node)
        if end:
            self._end_columns[(line, column)] = end
        return _core.SourceLocation(self.source.file, line, column, self.source.name)

    # ---- parameters -------------------------------------------------------------------------

    def _declare_parameters(self, constexprs, pointer_dtypes):
        root = self.scopes[0].names
        for spec in self.source.params:
            if spec.kind == "constexpr":
                value = constexprs[spec.name]
                if isinstance(value, int) and not isinstance(value, bool) \
                        and -2**31 <= value < 2**31:
                    self.builder.add_scalar(spec.name, i32, value)
                root[spec.name] = value
            elif spec.kind == "pointer":
                element = spec.dtype or pointer_dtypes[spec.name]
                index = self.builder.add_pointer(spec.name, element, spec.align)
                root[spec.name] = Pointer(index, spec.name, element)
            else:
                root[spec.name] = Scalar(self.builder.add_scalar(spec.name, spec.dtype))

    # ---- names ------------------------------------------------------------------------------

    def lookup(self, name: str, node: ast.AST):
        for scope in reversed(self.scopes):
            if name in scope.names:
                return scope.names[name]
        if name in self.dead:
            kind, line = self.dead[name]
            raise self.error(f"'{name}' is defined inside the {kind} at line {line} and is not "
                             f"visible after it; define it before the {kind} and update it "
                             "inside", node)
        if name in self.source.closure:
            return self._outside_value(name, self.source.closure[name], "closes over", node)
        if name in self.source.globals:
            return self._outside_value(name, self.source.globals[name], "refers to global", node)
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.error(f"name '{name}' is not defined", node)

    def _outside_value(self, name, value, how, node):
        if is_constant(value) or isinstance(value, types.ModuleType) \
                or getattr(value, "__nibble_builtin__", None) \
                or any(value is allowed for allowed in _CALLABLE_CONSTRUCTORS) \
                or value is language.PointerType:
            return value
        raise self.error(f"the kernel {how} '{name}', a {type(value).__name__}: only compile-time "
                         "constants (numbers, strings, dtypes, layouts), modules and nibble's "
                         "functions can be used inside a kernel", node)

    def bind(self, name: str, value, node: ast.AST, fresh_from: int) -> None:
        """`name = value`; tensors created since `fresh_from` are fresh."""
        current = self.scopes[-1]
        outer = None
        for scope in reversed(self.scopes[:-1]):
            if name in scope.names and name not in current.names:
                outer = scope
                break
        if outer is None:
            current.names[name] = self._named(name, value, node, fresh_from)
            self.dead.pop(name, None)
            return
        existing = outer.names[name]
        if isinstance(existing, Tensor):
            self.update_tensor(existing, value, node, fresh_from)
        elif isinstance(existing, Scalar) and existing.loop:
            raise self.error(f"'{name}' is a loop variable; the loop updates it", node)
        elif isinstance(existing, Scalar) and existing.variable:
            var = existing.expr
            if isinstance(value, Tensor):
                raise self.error(f"'{name}' is a scalar variable; a tensor cannot be assigned to "
                                 "it", node)
            expr = self.to_expr(value, var.type)
            if expr.type != var.type:
                raise self.error(f"'{name}' is {var.type.name}, the value is {expr.type.name}; "
                                 f"convert it with nb.{var.type.name}(…)", node)
            self.builder.assign(var, expr, self.location(node))
        elif isinstance(existing, Scalar):
            raise self.error(f"'{name}' is a parameter; it cannot change inside a loop or "
                             f"branch. Copy it into a variable first: {name}_ = {name}", node)
        elif is_constant(existing):
            raise self.error(
                f"'{name}' is a compile-time constant ({existing!r}); it cannot change inside a "
                "loop or branch that runs on the device. To make it a variable, define it with "
                f"a type: {name} = nb.i32({existing!r})", node)
        else:
            raise self.error(f"'{name}' cannot be reassigned inside a loop or branch", node)

    def _named(self, name, value, node, fresh_from):
        if isinstance(value, Tensor):
            if value.index >= fresh_from:
                self.builder.rename_tensor(value.index, name)
            return value
        if isinstance(value, Scalar):
            return Scalar(self.builder.let(name, value.expr, self.location(node)), variable=True)
        return value

    def update_tensor(self, target: Tensor, value, node: ast.AST, fresh_from: int) -> None:
        """target ← value, in place (loop-carried values, branch results)."""
        if target.scope != _core.Scope.Register:
            raise self.error(f"{target.describe()} cannot be reassigned; write into it with "
                             "nb.store", node)
        if not isinstance(value, Tensor):
            value = self.broadcast_scalar(value, target, node)
            fresh_from = value.index
        if value.index == target.index:
            return
        if value.dtype != target.dtype or value.shape != target.shape:
            raise self.error(f"{target.describe()} would change type: the new value is "
                             f"{value.dtype.name}{value.shape}; convert with nb.cast or keep "
                             "the shape", node)
        if value.index >= fresh_from and self.builder.can_retarget(value.index):
            self.builder.retarget(value.index, target.index)
        else:  # a copy
            self.builder.emit("cast", self.location(node), target.index, value.index)

    def broadcast_scalar(self, value, like: Tensor, node) -> Tensor:
        """A scalar assigned to a tensor: every element."""
        if is_number(value):
            return self.alloc_register(like.shape, like.dtype, float(value), "full", None, node)
        expr = self.to_expr(value, like.dtype)
        zeros = self.alloc_register(like.shape, like.dtype, 0.0, "full", None, node)
        return self.elementwise(_core.ElementwiseOp.Add, [zeros, Scalar(expr)], node)

    # ---- scopes -----------------------------------------------------------------------------

    def push_scope(self, kind: str, node: ast.AST) -> None:
        self.scopes.append(_Scope(kind, self.source.location(node)[0]))

    def pop_scope(self) -> None:
        scope = self.scopes.pop()
        kind = {"for": "for loop", "while": "while loop", "if": "if branch",
                "else": "else branch"}[scope.kind]
        for name in scope.names:
            self.dead[name] = (kind, scope.line)

    # ---- statements -------------------------------------------------------------------------

    def statements(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        self.node = node
        kind = type(node)
        if kind in _UNSUPPORTED_STATEMENTS:
            raise self.error(f"{_UNSUPPORTED_STATEMENTS[kind]} not supported in a kernel", node)
        method = getattr(self, f"stmt_{kind.__name__}", None)
        if method is None:
            raise self.error(f"{kind.__name__} statements are not supported in a kernel", node)
        try:
            method(node)
        except _CORE_ERRORS as error:
            raise self.error(str(error)) from None

    def stmt_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a string as a comment
        self.expr(node.value)

    def stmt_Pass(self, node: ast.Pass) -> None:
        pass

    def stmt_Assign(self, node: ast.Assign) -> None:
        fresh_from = len(self.builder.tensors)
        value = self.expr(node.value)
        for target in node.targets:
            self.assign_target(target, value, fresh_from)

    def stmt_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is None or not isinstance(node.target, ast.Name):
            raise self.error("annotated assignments need a name and a value", node)
        fresh_from = len(self.builder.tensors)
        self.assign_target(node.target, self.expr(node.value), fresh_from)

    def assign_target(self, target: ast.expr, value, fresh_from: int) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value, target, fresh_from)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, (tuple, list)) or len(value) != len(target.elts):
                count = len(value) if isinstance(value, (tuple, list)) else "one"
                raise self.error(f"cannot unpack {count} value(s) into {len(target.elts)} names",
                                 target)
            for element, item in zip(target.elts, value):
                self.assign_target(element, item, fresh_from)
        elif isinstance(target, ast.Subscript):
            raise self.error("write into a tensor with nb.store(X[…], value)", target)
        else:
            raise self.error(f"cannot assign to {type(target).__name__}", target)

    def stmt_AugAssign(self, node: ast.AugAssign) -> None:
        if not isinstance(node.target, ast.Name):
            raise self.error("augmented assignment needs a name on the left", node.target)
        name = node.target.id
        current = self.lookup(name, node.target)
        if isinstance(current, Tensor) and isinstance(node.op, ast.Add) \
                and self._is_builtin_call(node.value, "dot"):
            call = node.value
            self.node = call
            args, kwargs = self.call_arguments(call)
            if len(args) != 2 or kwargs:
                raise self.error("acc += nb.dot(a, b) takes two operands", call)
            self.emit_dot(current, args[0], args[1], call)
            return
        fresh_from = len(self.builder.tensors)
        self.node = node
        value = self.binary(node.op, current, self.expr(node.value), node)
        if isinstance(current, Tensor):
            self.update_tensor(current, value, node, fresh_from)
        else:
            self.bind(name, value, node.target, fresh_from)

    def _is_builtin_call(self, node: ast.expr, name: str) -> bool:
        if not isinstance(node, ast.Call):
            return False
        try:
            function = self.expr(node.func)
        except CompileError:
            return False
        return getattr(function, "__nibble_builtin__", None) == name

    def stmt_If(self, node: ast.If) -> None:
        condition = self.expr(node.test)
        if is_constant(condition):
            self.statements(node.body if condition else node.orelse)
            return
        expr = self.condition(condition, node.test)
        block = self.builder.open_block("if", self.location(node), condition=expr)
        self.push_scope("if", node)
        self.statements(node.body)
        self.pop_scope()
        if node.orelse:
            self.builder.switch_to_else(block)
            self.push_scope("else", node.orelse[0])
            self.statements(node.orelse)
            self.pop_scope()
        self.builder.close_block(block)

    def condition(self, value, node) -> _core.Expr:
        if isinstance(value, Scalar) and value.expr.type == _u1:
            return value.expr
        if isinstance(value, Scalar):
            raise self.error(f"a condition is a comparison (u1), not {value.expr.type.name}",
                             node)
        raise self.error(f"a condition is a scalar comparison, not {self.describe(value)}", node)

    def stmt_While(self, node: ast.While) -> None:
        if node.orelse:
            raise self.error("while … else is not supported in a kernel", node.orelse[0])
        condition = self.expr(node.test)
        if is_constant(condition):
            if not condition:
                return
            expr = _core.Expr.boolean(True)
        else:
            expr = self.condition(condition, node.test)
        block = self.builder.open_block("while", self.location(node), condition=expr)
        self.push_scope("while", node)
        self.loop_depth += 1
        self.statements(node.body)
        self.loop_depth -= 1
        self.pop_scope()
        self.builder.close_block(block)

    def stmt_Break(self, node: ast.Break) -> None:
        if self.loop_depth == 0:
            raise self.error("break outside a loop that runs on the device (loops over Python "
                             "ranges are unrolled while compiling and cannot break)", node)
        self.builder.break_loop(self.location(node))

    def stmt_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            raise self.error("a kernel returns nothing: write results with nb.store", node)
        if self.scopes[-1].kind != "kernel" or node is not self.source.tree.body[-1]:
            raise self.error("return is allowed only as the last statement of a kernel", node)

    def stmt_Assert(self, node: ast.Assert) -> None:
        condition = self.expr(node.test)
        if not is_constant(condition):
            raise self.error("assert checks compile-time conditions only", node.test)
        if not condition:
            message = self.expr(node.msg) if node.msg is not None else "assertion failed"
            raise self.error(str(message), node)

    def stmt_For(self, node: ast.For) -> None:
        if node.orelse:
            raise self.error("for … else is not supported in a kernel", node.orelse[0])
        iterable = self.expr(node.iter)
        if isinstance(iterable, (tuple, list)) and is_constant(iterable):
            iterable = StaticRange(iterable)
        if isinstance(iterable, StaticRange):
            for value in iterable.values:
                self.node = node
                self.assign_target(node.target, value, len(self.builder.tensors))
                self.statements(node.body)
            return
        if not isinstance(iterable, DeviceRange):
            raise self.error("a kernel loops over nb.range(…), range(…) or a tuple of "
                             "constants", node.iter)
        if not isinstance(node.target, ast.Name):
            raise self.error("the loop variable is a name", node.target)
        self.node = node.iter
        like = next((v.expr.type for v in (iterable.start, iterable.stop, iterable.step)
                     if isinstance(v, Scalar)), i32)
        start, stop, step = (self.to_expr(v, like) for v in
                             (iterable.start, iterable.stop, iterable.step))
        if isinstance(iterable.step, int) and iterable.step <= 0:
            raise self.error(f"the step of nb.range must be positive, not {iterable.step}",
                             node.iter)
        var = self.builder.new_var(node.target.id, like)
        if isinstance(iterable.start, int) and isinstance(iterable.step, int):
            if iterable.start >= 0:
                self.facts.set_range(var, iterable.start, 2**31 - 1)
            if iterable.start % iterable.step == 0:
                self.facts.set_divisor(var, iterable.step)
        block = self.builder.open_block("for", self.location(node), var=var, start=start,
                                        stop=stop, step=step, unroll=iterable.unroll)
        self.push_scope("for", node)
        self.scopes[-1].names[node.target.id] = Scalar(var, loop=True)
        self.loop_depth += 1
        self.statements(node.body)
        self.loop_depth -= 1
        self.pop_scope()
        self.builder.close_block(block)

    # ---- expressions ------------------------------------------------------------------------

    def expr(self, node: ast.expr):
        saved = self.node
        self.node = node
        kind = type(node)
        if kind in _UNSUPPORTED_EXPRESSIONS:
            raise self.error(f"{_UNSUPPORTED_EXPRESSIONS[kind]} are not supported in a kernel",
                             node)
        method = getattr(self, f"expr_{kind.__name__}", None)
        if method is None:
            raise self.error(f"{kind.__name__} expressions are not supported in a kernel", node)
        try:
            value = method(node)
        except _CORE_ERRORS as error:
            raise self.error(str(error), node) from None
        self.node = saved
        return value

    def expr_Constant(self, node: ast.Constant):
        if not isinstance(node.value, (bool, int, float, str, type(None))):
            raise self.error(f"{type(node.value).__name__} constants are not supported", node)
        return node.value

    def expr_Name(self, node: ast.Name):
        return self.lookup(node.id, node)

    def expr_Tuple(self, node: ast.Tuple):
        return tuple(self.expr(e) for e in node.elts)

    def expr_List(self, node: ast.List):
        return [self.expr(e) for e in node.elts]

    def expr_Attribute(self, node: ast.Attribute):
        value = self.expr(node.value)
        name = node.attr
        if isinstance(value, types.ModuleType):
            if not hasattr(value, name):
                raise self.error(f"module '{value.__name__}' has no attribute '{name}'", node)
            return getattr(value, name)  # checked where it is used
        if isinstance(value, Tensor):
            if name == "shape":
                if value.scope == _core.Scope.Global:
                    return tuple(self.from_expr(e) for e in value.type.global_shape)
                return tuple(value.shape)
            if name == "dtype":
                return value.dtype
            if name == "ndim":
                return value.rank
            if name == "T":
                return self.builtin_trans(value)
        elif isinstance(value, Pointer) and name == "dtype":
            return value.dtype
        elif isinstance(value, Scalar) and name == "dtype":
            return value.expr.type
        elif is_constant(value) and not name.startswith("_") and hasattr(value, name):
            result = getattr(value, name)
            if is_constant(result):
                return result
        raise self.error(f"{self.describe(value)} has no attribute '{name}' in a kernel", node)

    def from_expr(self, expr: _core.Expr):
        constant = expr.as_int if expr.kind == "constant" and expr.type.is_integer else None
        return constant if constant is not None else Scalar(expr)

    def expr_Subscript(self, node: ast.Subscript):
        value = self.expr(node.value)
        index_node = node.slice
        if isinstance(value, Tensor):
            return self.subscript_tensor(value, index_node, node)
        if isinstance(value, Pointer):
            raise self.error(f"'{value.name}' is a pointer: make a tensor of it with "
                             f"nb.view({value.name}, shape) and index that", node)
        index = self.expr(index_node)
        if is_constant(value) and is_constant(index):
            try:
                return value[index]
            except (IndexError, KeyError, TypeError) as error:
                raise self.error(str(error), node) from None
        raise self.error(f"{self.describe(value)} cannot be indexed by {self.describe(index)}",
                         node)

    def subscript_tensor(self, tensor: Tensor, index_node: ast.expr, node: ast.expr):
        items = index_node.elts if isinstance(index_node, ast.Tuple) else [index_node]
        if len(items) > tensor.rank:
            raise self.error(f"{tensor.describe()} has {tensor.rank} dimensions, indexed with "
                             f"{len(items)}", node)
        offsets, extents = [], []
        for d in range(tensor.rank):
            item = items[d] if d < len(items) else None
            static = self.static_extent(tensor, d)
            if item is None or isinstance(item, ast.Slice):
                if item is not None and item.step is not None:
                    raise self.error("slices of tensors take no step", item)
                lower = self.expr(item.lower) if item is not None and item.lower else 0
                upper = self.expr(item.upper) if item is not None and item.upper else None
                if upper is None:
                    extent = static - lower if static is not None and isinstance(lower, int) \
                        else None
                else:
                    extent = self.constant_difference(upper, lower, item)
            else:
                lower = self.expr(item)
                extent = 1
            if not (isinstance(lower, int) or isinstance(lower, Scalar)) \
                    or isinstance(lower, bool):
                raise self.error(f"an index is an integer, not {self.describe(lower)}",
                                 item if item is not None else node)
            if isinstance(lower, Scalar) and not lower.expr.type.is_integer:
                raise self.error(f"an index is an integer, not {lower.expr.type.name}", item)
            if extent is not None and extent <= 0:
                raise self.error(f"the slice of dimension {d} is empty (extent {extent})",
                                 item if item is not None else node)
            offsets.append(lower)
            extents.append(extent)
        if tensor.scope != _core.Scope.Register:
            return Box(tensor, offsets, extents)
        if not all(isinstance(o, int) for o in offsets):
            raise self.error("register tensors are sliced at constant offsets", node)
        result = self.define_register(tensor.dtype, extents, "slice", node)
        self.builder.emit("slice", self.location(node), result.index, tensor.index, offsets)
        return result

    def static_extent(self, tensor: Tensor, d: int) -> Optional[int]:
        if tensor.scope != _core.Scope.Global:
            return tensor.shape[d]
        extent = tensor.type.global_shape[d]
        return extent.as_int if extent.kind == "constant" else None

    def constant_difference(self, upper, lower, node) -> int:
        """upper - lower, which must be known while compiling: the extent of a slice."""
        if isinstance(upper, int) and isinstance(lower, int):
            return upper - lower
        like = next(v.expr.type for v in (upper, lower) if isinstance(v, Scalar))
        difference = _core.Expr.binary(_core.BinaryOp.Sub, self.to_expr(upper, like),
                                       self.to_expr(lower, like))
        simplified = _core.simplify(difference, self.facts)
        if simplified.kind == "constant":
            return simplified.as_int
        raise self.error(f"the extent of a slice must be known while compiling, and "
                         f"{simplified} is not: write start:start + size with a constant size",
                         node)

    def expr_BinOp(self, node: ast.BinOp):
        left = self.expr(node.left)
        right = self.expr(node.right)
        self.node = node
        return self.binary(node.op, left, right, node)

    def binary(self, op: ast.operator, left, right, node):
        name, scalar_op, tensor_op, python_op = _BINARY_OPS.get(type(op), (None,) * 4)
        if name is None:
            raise self.error(f"operator {type(op).__name__} is not supported", node)
        if isinstance(left, Box) or isinstance(right, Box):
            raise self.error("a box of a global or shared tensor is not a value: load it with "
                             "nb.load(…) first", node)
        if is_constant(left) and is_constant(right):
            try:
                return python_op(left, right)
            except Exception as error:  # the kernel's own arithmetic
                raise self.error(f"{error}", node) from None
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            if tensor_op is None:
                raise self.error(f"operator '{name}' is not defined on tensors", node)
            return self.elementwise(tensor_op, [left, right], node)
        if not all(isinstance(v, Scalar) or is_number(v) for v in (left, right)):
            raise self.error(f"unsupported operands for {name}: {self.describe(left)} and "
                             f"{self.describe(right)}", node)
        return self.scalar_binary(name, scalar_op, left, right, node)

    def scalar_binary(self, name, op, left, right, node) -> Scalar:
        like = next(v.expr.type for v in (left, right) if isinstance(v, Scalar))
        a, b = self.to_expr(left, like), self.to_expr(right, like)
        if op is None:
            raise self.error(f"operator '{name}' is not supported on run-time scalars", node)
        if name == "div" and not like.is_float:
            raise self.error("'/' divides floats; integers divide with '//' (rounding toward "
                             "negative infinity)", node)
        if name in ("floordiv", "mod") and like.is_float:
            raise self.error(f"'{'//' if name == 'floordiv' else '%'}' is for integers", node)
        if like == _u1 and op in (_core.BinaryOp.BitAnd, _core.BinaryOp.BitOr):
            op = _core.BinaryOp.And if op == _core.BinaryOp.BitAnd else _core.BinaryOp.Or
        return Scalar(_core.Expr.binary(op, a, b))

    def expr_UnaryOp(self, node: ast.UnaryOp):
        value = self.expr(node.operand)
        op = type(node.op)
        if is_constant(value):
            return {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
                    ast.Invert: operator.invert}[op](value)
        if op is ast.UAdd:
            return value
        if isinstance(value, Tensor):
            if op is ast.USub:
                return self.elementwise(_core.ElementwiseOp.Neg, [value], node)
            raise self.error(f"operator {op.__name__} is not defined on tensors", node)
        if isinstance(value, Scalar):
            if op is ast.USub:
                return Scalar(_core.Expr.unary(_core.UnaryOp.Neg, value.expr))
            if op is ast.Not:
                return Scalar(_core.Expr.unary(_core.UnaryOp.Not, self.condition(value, node)))
            return Scalar(_core.Expr.unary(_core.UnaryOp.BitNot, value.expr))
        raise self.error(f"unary {op.__name__} is not defined on {self.describe(value)}", node)

    def expr_BoolOp(self, node: ast.BoolOp):
        """`and`/`or`: constants decide while compiling (False in an `and`, True in an `or`)
        or drop out; run-time conditions combine into one u1 expression."""
        is_and = isinstance(node.op, ast.And)
        combined, value = None, None
        for operand_node in node.values:
            value = self.expr(operand_node)
            if is_constant(value):
                if bool(value) != is_and:
                    return value
                continue
            condition = self.condition(value, operand_node)
            combined = condition if combined is None else _core.Expr.binary(
                _core.BinaryOp.And if is_and else _core.BinaryOp.Or, combined, condition)
        return Scalar(combined) if combined is not None else value

    def expr_Compare(self, node: ast.Compare):
        if len(node.ops) != 1:
            raise self.error("chained comparisons are not supported; combine them with 'and'",
                             node)
        left = self.expr(node.left)
        right = self.expr(node.comparators[0])
        self.node = node
        name, scalar_op, tensor_op, python_op = _COMPARE_OPS.get(type(node.ops[0]), (None,) * 4)
        if name is None:
            raise self.error(f"comparison {type(node.ops[0]).__name__} is not supported", node)
        if is_constant(left) and is_constant(right):
            return python_op(left, right)
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            return self.elementwise(tensor_op, [left, right], node)
        if not all(isinstance(v, Scalar) or is_number(v) for v in (left, right)):
            raise self.error(f"cannot compare {self.describe(left)} and {self.describe(right)}",
                             node)
        return self.scalar_binary(name, scalar_op, left, right, node)

    def expr_IfExp(self, node: ast.IfExp):
        condition = self.expr(node.test)
        if is_constant(condition):
            return self.expr(node.body if condition else node.orelse)
        if_true, if_false = self.expr(node.body), self.expr(node.orelse)
        self.node = node
        if isinstance(condition, Tensor):
            return self.elementwise(_core.ElementwiseOp.Where, [condition, if_true, if_false],
                                    node)
        expr = self.condition(condition, node.test)
        if isinstance(if_true, Tensor) or isinstance(if_false, Tensor):
            return self.elementwise(_core.ElementwiseOp.Where, [Scalar(expr), if_true, if_false],
                                    node)
        like = next((v.expr.type for v in (if_true, if_false) if isinstance(v, Scalar)), None)
        if like is None:
            like = f32 if any(isinstance(v, float) for v in (if_true, if_false)) else i32
        return Scalar(_core.Expr.select(expr, self.to_expr(if_true, like),
                                        self.to_expr(if_false, like)))

    def call_arguments(self, node: ast.Call):
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                value = self.expr(arg.value)
                if not isinstance(value, (tuple, list)):
                    raise self.error("only tuples can be unpacked with *", arg)
                args.extend(value)
            else:
                args.append(self.expr(arg))
        kwargs = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.error("**kwargs are not supported in a kernel", keyword.value)
            kwargs[keyword.arg] = self.expr(keyword.value)
        return args, kwargs

    def expr_Call(self, node: ast.Call):
        function = self.expr(node.func)
        args, kwargs = self.call_arguments(node)
        self.node = node
        builtin = getattr(function, "__nibble_builtin__", None)
        if builtin is not None:
            return self.call_builtin(builtin, args, kwargs, node)
        if isinstance(function, DataType):
            return self.typed_scalar(function, args, kwargs, node)
        if any(function is allowed for allowed in _CALLABLE_CONSTRUCTORS):
            if not is_constant(args) or not is_constant(list(kwargs.values())):
                raise self.error(f"{function.__name__}(…) takes compile-time arguments", node)
            return function(*args, **kwargs)
        python = next((name for name in _PYTHON_BUILTINS
                       if function is getattr(builtins, name)), None)
        if python is not None:
            return getattr(self, f"python_{python}")(args, kwargs, node)
        if callable(function) and getattr(function, "__module__", None) == "math":
            if is_constant(args) and not kwargs:
                return function(*args)
            raise self.error(f"math.{function.__name__} takes compile-time numbers here; on "
                             "tensors use nb.exp2, nb.log2, …", node)
        raise self.error(f"{self.describe(function)} cannot be called inside a kernel (only "
                         "nibble's functions, dtypes, and Python's range, min, max, abs, len, "
                         "int, float, print)", node)

    def describe(self, value) -> str:
        if isinstance(value, Tensor):
            return value.describe()
        if isinstance(value, Scalar):
            return f"a run-time {value.expr.type.name} scalar"
        if isinstance(value, Pointer):
            return f"pointer '{value.name}'"
        if isinstance(value, Box):
            return f"a box of {value.tensor.describe()}"
        if isinstance(value, types.ModuleType):
            return f"module '{value.__name__}'"
        if getattr(value, "__nibble_builtin__", None):
            return f"nibble.{value.__nibble_builtin__}"
        if isinstance(value, DataType):
            return f"dtype {value.name}"
        if is_constant(value):
            return repr(value)
        return f"a {type(value).__name__}"

    # ---- conversions --------------------------------------------------------------------------

    def to_expr(self, value, like: Optional[DataType] = None) -> _core.Expr:
        """A scalar expression of a value; numbers take the type `like` (i32 / f32 without)."""
        if isinstance(value, Scalar):
            return value.expr
        if isinstance(value, bool):
            return _core.Expr.boolean(value)
        if isinstance(value, int):
            type_ = like or i32
            if type_.is_float:
                return _core.Expr.float_constant(float(value), type_)
            if type_.bits >= 8 and not (type_.lowest_finite <= value <= type_.largest_finite):
                raise self.error(f"{value} does not fit in {type_.name}")
            return _core.Expr.int_constant(value, type_)
        if isinstance(value, float):
            type_ = like or f32
            if not type_.is_float:
                raise self.error(f"the float {value} meets an integer ({type_.name}) expression")
            return _core.Expr.float_constant(value, type_)
        raise self.error(f"expected a scalar, found {self.describe(value)}")

    def to_exprs(self, values: list) -> list[_core.Expr]:
        """Offsets or extents: numbers take the type of the first expression among them."""
        like = next((v.expr.type for v in values if isinstance(v, Scalar)), None)
        for value in values:
            if not isinstance(value, (int, Scalar)) or isinstance(value, bool):
                raise self.error(f"expected an integer, found {self.describe(value)}")
        return [self.to_expr(v, like) for v in values]

    def shape(self, value, what: str) -> list[int]:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (tuple, list)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self.error(f"{what} is a list of compile-time integers, not "
                             f"{self.describe(value)}")
        if not value or any(v <= 0 for v in value):
            raise self.error(f"{what} {list(value)} must have positive extents")
        return list(value)

    def dtype_of(self, value, what: str) -> DataType:
        if isinstance(value, str):
            return parse_dtype(value)
        if not isinstance(value, DataType):
            raise self.error(f"{what} is a dtype such as nb.f16, not {self.describe(value)}")
        return value

    def typed_scalar(self, type_: DataType, args, kwargs, node) -> Scalar:
        if len(args) != 1 or kwargs:
            raise self.error(f"nb.{type_.name}(value) takes one value", node)
        value = args[0]
        if isinstance(value, Scalar):
            if value.expr.type == type_:
                return value
            return Scalar(_core.Expr.cast(value.expr, type_))
        if is_number(value):
            return Scalar(self.to_expr(value if type_.is_float else int(value), type_))
        raise self.error(f"nb.{type_.name}(…) converts scalars, not {self.describe(value)}; "
                         "tensors convert with nb.cast", node)

    # ---- tensors ------------------------------------------------------------------------------

    def define_register(self, dtype_: DataType, shape: list[int], fallback: str, node,
                        layout=None) -> Tensor:
        type_ = _core.TensorType.register_tile(dtype_, list(shape), layout)
        return Tensor(self.builder.define_tensor(type_, fallback, self.location(node)),
                      self.builder)

    def alloc_register(self, shape, dtype_, fill, fallback, layout, node) -> Tensor:
        result = self.define_register(dtype_, shape, fallback, node, as_core_layout(layout))
        self.builder.emit("alloc_register", self.location(node), result.index, fill)
        return result

    def register_operand(self, value, what: str, node) -> Tensor:
        if isinstance(value, Box):
            raise self.error(f"{what}: a box of {value.tensor.describe()} is not a value; load it "
                             "with nb.load(…) first", node)
        if not isinstance(value, Tensor):
            raise self.error(f"{what}: expected a tensor, found {self.describe(value)}", node)
        if value.scope != _core.Scope.Register:
            raise self.error(f"{what}: {value.describe()} is in "
                             f"{'global' if value.scope == _core.Scope.Global else 'shared'} "
                             "memory; load it with nb.load(…) first", node)
        return value

    def repeat(self, tensor: Tensor, count: int, axis: int, node) -> Tensor:
        shape = tensor.shape
        if not 0 <= axis < len(shape):
            raise self.error(f"repeat: axis {axis} is not a dimension of {tensor.describe()}",
                             node)
        if count < 1:
            raise self.error(f"repeat: count {count} must be positive", node)
        shape[axis] *= count
        result = self.define_register(tensor.dtype, shape, "repeat", node)
        self.builder.emit("repeat", self.location(node), result.index, tensor.index, axis, count)
        return result

    def broadcast_to(self, tensor: Tensor, shape: list[int], node) -> Tensor:
        for d, extent in enumerate(shape):
            if tensor.shape[d] != extent:
                tensor = self.repeat(tensor, extent, d, node)
        return tensor

    def elementwise(self, op: _core.ElementwiseOp, operands: list, node) -> Tensor:
        op_name = str(op).split(".")[-1].lower()
        is_where = op == _core.ElementwiseOp.Where
        shape, value_dtype = None, None
        for position, operand in enumerate(operands):
            if isinstance(operand, (Tensor, Box)):
                tensor = self.register_operand(operand, op_name, node)
                if shape is None:
                    shape = tensor.shape
                elif len(shape) != tensor.rank:
                    raise self.error(f"{op_name}: operands of shapes {shape} and {tensor.shape} "
                                     "do not broadcast (ranks differ; reshape first)", node)
                else:
                    for d, extent in enumerate(tensor.shape):
                        if extent == shape[d] or extent == 1:
                            continue
                        if shape[d] != 1:
                            raise self.error(f"{op_name}: operands of shapes {shape} and "
                                             f"{tensor.shape} do not broadcast (dimension {d}: "
                                             f"{shape[d]} vs {extent})", node)
                        shape[d] = extent
                condition = is_where and position == 0
                if condition and tensor.dtype != _u1:
                    raise self.error(f"where: the condition is u1 (a comparison), not "
                                     f"{tensor.dtype.name}", node)
                if not condition:
                    if value_dtype is None:
                        value_dtype = tensor.dtype
                    elif tensor.dtype != value_dtype:
                        raise self.error(f"{op_name}: operands are {value_dtype.name} and "
                                         f"{tensor.dtype.name}; convert one with nb.cast", node)
            elif not (isinstance(operand, Scalar) or is_number(operand)):
                raise self.error(f"{op_name}: {self.describe(operand)} is not an operand", node)
        if shape is None:
            raise self.error(f"{op_name}: no operand is a tensor", node)
        if value_dtype is None:
            value_dtype = next((o.expr.type for position, o in enumerate(operands)
                                if isinstance(o, Scalar) and not (is_where and position == 0)),
                               None)
            if value_dtype is None:
                raise self.error(f"{op_name}: the values are numbers without a type; make one "
                                 "a tensor or a typed scalar", node)
        core_operands = []
        for position, operand in enumerate(operands):
            if isinstance(operand, Tensor):
                core_operands.append(self.broadcast_to(operand, shape, node).index)
                continue
            target = _u1 if is_where and position == 0 else value_dtype
            expr = self.to_expr(operand, target)
            if expr.type != target:
                expr = _core.Expr.cast(expr, target)
            core_operands.append(expr)
        comparison = op in (_core.ElementwiseOp.Eq, _core.ElementwiseOp.Ne,
                            _core.ElementwiseOp.Lt, _core.ElementwiseOp.Le,
                            _core.ElementwiseOp.Gt, _core.ElementwiseOp.Ge)
        result = self.define_register(_u1 if comparison else value_dtype, shape,
                                      _FALLBACK_NAMES.get(op, op_name), node)
        self.builder.emit("elementwise", self.location(node), result.index, op, core_operands)
        return result

    def reduce(self, x, axis, op: _core.ReduceOp, node) -> Tensor:
        tensor = self.register_operand(x, f"reduce {str(op).split('.')[-1].lower()}", node)
        if not isinstance(axis, int) or not 0 <= axis < tensor.rank:
            raise self.error(f"reduce: axis {axis!r} is not a dimension of {tensor.describe()}",
                             node)
        shape = tensor.shape
        shape[axis] = 1
        result = self.define_register(tensor.dtype, shape,
                                      f"reduce_{str(op).split('.')[-1].lower()}", node)
        self.builder.emit("reduce", self.location(node), result.index, tensor.index, op, axis)
        return result

    def emit_dot(self, acc: Tensor, a, b, node) -> Tensor:
        acc = self.register_operand(acc, "dot: the accumulator", node)
        a = self.register_operand(a, "dot: a", node)
        b = self.register_operand(b, "dot: b", node)
        self.builder.emit("dot", self.location(node), acc.index, a.index, b.index)
        return acc

    # ---- built-ins ----------------------------------------------------------------------------

    def call_builtin(self, name: str, args, kwargs, node):
        method = getattr(self, f"builtin_{name}")
        try:
            inspect.signature(method).bind(*args, **kwargs)
        except TypeError as error:
            raise self.error(f"nb.{name}(): {error}", node) from None
        return method(*args, **kwargs)

    def builtin_launch(self, grid=None, warps=4, shared_memory=0, cluster=None):
        if len(self.scopes) > 1:
            raise self.error("nb.launch(…) belongs at the top level of the kernel")
        if self.launched:
            raise self.error("nb.launch(…) is given twice")
        if grid is not None:
            grid = list(grid) if isinstance(grid, (tuple, list)) else [grid]
            if not 1 <= len(grid) <= 3:
                raise self.error(f"the grid has 1 to 3 dimensions, not {len(grid)}")
            self.builder.grid = [self.to_expr(g) for g in grid]
            self.launched = True
        if not isinstance(warps, int) or warps < 1:
            raise self.error(f"warps is a positive compile-time integer, not {warps!r}")
        self.builder.warps = warps
        self.builder.shared_memory_bytes = int(shared_memory)
        if cluster is not None:
            cluster = list(cluster) if isinstance(cluster, (tuple, list)) else [cluster]
            if not 1 <= len(cluster) <= 3 or not all(isinstance(c, int) and c >= 1
                                                      for c in cluster):
                raise self.error(f"cluster is 1 to 3 positive compile-time integers (blocks per "
                                 f"cluster along the grid's axes), not {cluster!r}")
            self.builder.cluster = cluster + [1] * (3 - len(cluster))

    def builtin_block_id(self, axis):
        if axis not in (0, 1, 2):
            raise self.error(f"block_id: axis {axis!r} is not 0, 1 or 2")
        return Scalar(_core.Expr.block_id(axis))

    def builtin_grid_dim(self, axis):
        if axis not in (0, 1, 2):
            raise self.error(f"grid_dim: axis {axis!r} is not 0, 1 or 2")
        return Scalar(_core.Expr.grid_dim(axis))

    def builtin_cdiv(self, a, b):
        if is_constant(a) and is_constant(b):
            return -(-a // b)
        return self.scalar_binary(
            "floordiv", _core.BinaryOp.FloorDiv,
            self.scalar_binary("add", _core.BinaryOp.Add, a,
                               b - 1 if isinstance(b, int) else
                               self.scalar_binary("sub", _core.BinaryOp.Sub, b, 1, self.node),
                               self.node),
            b, self.node)

    def builtin_multiple_of(self, parameter, divisor):
        if not (isinstance(parameter, Scalar) and parameter.expr.kind == "param"):
            raise self.error("multiple_of: the first argument is an integer parameter")
        if not isinstance(divisor, int) or divisor < 1:
            raise self.error(f"multiple_of: the divisor is a positive constant, not {divisor!r}")
        param = self.builder.params[parameter.expr.index]
        param.divisor = divisor
        self.builder.params[parameter.expr.index] = param
        self.facts.set_divisor(parameter.expr, divisor)

    def builtin_static_assert(self, condition, message=""):
        if not is_constant(condition):
            raise self.error("static_assert checks compile-time conditions")
        if not condition:
            raise self.error(f"static_assert failed{': ' + message if message else ''}")

    def builtin_view(self, pointer, shape, strides=None):
        if not isinstance(pointer, Pointer):
            raise self.error(f"view: the first argument is a pointer parameter, not "
                             f"{self.describe(pointer)}")
        shape = list(shape) if isinstance(shape, (tuple, list)) else [shape]
        extents = self.to_exprs(shape)
        if strides is None:
            stride_exprs = [None] * len(extents)
            for d in reversed(range(len(extents))):
                if d == len(extents) - 1:
                    stride_exprs[d] = _core.Expr.int_constant(1, extents[d].type)
                    continue
                inner, extent = stride_exprs[d + 1], extents[d + 1]
                if inner.kind == "constant" and extent.kind == "constant":
                    stride_exprs[d] = _core.Expr.int_constant(inner.as_int * extent.as_int,
                                                              extent.type)
                elif inner.kind == "constant" and inner.as_int == 1:
                    stride_exprs[d] = extent
                else:
                    stride_exprs[d] = _core.Expr.binary(_core.BinaryOp.Mul, inner, extent)
        else:
            strides = list(strides) if isinstance(strides, (tuple, list)) else [strides]
            if len(strides) != len(shape):
                raise self.error(f"view: {len(shape)} extents but {len(strides)} strides")
            stride_exprs = self.to_exprs(strides)
        type_ = _core.TensorType.global_view(pointer.dtype, extents, stride_exprs)
        result = Tensor(self.builder.define_tensor(type_, pointer.name.upper(),
                                                   self.location()), self.builder)
        self.builder.emit("global_view", self.location(), result.index, pointer.index)
        self.view_params[result.index] = pointer.index
        return result

    def builtin_shared(self, shape, dtype, swizzle=None, layout=None):
        shape = self.shape(shape, "shared: the shape")
        dtype_ = self.dtype_of(dtype, "shared: dtype")
        core_layout = as_core_layout(layout) or _core.Layout.row_major(shape, "smem")
        type_ = _core.TensorType.shared_tile(dtype_, shape, core_layout, parse_swizzle(swizzle))
        result = Tensor(self.builder.define_tensor(type_, "smem", self.location()), self.builder)
        self.builder.emit("alloc_shared", self.location(), result.index)
        return result

    def builtin_zeros(self, shape, dtype=None, layout=None):
        return self.alloc_register(self.shape(shape, "zeros: the shape"),
                                   self.dtype_of(dtype or f32, "zeros: dtype"), 0.0, "zeros",
                                   layout, self.node)

    def builtin_full(self, shape, value, dtype=None, layout=None):
        if not is_number(value):
            raise self.error(f"full: the value is a compile-time number, not "
                             f"{self.describe(value)}")
        return self.alloc_register(self.shape(shape, "full: the shape"),
                                   self.dtype_of(dtype or f32, "full: dtype"), float(value),
                                   "full", layout, self.node)

    def builtin_empty(self, shape, dtype=None, layout=None):
        return self.alloc_register(self.shape(shape, "empty: the shape"),
                                   self.dtype_of(dtype or f32, "empty: dtype"), None, "regs",
                                   layout, self.node)

    def box_of(self, value, offsets, shape, what: str) -> Box:
        if offsets is None and shape is None:
            if isinstance(value, Box):
                return value
            if isinstance(value, Tensor) and value.scope != _core.Scope.Register:
                return self.subscript_all(value)
            raise self.error(f"{what}: expected a box of a global or shared tensor such as "
                             f"X[m0:m0 + 64, :], found {self.describe(value)}")
        if not isinstance(value, Tensor) or value.scope == _core.Scope.Register:
            raise self.error(f"{what}: offsets= and shape= go with a global or shared tensor")
        offsets = list(offsets) if isinstance(offsets, (tuple, list)) else [offsets]
        extents = self.shape(shape, f"{what}: the shape") if shape is not None \
            else [None] * len(offsets)
        if len(offsets) != value.rank or len(extents) != value.rank:
            raise self.error(f"{what}: {value.describe()} has {value.rank} dimensions")
        return Box(value, offsets, extents)

    def subscript_all(self, tensor: Tensor) -> Box:
        extents = [self.static_extent(tensor, d) for d in range(tensor.rank)]
        return Box(tensor, [0] * tensor.rank, extents)

    def builtin_load(self, tile, other=0.0, offsets=None, shape=None, block=None):
        box = self.box_of(tile, offsets, shape, "load")
        if any(e is None for e in box.extents):
            raise self.error("load: every extent of the box must be known while compiling "
                             "(write start:start + size)")
        if not is_number(other):
            raise self.error("load: other is a compile-time number")
        location = self.location()
        result = self.define_register(box.tensor.dtype, box.extents, "load", self.node)
        offsets = self.to_exprs(box.offsets)
        if block is not None:
            if box.tensor.scope != _core.Scope.Shared:
                raise self.error("load: block= reads a shared tile of another block of the "
                                 "cluster; this is a global tensor")
            self.builder.emit("load_peer_shared", location, result.index, box.tensor.index,
                              self.to_expr(block), offsets)
        elif box.tensor.scope == _core.Scope.Global:
            self.builder.emit("load_global", location, result.index, box.tensor.index, offsets,
                              float(other))
        else:
            if other != 0.0:
                raise self.error("load: other applies to global tensors (shared loads are not "
                                 "masked)")
            self.builder.emit("load_shared", location, result.index, box.tensor.index, offsets)
        return result

    def _check_box_extents(self, box: Box, shape: list[int], what: str) -> None:
        for d, (extent, value_extent) in enumerate(zip(box.extents, shape)):
            if extent is not None and extent != value_extent:
                raise self.error(f"{what}: the box has extents {box.extents} but the value has "
                                 f"shape {shape} (dimension {d})")

    def builtin_store(self, tile, value, offsets=None):
        box = self.box_of(tile, offsets, None, "store")
        value = self.register_operand(value, "store: the value", self.node)
        if len(box.extents) != value.rank:
            raise self.error(f"store: the box has {len(box.extents)} dimensions, the value "
                             f"{value.rank}")
        self._check_box_extents(box, value.shape, "store")
        factory = "store_global" if box.tensor.scope == _core.Scope.Global else "store_shared"
        if factory == "store_global":
            self.stored_params.add(self.view_params[box.tensor.index])
        self.builder.emit(factory, self.location(), box.tensor.index, self.to_exprs(box.offsets),
                          value.index)

    def builtin_atomic_add(self, tile, value):
        box = self.box_of(tile, None, None, "atomic_add")
        value = self.register_operand(value, "atomic_add: the value", self.node)
        if box.tensor.scope != _core.Scope.Global:
            raise self.error("atomic_add: the destination is a global tensor")
        self._check_box_extents(box, value.shape, "atomic_add")
        self.stored_params.add(self.view_params[box.tensor.index])
        self.builder.emit("atomic_add", self.location(), box.tensor.index,
                          self.to_exprs(box.offsets), value.index)

    def builtin_fetch_add(self, element, value=1):
        box = self.box_of(element, None, None, "fetch_add")
        if box.tensor.scope != _core.Scope.Global:
            raise self.error("fetch_add: the counter is an element of a global tensor")
        if any(extent != 1 for extent in box.extents):
            raise self.error("fetch_add: the counter is one element (C[i, j]), not a box")
        type_ = box.tensor.dtype
        if type_.name not in ("i32", "u32"):
            raise self.error(f"fetch_add: the counter holds {type_.name}, not i32 or u32")
        self.stored_params.add(self.view_params[box.tensor.index])
        var = self.builder.fetch_add("arrived", box.tensor.index, self.to_exprs(box.offsets),
                                     self.to_expr(value, type_), type_, self.location())
        return Scalar(var)

    def builtin_copy_async(self, destination, source, threads=None, in_bounds=()):
        destination = self.box_of(destination, None, None, "copy_async: the destination")
        source = self.box_of(source, None, None, "copy_async: the source")
        if destination.tensor.scope != _core.Scope.Shared:
            raise self.error("copy_async: the destination is a shared tile")
        if source.tensor.scope != _core.Scope.Global:
            raise self.error("copy_async: the source is a global tensor")
        shape = source.extents
        if any(e is None for e in shape):
            shape = [s if s is not None else d for s, d in zip(shape, destination.extents)]
        if any(e is None for e in shape):
            raise self.error("copy_async: the extents of the copied box must be known")
        self._check_box_extents(destination, shape, "copy_async")
        if isinstance(in_bounds, int):
            in_bounds = (in_bounds,)
        if not all(isinstance(d, int) and 0 <= d < len(shape) for d in in_bounds):
            raise self.error(f"copy_async: in_bounds lists dimensions of the box (0 to "
                             f"{len(shape) - 1}), not {in_bounds!r}")
        self.builder.emit("copy_async", self.location(), destination.tensor.index,
                          self.to_exprs(destination.offsets), source.tensor.index,
                          self.to_exprs(source.offsets), shape, as_core_layout(threads),
                          list(in_bounds))

    def builtin_commit(self):
        self.builder.emit("commit_group", self.location())

    def builtin_wait(self, pending=0):
        if not isinstance(pending, int) or pending < 0:
            raise self.error(f"wait: pending is a non-negative constant, not {pending!r}")
        self.builder.emit("wait_group", self.location(), pending)

    def builtin_barrier(self):
        self.builder.emit("barrier", self.location())

    def builtin_cluster_barrier(self):
        self.builder.emit("cluster_barrier", self.location())

    def builtin_cast(self, x, dtype):
        tensor = self.register_operand(x, "cast", self.node)
        result = self.define_register(self.dtype_of(dtype, "cast: dtype"), tensor.shape,
                                      "converted", self.node)
        self.builder.emit("cast", self.location(), result.index, tensor.index)
        return result

    def builtin_bitcast(self, x, dtype, shape):
        tensor = self.register_operand(x, "bitcast", self.node)
        result = self.define_register(self.dtype_of(dtype, "bitcast: dtype"),
                                      self.shape(shape, "bitcast: the shape"), "bitcast",
                                      self.node)
        self.builder.emit("view", self.location(), result.index, tensor.index)
        return result

    def builtin_repeat(self, x, count, axis):
        tensor = self.register_operand(x, "repeat", self.node)
        if not isinstance(count, int) or not isinstance(axis, int):
            raise self.error("repeat: count and axis are compile-time integers")
        return self.repeat(tensor, count, axis, self.node)

    def builtin_broadcast(self, x, shape):
        tensor = self.register_operand(x, "broadcast", self.node)
        shape = self.shape(shape, "broadcast: the shape")
        if len(shape) != tensor.rank or any(a != b and a != 1
                                            for a, b in zip(tensor.shape, shape)):
            raise self.error(f"broadcast: {tensor.describe()} does not broadcast to {shape}")
        return self.broadcast_to(tensor, shape, self.node)

    def builtin_permute(self, x, dims):
        tensor = self.register_operand(x, "permute", self.node)
        dims = list(dims) if isinstance(dims, (tuple, list)) else None
        if dims is None or sorted(dims) != list(range(tensor.rank)):
            raise self.error(f"permute: dims must be a permutation of 0..{tensor.rank - 1}")
        shape = [tensor.shape[d] for d in dims]
        result = self.define_register(tensor.dtype, shape, "permute", self.node)
        self.builder.emit("permute", self.location(), result.index, tensor.index, dims)
        return result

    def builtin_trans(self, x):
        tensor = self.register_operand(x, "trans", self.node)
        if tensor.rank != 2:
            raise self.error(f"trans: {tensor.describe()} is not 2-D")
        return self.builtin_permute(tensor, [1, 0])

    def builtin_reshape(self, x, shape):
        tensor = self.register_operand(x, "reshape", self.node)
        shape = self.shape(shape, "reshape: the shape")
        if math.prod(shape) != math.prod(tensor.shape):
            raise self.error(f"reshape: {tensor.describe()} has {math.prod(tensor.shape)} "
                             f"elements, shape {shape} holds {math.prod(shape)}")
        result = self.define_register(tensor.dtype, shape, "reshape", self.node)
        self.builder.emit("reshape", self.location(), result.index, tensor.index)
        return result

    def builtin_set_layout(self, x, layout):
        tensor = self.register_operand(x, "set_layout", self.node)
        entry = self.builder.tensors[tensor.index]
        entry.type = _core.TensorType.register_tile(entry.type.dtype, list(entry.type.shape),
                                                    as_core_layout(layout))

    def builtin_dot(self, a, b, acc=None):
        if acc is None:
            a_tensor = self.register_operand(a, "dot: a", self.node)
            b_tensor = self.register_operand(b, "dot: b", self.node)
            if a_tensor.rank != 2 or b_tensor.rank != 2:
                raise self.error("dot: a and b are 2-D tiles")
            accumulate = DataType.parse("i32") if a_tensor.dtype.is_integer else f32
            acc = self.alloc_register([a_tensor.shape[0], b_tensor.shape[1]], accumulate, 0.0,
                                      "dot", None, self.node)
        return self.emit_dot(acc, a, b, self.node)

    def builtin_sum(self, x, axis):
        return self.reduce(x, axis, _core.ReduceOp.Sum, self.node)

    def builtin_max(self, x, axis):
        return self.reduce(x, axis, _core.ReduceOp.Max, self.node)

    def builtin_min(self, x, axis):
        return self.reduce(x, axis, _core.ReduceOp.Min, self.node)

    def _scalar_or_tensor(self, tensor_op, scalar_op, operands):
        if any(isinstance(o, (Tensor, Box)) for o in operands):
            return self.elementwise(tensor_op, operands, self.node)
        if all(is_constant(o) for o in operands):
            return None
        like = next((o.expr.type for o in operands if isinstance(o, Scalar)), None)
        return Scalar(_core.Expr.binary(scalar_op, *(self.to_expr(o, like) for o in operands)))

    def builtin_maximum(self, a, b):
        result = self._scalar_or_tensor(_core.ElementwiseOp.Max, _core.BinaryOp.Max, [a, b])
        return builtins.max(a, b) if result is None else result

    def builtin_minimum(self, a, b):
        result = self._scalar_or_tensor(_core.ElementwiseOp.Min, _core.BinaryOp.Min, [a, b])
        return builtins.min(a, b) if result is None else result

    def _unary(self, op, x, name):
        self.register_operand(x, name, self.node)
        return self.elementwise(op, [x], self.node)

    def builtin_exp2(self, x):
        return self._unary(_core.ElementwiseOp.Exp2, x, "exp2")

    def builtin_exp(self, x):
        scaled = self.elementwise(_core.ElementwiseOp.Mul,
                                  [self.register_operand(x, "exp", self.node), _LOG2E], self.node)
        return self.elementwise(_core.ElementwiseOp.Exp2, [scaled], self.node)

    def builtin_log2(self, x):
        return self._unary(_core.ElementwiseOp.Log2, x, "log2")

    def builtin_rsqrt(self, x):
        return self._unary(_core.ElementwiseOp.Rsqrt, x, "rsqrt")

    def builtin_abs(self, x):
        if is_constant(x):
            return builtins.abs(x)
        return self._unary(_core.ElementwiseOp.Abs, x, "abs")

    def builtin_fma(self, a, b, c):
        return self.elementwise(_core.ElementwiseOp.Fma, [a, b, c], self.node)

    def builtin_where(self, condition, a, b):
        if isinstance(condition, Scalar):
            condition = Scalar(self.condition(condition, self.node))
        return self.elementwise(_core.ElementwiseOp.Where, [condition, a, b], self.node)

    def builtin_shuffle(self, x, mode, lane):
        tensor = self.register_operand(x, "shuffle", self.node)
        modes = {"xor": _core.ShuffleMode.Xor, "up": _core.ShuffleMode.Up,
                 "down": _core.ShuffleMode.Down, "index": _core.ShuffleMode.Index}
        if mode not in modes:
            raise self.error(f"shuffle: mode is one of {', '.join(modes)}, not {mode!r}")
        result = self.define_register(tensor.dtype, tensor.shape, "shuffled", self.node)
        self.builder.emit("shuffle", self.location(), result.index, tensor.index, modes[mode],
                          self.to_expr(lane, i32))
        return result

    def builtin_range(self, start, stop=None, step=1, unroll=0):
        if stop is None:
            start, stop = 0, start
        for value in (start, stop, step):
            if not (isinstance(value, (int, Scalar))) or isinstance(value, bool):
                raise self.error(f"range: bounds are integers, not {self.describe(value)}")
        if not isinstance(unroll, int) or unroll < 0:
            raise self.error("range: unroll is a non-negative constant")
        return DeviceRange(start, stop, step, unroll)

    def builtin_static_range(self, start, stop=None, step=1):
        if stop is None:
            start, stop = 0, start
        if not all(isinstance(v, int) for v in (start, stop, step)):
            raise self.error("static_range: bounds are compile-time integers")
        return StaticRange(builtins.range(start, stop, step))

    def builtin_device_print(self, label, value=None):
        if not isinstance(label, str):
            raise self.error("print: the label is a string")
        if value is None:
            self.builder.emit("print", self.location(), label, None, None)
        elif isinstance(value, Tensor):
            self.builder.emit("print", self.location(), label, value.index, None)
        else:
            self.builder.emit("print", self.location(), label, None, self.to_expr(value))

    # ---- Python's built-ins ---------------------------------------------------------------------

    def python_range(self, args, kwargs, node):
        if kwargs or not 1 <= len(args) <= 3:
            raise self.error("range takes 1 to 3 positional arguments", node)
        if all(isinstance(a, int) for a in args):
            return StaticRange(builtins.range(*args))
        return self.builtin_range(*args)

    def python_min(self, args, kwargs, node):
        if len(args) == 2 and not kwargs:
            return self.builtin_minimum(*args)
        if is_constant(args):
            return builtins.min(*args, **kwargs)
        raise self.error("min takes two values in a kernel (nb.min(x, axis) reduces)", node)

    def python_max(self, args, kwargs, node):
        if len(args) == 2 and not kwargs:
            return self.builtin_maximum(*args)
        if is_constant(args):
            return builtins.max(*args, **kwargs)
        raise self.error("max takes two values in a kernel (nb.max(x, axis) reduces)", node)

    def python_abs(self, args, kwargs, node):
        if len(args) != 1 or kwargs:
            raise self.error("abs takes one value", node)
        return self.builtin_abs(args[0])

    def python_print(self, args, kwargs, node):
        if kwargs or not args or len(args) > 2:
            raise self.error("print(label) or print(label, value) in a kernel", node)
        return self.builtin_device_print(*args)

    def python_len(self, args, kwargs, node):
        if len(args) == 1 and isinstance(args[0], (tuple, list, str)):
            return len(args[0])
        if len(args) == 1 and isinstance(args[0], Tensor):
            return args[0].rank
        raise self.error("len takes a tuple or a tensor", node)

    def _python_conversion(self, kind, args, kwargs, node):
        if len(args) == 1 and not kwargs and is_constant(args[0]):
            return kind(args[0])
        raise self.error(f"{kind.__name__}(…) converts compile-time values; run-time scalars "
                         f"convert with nb.i32(…), nb.f32(…), …", node)

    def python_int(self, args, kwargs, node):
        return self._python_conversion(int, args, kwargs, node)

    def python_float(self, args, kwargs, node):
        return self._python_conversion(float, args, kwargs, node)

    def python_bool(self, args, kwargs, node):
        return self._python_conversion(bool, args, kwargs, node)
