"""`@nibble.autotune`: pick the fastest of several compile-time configurations of a kernel, once
per key, and remember the choice on disk.

    @nb.autotune(configs=[nb.Config(bn=64, bk=256), nb.Config(bn=128, bk=128)], key=["n", "k"])
    @nb.jit
    def gemv(x: nb.ptr[f16], …, n: int, k: int, bn: nb.constexpr, bk: nb.constexpr):
        ...

    gemv(x, w, s, y, n, k)     # the first launch for (n, k) benchmarks both, then runs the winner

**Configurations.** A `Config` gives values to compile-time (`nb.constexpr`) parameters of the
kernel; parameters a configuration leaves out take their defaults. Callers do not pass the
tuned parameters.

**Keys.** The key of a launch is the value of each argument named in `key` (numbers and strings
as they are; arrays by shape and dtype) plus the dtype of every pointer argument. The first
launch with a key benchmarks every configuration on the launch's own arguments (the kernel
really runs, so outputs are overwritten; name arguments a kernel accumulates into in
`reset_to_zero`), keeps the fastest, and launches it; later launches with the key launch the
winner directly.

**Timing.** `timer(run, config) -> milliseconds` measures one configuration; `run()` launches the
kernel once with it. The default (`default_timer`) uses CUDA events: torch.cuda events when
torch is imported and sees a GPU, else the runtime's driver events (`_core.EventTimer`). It
launches once to compile and warm up, estimates the time of one launch, then times batches of
launches that last about 10 ms each and returns the median time per launch. On the interpreter
(`nibble.interpret(tuned)` or NIBBLE_INTERPRET=1) it measures wall-clock time instead. Passing
`timer=` replaces it, which is how tests run without a GPU.

**Failures.** A configuration whose compile, launch or timing raises is skipped with a note on
stderr and recorded in `tuner.failures`; when every configuration fails the launch raises
`AutotuneError` listing each one's reason (or, when every one failed with the same TypeError
or ValueError, that error: the arguments are wrong whatever the configuration).

**The disk cache.** Winners are written to `<cache dir>/autotune/<kernel>-<hash>.json`, where
the cache dir is $NIBBLE_CACHE_DIR or ~/.cache/nibble (`off`: memory only, as for compiled
kernels), and the hash covers the kernel's source text, the configurations, the key and the
device fingerprint (`device_fingerprint`: the GPU's name, compute capability and driver
version, or the interpreter; and nibble's version). Another process, or another instance over
the same source, reuses the entry without benchmarking. A changed key, source, configuration
list or device finds no entry and benchmarks again. Entries are written atomically (a
temporary file renamed over the entry); unreadable entries are ignored and rewritten; failing
to write one never fails a launch.

**Progress.** While benchmarking, one line on stderr (rewritten in place on a terminal) says
which configuration runs; a final line names the winner. `progress=False` silences both (notes
about failed configurations are always written).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from . import _core
from .compiler import is_constant
from .dtypes import DataType
from .jit import JITFunction, Launcher, _interpret_requested, jit

Timer = Callable[[Callable[[], None], "Config"], float]
_FORMAT = 1


class AutotuneError(RuntimeError):
    """Every configuration failed, or tuning cannot be set up."""


class Config:
    """Values for compile-time parameters: `Config(bn=64, bk=256)` or `Config({"bn": 64})`."""

    def __init__(self, values: Optional[dict] = None, /, **kwargs):
        if values is not None and not isinstance(values, dict):
            raise TypeError(f"nibble.Config takes a dict and/or keyword arguments, not "
                            f"{type(values).__name__}")
        merged = dict(values or {})
        for name, value in kwargs.items():
            if name in merged:
                raise TypeError(f"nibble.Config: '{name}' is given twice")
            merged[name] = value
        for name, value in merged.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise TypeError(f"nibble.Config: {name!r} is not a parameter name")
            if not is_constant(value):
                raise TypeError(f"nibble.Config: '{name}' takes a number, string, dtype or "
                                f"layout, not {type(value).__name__}")
        self.values = merged

    def describe(self) -> str:
        """`bn=64, bk=256`, as the progress line and the messages show it."""
        return ", ".join(f"{name}={value!r}" for name, value in self.values.items()) or "defaults"

    def __repr__(self) -> str:
        return f"nibble.Config({self.describe()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.values == other.values

    def __hash__(self) -> int:
        return hash(repr(self))


# ---- where the benchmark runs ----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _gpu_fingerprint() -> tuple:
    info = _core.device_info()
    return (("device", info["name"]), ("compute_capability", info["compute_capability"]),
            ("driver_version", info["driver_version"]))


def device_fingerprint(on_interpreter: bool) -> dict:
    """What a benchmark's result depends on besides the kernel: the GPU's name, compute
    capability and driver version (or the interpreter and the machine), and nibble's version."""
    from . import __version__

    if on_interpreter:
        found = {"device": "nibble interpreter", "machine": platform.machine()}
    else:
        found = dict(_gpu_fingerprint())
    found["nibble"] = __version__
    return found


def cache_dir() -> Optional[str]:
    """The folder autotune entries live in, or None when the disk cache is off."""
    configured = os.environ.get("NIBBLE_CACHE_DIR")
    if configured is not None:
        return None if configured in ("", "off") else os.path.join(configured, "autotune")
    home = os.path.expanduser("~")
    return os.path.join(home, ".cache", "nibble", "autotune") if home != "~" else None


# ---- timing ------------------------------------------------------------------------------------


def wall_clock_timer(run: Callable[[], None], config: Config, repeats: int = 3) -> float:
    """Milliseconds per run by the host clock (the interpreter): one run to compile, then the
    median of `repeats` runs."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _event_pair():
    """(start(), stop() -> ms) on torch's current stream when torch is imported and has a GPU,
    else on the runtime's driver events on stream 0 (the legacy default stream, which waits
    for the work of every blocking stream)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)

        def stop() -> float:
            end.record()
            end.synchronize()
            return begin.elapsed_time(end)

        return begin.record, stop
    timer = _core.EventTimer()
    return timer.start, timer.stop


def gpu_timer(run: Callable[[], None], config: Config, batch_ms: float = 10.0,
              batches: int = 5) -> float:
    """Milliseconds per launch by CUDA events: one launch to compile and warm up, an estimate
    from 3 launches, then `batches` batches of about `batch_ms` each; the median per launch."""
    start, stop = _event_pair()
    run()
    start()
    for _ in range(3):
        run()
    estimate = max(stop() / 3, 1e-4)
    count = int(min(max(batch_ms / estimate, 1), 1000))
    times = []
    for _ in range(batches):
        start()
        for _ in range(count):
            run()
        times.append(stop() / count)
    return statistics.median(times)


def default_timer(on_interpreter: bool) -> Timer:
    return wall_clock_timer if on_interpreter else gpu_timer


# ---- the decorator -----------------------------------------------------------------------------


def autotune(configs: Sequence[Config], key: Sequence[str], *, timer: Optional[Timer] = None,
             reset_to_zero: Sequence[str] = (), progress: bool = True):
    """Decorates a @nibble.jit kernel (a plain function is jitted first) with tuning over
    `configs`, once per value of the arguments named in `key`. See the module's docstring."""

    def decorate(kernel) -> "Autotuner":
        if not isinstance(kernel, JITFunction):
            if isinstance(kernel, Autotuner):
                raise TypeError("@nibble.autotune applies once per kernel")
            if not inspect.isfunction(kernel):
                raise TypeError(f"@nibble.autotune decorates a @nibble.jit kernel, not "
                                f"{type(kernel).__name__}")
            kernel = jit(kernel)
        return Autotuner(kernel, configs, key, timer=timer, reset_to_zero=reset_to_zero,
                         progress=progress)

    return decorate


class Autotuner:
    """A kernel with tuning: launch it as the kernel (`tuned[grid](…)`, `tuned(…)`); `ir`, `ptx`,
    `sass`, … show the last specialization launched. `cache` maps (fingerprint, key) to the
    winning Config; `timings` and `failures` keep what the benchmarks measured and why
    configurations were skipped, per key."""

    def __init__(self, kernel: JITFunction, configs: Sequence[Config], key: Sequence[str], *,
                 timer: Optional[Timer] = None, reset_to_zero: Sequence[str] = (),
                 progress: bool = True):
        self.kernel = kernel
        self.name = kernel.name
        self.configs = self._checked_configs(configs)
        self.key = self._checked_names("key", key)
        self.reset_to_zero = self._checked_names("reset_to_zero", reset_to_zero)
        tuned = {name for config in self.configs for name in config.values}
        clash = [name for name in self.key if name in tuned]
        if clash:
            raise TypeError(f"@nibble.autotune on {self.name}: key {', '.join(clash)} is also set "
                            "by the configurations; a key is an argument the caller passes")
        self.tuned = tuned
        if timer is not None and not callable(timer):
            raise TypeError(f"@nibble.autotune on {self.name}: timer is a function (run, config) "
                            f"-> milliseconds, not {type(timer).__name__}")
        self.timer = timer
        self.progress = progress
        self.source_hash = hashlib.sha256(
            textwrap.dedent(inspect.getsource(kernel.function)).encode()).hexdigest()
        self.cache: dict[tuple, Config] = {}
        self.timings: dict[tuple, dict[str, float]] = {}
        self.failures: dict[tuple, dict[str, str]] = {}
        self.best_config: Optional[Config] = None
        functools.update_wrapper(self, kernel.function)

    def __repr__(self) -> str:
        return f"<nibble.autotune kernel {self.name}: {len(self.configs)} configurations>"

    def _checked_configs(self, configs) -> list[Config]:
        where = f"@nibble.autotune on {self.name}"
        if isinstance(configs, (Config, dict)) or not isinstance(configs, Iterable):
            raise TypeError(f"{where}: configs is a list of nibble.Config")
        result = []
        constexprs = [p.name for p in self.kernel.params if p.kind == "constexpr"]
        for index, config in enumerate(configs):
            if isinstance(config, dict):
                config = Config(config)
            if not isinstance(config, Config):
                raise TypeError(f"{where}: configuration {index} is a {type(config).__name__}, "
                                "not a nibble.Config")
            for name in config.values:
                if name not in constexprs:
                    known = ", ".join(constexprs) or "none"
                    raise TypeError(f"{where}: configuration {index} ({config.describe()}) sets "
                                    f"'{name}', which is not a compile-time parameter "
                                    f"(compile-time parameters: {known})")
            if config in result:
                raise ValueError(f"{where}: configuration {index} ({config.describe()}) is "
                                 "given twice")
            result.append(config)
        if not result:
            raise ValueError(f"{where}: no configurations")
        return result

    def _checked_names(self, what: str, names) -> tuple:
        where = f"@nibble.autotune on {self.name}"
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise TypeError(f"{where}: {what} is a list of parameter names, not {names!r}")
        names = tuple(names)
        parameters = [p.name for p in self.kernel.params]
        for name in names:
            if name not in parameters:
                raise TypeError(f"{where}: {what} names '{name}', which is not a parameter "
                                f"(parameters: {', '.join(parameters)})")
        return names

    # ---- introspection: the kernel's ----------------------------------------------------------

    def __getattr__(self, name: str):
        if name in ("kernel", "__wrapped__"):
            raise AttributeError(name)
        return getattr(self.kernel, name)

    # ---- launch ---------------------------------------------------------------------------------

    def __getitem__(self, grid) -> "_TunedLauncher":
        return _TunedLauncher(self, grid, interpret=False)

    def __call__(self, *args, **kwargs) -> None:
        _TunedLauncher(self, None, interpret=False)(*args, **kwargs)

    def _given(self, args: tuple, kwargs: dict) -> dict:
        """The arguments by name, with the defaults of those not given; tuned parameters may not
        be given."""
        try:
            bound = self.kernel.signature.bind_partial(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.name}(): {error}") from None
        given = [name for name in bound.arguments if name in self.tuned]
        if given:
            names = ", ".join(f"'{name}'" for name in given)
            verb, pronoun = ("is", "it") if len(given) == 1 else ("are", "them")
            raise TypeError(f"{self.name}(): {names} {verb} chosen by @nibble.autotune; do not "
                            f"pass {pronoun}")
        bound.apply_defaults()
        return dict(bound.arguments)

    def _key(self, arguments: dict) -> tuple:
        key = []
        for name in self.key:
            if name not in arguments:
                raise TypeError(f"{self.name}(): missing the argument '{name}'")
            key.append((name, _key_value(self.name, name, arguments[name])))
        for spec in self.kernel.params:
            if spec.kind == "pointer" and spec.name in arguments:
                key.append((spec.name, _dtype_text(arguments[spec.name])))
        return tuple(key)

    def _entry_path(self, fingerprint: dict, key: tuple) -> Optional[str]:
        directory = cache_dir()
        if directory is None:
            return None
        identity = json.dumps({"format": _FORMAT, "kernel": self.name,
                               "source": self.source_hash, "fingerprint": fingerprint,
                               "configs": [repr(c) for c in self.configs], "key": repr(key)},
                              sort_keys=True)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        return os.path.join(directory, f"{self.name}-{digest}.json")

    def _load(self, path: Optional[str]) -> Optional[Config]:
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as file:
                entry = json.load(file)
            index = entry["best_index"]
            if (entry.get("format") == _FORMAT and isinstance(index, int)
                    and 0 <= index < len(self.configs)
                    and entry.get("best") == repr(self.configs[index])):
                return self.configs[index]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _store(self, path: Optional[str], fingerprint: dict, key: tuple, best: Config,
               timings: dict, failures: dict) -> None:
        if path is None:
            return
        entry = {"format": _FORMAT, "kernel": self.name, "source_sha256": self.source_hash,
                 "fingerprint": fingerprint, "key": repr(key),
                 "best_index": self.configs.index(best), "best": repr(best),
                 "timings_ms": timings, "failed": failures}
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    json.dump(entry, file, indent=1, sort_keys=True)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass  # a cache that cannot be written costs a benchmark later, never a launch

    def best(self, args: tuple, kwargs: dict, grid=None, interpret: bool = False) -> Config:
        """The winning configuration for these arguments: from memory, from disk, or by
        benchmarking every configuration (which launches the kernel)."""
        return self._choose(args, kwargs, grid, interpret)[0]

    def _choose(self, args: tuple, kwargs: dict, grid, interpret: bool) -> tuple[Config, bool]:
        """(the winner, whether it was benchmarked just now)."""
        arguments = self._given(args, kwargs)
        key = self._key(arguments)
        fingerprint = device_fingerprint(interpret)
        memory_key = (json.dumps(fingerprint, sort_keys=True), key)
        found, benchmarked = self.cache.get(memory_key), False
        if found is None:
            path = self._entry_path(fingerprint, key)
            found = self._load(path)
            if found is None:
                found, benchmarked = self._benchmark(args, kwargs, grid, interpret, key), True
                self._store(path, fingerprint, key, found, self.timings[key],
                            self.failures[key])
            self.cache[memory_key] = found
        self.best_config = found
        return found, benchmarked

    def _benchmark(self, args: tuple, kwargs: dict, grid, interpret: bool, key: tuple) -> Config:
        timer = self.timer or default_timer(interpret)
        arguments = self._given(args, kwargs)
        shown = ", ".join(f"{name}={value}" for name, value in key if name in self.key)
        label = f"nibble.autotune: {self.name}" + (f" ({shown})" if shown else "")
        line = _ProgressLine(enabled=self.progress)
        timings: dict[str, float] = {}
        failures: dict[str, str] = {}
        errors: list[BaseException] = []
        started = time.perf_counter()
        for index, config in enumerate(self.configs):
            line.show(f"{label}: configuration {index + 1}/{len(self.configs)}: "
                      f"{config.describe()}")

            def run(config: Config = config) -> None:
                _zero(self.name, arguments, self.reset_to_zero)
                Launcher(self.kernel, grid, interpret)(*args, **kwargs, **config.values)

            try:
                milliseconds = timer(run, config)
            except Exception as error:  # the configuration is skipped, with the reason
                reason = _first_line(error)
                failures[config.describe()] = reason
                errors.append(error)
                line.note(f"{label}: skipped {config.describe()}: {reason}")
                continue
            if (isinstance(milliseconds, bool) or not isinstance(milliseconds, (int, float))
                    or not math.isfinite(milliseconds) or milliseconds < 0):
                line.finish(None)
                raise AutotuneError(f"{label}: the timer returned {milliseconds!r} for "
                                    f"{config.describe()}; it returns milliseconds (a finite "
                                    "number >= 0)")
            timings[config.describe()] = float(milliseconds)
        self.timings[key] = timings
        self.failures[key] = failures
        if not timings:
            line.finish(None)
            first = errors[0]
            if (isinstance(first, (TypeError, ValueError))
                    and all(type(e) is type(first) and str(e) == str(first) for e in errors)):
                raise first
            reasons = "\n".join(f"  {config}: {reason}" for config, reason in failures.items())
            raise AutotuneError(f"{label}: every configuration failed:\n{reasons}")
        best = min((c for c in self.configs if c.describe() in timings),
                   key=lambda c: timings[c.describe()])
        seconds = time.perf_counter() - started
        failed = f", {len(failures)} failed" if failures else ""
        line.finish(f"{label}: {best.describe()} is fastest, {timings[best.describe()]:.4g} ms "
                    f"({len(self.configs)} configurations{failed}, {seconds:.1f} s)")
        return best

    def launch(self, grid, args: tuple, kwargs: dict, interpret: bool) -> None:
        """Picks the configuration for the arguments and launches it. Without a GPU (and off the
        interpreter) nothing can be benchmarked: the first configuration's launch checks the
        arguments and says that there is no GPU."""
        if not interpret and not _core.gpu_available():
            self._given(args, kwargs)
            Launcher(self.kernel, grid, False)(*args, **kwargs, **self.configs[0].values)
            return
        config, benchmarked = self._choose(args, kwargs, grid, interpret)
        if benchmarked and self.reset_to_zero:
            _zero(self.name, self._given(args, kwargs), self.reset_to_zero)
        Launcher(self.kernel, grid, interpret)(*args, **kwargs, **config.values)


class _TunedLauncher:
    """`tuned[grid]`: calling it picks the configuration and launches it."""

    def __init__(self, tuner: Autotuner, grid, interpret: bool):
        self.tuner, self.grid, self.interpret = tuner, grid, interpret

    def __call__(self, *args, **kwargs) -> None:
        self.tuner.launch(self.grid, args, kwargs, self.interpret or _interpret_requested())


class InterpretedAutotuner:
    """`nibble.interpret(tuned)`: the same tuner (and caches), always run on the interpreter."""

    def __init__(self, tuner: Autotuner):
        self.tuner = tuner

    def __getitem__(self, grid) -> _TunedLauncher:
        return _TunedLauncher(self.tuner, grid, interpret=True)

    def __call__(self, *args, **kwargs) -> None:
        _TunedLauncher(self.tuner, None, interpret=True)(*args, **kwargs)

    def __getattr__(self, name: str):
        if name == "tuner":
            raise AttributeError(name)
        return getattr(self.tuner, name)


# ---- helpers -----------------------------------------------------------------------------------


def _key_value(kernel: str, name: str, value) -> Any:
    """A key argument as a hashable, printable value: numbers and strings as they are, dtypes by
    name, arrays by (shape, dtype)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, DataType):
        return value.name
    shape = getattr(value, "shape", None)
    if shape is not None:
        return (tuple(int(d) for d in shape), _dtype_text(value))
    raise TypeError(f"{kernel}(): the key argument '{name}' is a {type(value).__name__}; keys are "
                    "numbers, strings, dtypes or arrays (keyed by shape and dtype)")


def _dtype_text(value) -> str:
    element = getattr(value, "dtype", None)
    return str(element).replace("torch.", "") if element is not None else type(value).__name__


def _zero(kernel: str, arguments: dict, names: Sequence[str]) -> None:
    for name in names:
        value = arguments[name]
        if isinstance(value, np.ndarray):
            value[...] = 0
        elif hasattr(value, "zero_"):
            value.zero_()
        else:
            raise TypeError(f"{kernel}(): reset_to_zero names '{name}', a "
                            f"{type(value).__name__}; it zeroes numpy arrays and torch tensors")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class _ProgressLine:
    """One status line on stderr: rewritten in place on a terminal, else only the final line."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.live:
            sys.stderr.write(f"\r\x1b[K{text}")
            sys.stderr.flush()
            self.shown = True

    def note(self, text: str) -> None:
        self._clear()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def finish(self, text: Optional[str]) -> None:
        self._clear()
        if text and self.enabled:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def _clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
