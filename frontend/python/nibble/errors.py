"""Errors of the Python front end.

A mistake in a kernel is a `CompileError` that names the Python file, line and column it comes
from, quotes the line and puts a caret under the spot, in the form compilers use::

    kernels.py:14:12: error: in kernel 'gemv': dot: k extent 48 of %x does not match 64 of %w
        acc += nb.dot(x, w)
               ^~~~~~~~~~~~

Errors of the VM's verifier arrive in the same form, since every statement of the program
carries the location of the Python expression that built it.
"""
from __future__ import annotations

import linecache
import re
from dataclasses import dataclass

from . import _core

InterpreterError = _core.InterpreterError


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where (1-based line and column; 0 when unknown) and what."""

    file: str
    line: int
    column: int
    message: str
    end_column: int = 0  # one past the last column of the span, on the same line

    def format(self, kernel: str) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line > 0 else "<unknown>"
        text = f"{where}: error: in kernel '{kernel}': {self.message}"
        source = linecache.getline(self.file, self.line).rstrip("\n") if self.line > 0 else ""
        if source.strip() and self.column > 0:
            width = max(1, self.end_column - self.column) if self.end_column else 1
            text += f"\n{source}\n{' ' * (self.column - 1)}^{'~' * (width - 1)}"
        return text


class CompileError(Exception):
    """A kernel the front end or the VM's verifier rejects; the message points at the source."""

    def __init__(self, kernel: str, diagnostics: list[Diagnostic]):
        self.kernel = kernel
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format(kernel) for d in diagnostics))

    @property
    def lineno(self) -> int:
        """The line of the first problem."""
        return self.diagnostics[0].line if self.diagnostics else 0


def with_source_line(message: str) -> str:
    """An interpreter message ("load_global at file:line:column, block …") with the source line
    it names and a caret under the column."""
    found = re.search(r" at (.+?):(\d+):(\d+)", message)
    if not found:
        return message
    line, column = int(found.group(2)), int(found.group(3))
    source = linecache.getline(found.group(1), line).rstrip("\n")
    if not source.strip():
        return message
    return f"{message}\n{source}\n{' ' * (column - 1)}^"
