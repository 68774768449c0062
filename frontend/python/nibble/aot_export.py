"""Export a specialized `@nibble.jit` kernel as a VM program file for `nibble aot`.

    python -m nibble.aot_export MODULE:KERNEL [NAME=VALUE ...] -o FILE.nbvm

MODULE is an importable module (or a path to a .py file) and KERNEL a `@nibble.jit` function in
it. Each NAME=VALUE sets a compile-time parameter (an integer, true/false) or the element type
of an untyped pointer (x=f16); the others keep their defaults. The file holds the program's text
(`kernel.specialize(...).ir`), which a manifest entry lists under "vm"; nibble aot needs no
Python after that.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pathlib
import sys
import tempfile

from .dtypes import dtype
from .jit import JITFunction


def _load_kernel(target: str) -> JITFunction:
    module_name, sep, kernel_name = target.rpartition(":")
    if not sep or not module_name or not kernel_name:
        raise SystemExit(f"aot_export: expected MODULE:KERNEL, got '{target}'")
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(pathlib.Path(module_name).stem, module_name)
        if spec is None or spec.loader is None:
            raise SystemExit(f"aot_export: cannot load '{module_name}'")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    kernel = getattr(module, kernel_name, None)
    if not isinstance(kernel, JITFunction):
        raise SystemExit(f"aot_export: {target} is not a @nibble.jit kernel")
    return kernel


def _value(text: str):
    """An integer, a boolean, or an element type name."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text, 0)
    except ValueError:
        return dtype(text)


def export(kernel: JITFunction, values: dict, output: pathlib.Path) -> None:
    """Writes the specialization's program text to `output` (atomically: temp file + rename)."""
    text = kernel.specialize(**values).ir
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=output.parent, delete=False,
                                     prefix=f".{output.name}.") as file:
        file.write(text)
    os.replace(file.name, output)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nibble.aot_export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernel", help="MODULE:KERNEL (MODULE may be a path to a .py file)")
    parser.add_argument("values", nargs="*", metavar="NAME=VALUE")
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path)
    args = parser.parse_args(argv)
    values = {}
    for item in args.values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            parser.error(f"expected NAME=VALUE, got '{item}'")
        values[name] = _value(text)
    try:
        export(_load_kernel(args.kernel), values, args.output)
    except (TypeError, ValueError) as error:  # a wrong parameter or value, named by nibble
        print(f"aot_export: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
