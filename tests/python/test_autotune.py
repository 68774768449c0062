"""@nibble.autotune on the interpreter, with fake timers: which configuration wins, how often
benchmarks run, the disk cache across instances and processes, what makes it tune again,
failing configurations, and mistakes in its use. A `gpu` test times real launches."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nibble as nb
import nibble.autotuner as autotuner
from nibble import f32

CONFIGS = [nb.Config(block=32), nb.Config(block=64), nb.Config({"block": 128})]
TIMES = {32: 3.0, 64: 1.0, 128: 2.0}  # block=64 wins


def scale(x: nb.ptr[f32], y: nb.ptr[f32], n: int, factor: nb.constexpr = 2.0,
          block: nb.constexpr = 64):
    nb.launch(grid=nb.cdiv(n, block))
    X, Y = nb.view(x, [n]), nb.view(y, [n])
    start = nb.block_id(0) * block
    nb.store(Y[start:start + block], nb.load(X[start:start + block]) * factor)


class FakeTimer:
    """Launches each configuration once (on the interpreter) and reports a fixed time."""

    def __init__(self, times=TIMES):
        self.times = times
        self.calls = []

    def __call__(self, run, config):
        self.calls.append(config)
        run()
        return self.times[config.values["block"]]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh disk cache, and the interpreter for every launch."""
    monkeypatch.setenv("NIBBLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NIBBLE_INTERPRET", "1")
    return tmp_path / "cache" / "autotune"


def tuned_scale(timer, configs=CONFIGS, **options):
    return nb.autotune(configs=configs, key=["n"], timer=timer, **options)(nb.jit(scale))


def arrays(n=256):
    x = np.arange(n, dtype=np.float32)
    return x, np.zeros(n, np.float32)


def test_the_fastest_configuration_wins_and_runs():
    timer = FakeTimer()
    kernel = tuned_scale(timer)
    x, y = arrays()
    kernel(x, y, 256)
    assert timer.calls == CONFIGS
    assert kernel.best_config == nb.Config(block=64)
    np.testing.assert_array_equal(y, 2 * x)
    key = (("n", 256), ("x", "float32"), ("y", "float32"))
    assert kernel.timings[key] == {"block=32": 3.0, "block=64": 1.0, "block=128": 2.0}
    assert kernel.failures[key] == {}
    assert "block: i32 const = 64" in kernel.ir  # the kernel shows the winner's program


def test_one_benchmark_per_key():
    timer = FakeTimer()
    kernel = tuned_scale(timer)
    x, y = arrays(512)
    kernel(x, y, 256)
    kernel(x, y, 256)
    kernel[(4,)](x, y, 256)
    assert len(timer.calls) == 3
    kernel(x, y, 512)  # a new key
    assert len(timer.calls) == 6
    np.testing.assert_array_equal(y, 2 * x)
    assert len(kernel.cache) == 2


def test_the_winner_is_reused_from_disk_by_another_instance(cache):
    first = FakeTimer()
    tuned_scale(first)(*arrays(), 256)
    entries = list(cache.glob("scale-*.json"))
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    assert entry["best"] == "nibble.Config(block=64)" and entry["best_index"] == 1
    assert entry["fingerprint"]["device"] == "nibble interpreter"
    # Another instance whose timer would pick block=128: the disk's choice stands, unmeasured.
    second = FakeTimer({32: 3.0, 64: 2.0, 128: 1.0})
    kernel = tuned_scale(second)
    x, y = arrays()
    kernel(x, y, 256)
    assert second.calls == [] and kernel.best_config == nb.Config(block=64)
    np.testing.assert_array_equal(y, 2 * x)


def test_the_winner_is_reused_by_a_later_process(tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(textwrap.dedent('''
        import numpy as np
        import nibble as nb
        from nibble import f32

        calls = []

        def timer(run, config):
            calls.append(config)
            run()
            return {32: 3.0, 64: 1.0}[config.values["block"]]

        @nb.autotune(configs=[nb.Config(block=32), nb.Config(block=64)], key=["n"], timer=timer)
        @nb.jit
        def fill(out: nb.ptr[f32], n: int, block: nb.constexpr = 64):
            nb.launch(grid=nb.cdiv(n, block))
            start = nb.block_id(0) * block
            nb.store(nb.view(out, [n])[start:start + block], nb.full([block], 7.0))

        out = np.zeros(128, np.float32)
        fill(out, 128)
        assert (out == 7).all()
        print(len(calls), fill.best_config)
    '''))
    environment = dict(os.environ, NIBBLE_CACHE_DIR=str(tmp_path / "cache"),
                       NIBBLE_INTERPRET="1")
    outputs = []
    for _ in range(2):
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                env=environment)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    assert outputs == ["2 nibble.Config(block=64)", "0 nibble.Config(block=64)"]


def test_a_new_device_fingerprint_tunes_again(monkeypatch):
    timer = FakeTimer()
    kernel = tuned_scale(timer)
    kernel(*arrays(), 256)
    real = autotuner.device_fingerprint
    monkeypatch.setattr(autotuner, "device_fingerprint",
                        lambda on_interpreter: {**real(on_interpreter), "driver_version": 99999})
    kernel(*arrays(), 256)  # the same instance: its memory is per fingerprint too
    assert len(timer.calls) == 6
    other = FakeTimer()
    tuned_scale(other)(*arrays(), 256)  # the disk now has the entry for the new fingerprint
    assert other.calls == []


def test_changed_source_or_configurations_tune_again():
    timer = FakeTimer()
    tuned_scale(timer)(*arrays(), 256)

    def scale(x: nb.ptr[f32], y: nb.ptr[f32], n: int, factor: nb.constexpr = 2.0,
              block: nb.constexpr = 64):
        nb.launch(grid=nb.cdiv(n, block))  # the same kernel, another text
        X, Y = nb.view(x, [n]), nb.view(y, [n])
        start = nb.block_id(0) * block
        nb.store(Y[start:start + block], nb.load(X[start:start + block]) * factor)

    edited = FakeTimer()
    nb.autotune(configs=CONFIGS, key=["n"], timer=edited)(nb.jit(scale))(*arrays(), 256)
    assert len(edited.calls) == 3
    fewer = FakeTimer()
    tuned_scale(fewer, configs=CONFIGS[:2])(*arrays(), 256)
    assert fewer.calls == CONFIGS[:2]


def test_corrupt_entries_are_tuned_again_and_rewritten(cache):
    tuned_scale(FakeTimer())(*arrays(), 256)
    (entry,) = cache.glob("scale-*.json")
    entry.write_text("{not json")
    timer = FakeTimer()
    tuned_scale(timer)(*arrays(), 256)
    assert len(timer.calls) == 3
    assert json.loads(entry.read_text())["best_index"] == 1


def test_the_disk_cache_can_be_off(monkeypatch, cache):
    monkeypatch.setenv("NIBBLE_CACHE_DIR", "off")
    tuned_scale(FakeTimer())(*arrays(), 256)
    timer = FakeTimer()
    tuned_scale(timer)(*arrays(), 256)
    assert len(timer.calls) == 3 and not cache.exists()


def test_an_unwritable_cache_never_fails_a_launch(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NIBBLE_CACHE_DIR", str(blocker))  # a file: no folder can be made there
    x, y = arrays()
    tuned_scale(FakeTimer())(x, y, 256)
    np.testing.assert_array_equal(y, 2 * x)


def test_failing_configurations_are_skipped_with_a_note(capsys):
    configs = [nb.Config(block=32), nb.Config(block=64, factor="twice"), nb.Config(block=128)]
    timer = FakeTimer()
    kernel = tuned_scale(timer, configs=configs)
    x, y = arrays()
    kernel(x, y, 256)
    assert kernel.best_config == nb.Config(block=128)
    np.testing.assert_array_equal(y, 2 * x)
    stderr = capsys.readouterr().err
    assert "nibble.autotune: scale (n=256): skipped block=64, factor='twice': CompileError" in stderr
    assert "block=128 is fastest, 2 ms (3 configurations, 1 failed" in stderr
    (failures,) = kernel.failures.values()
    assert list(failures) == ["block=64, factor='twice'"]


def test_every_configuration_failing_is_an_error():
    configs = [nb.Config(block=32, factor="a"), nb.Config(block=64, factor="b")]
    kernel = tuned_scale(FakeTimer(), configs=configs)
    with pytest.raises(nb.AutotuneError, match=r"(?s)scale \(n=256\): every configuration "
                                               r"failed:\n  block=32, factor='a': CompileError.*"
                                               r"\n  block=64, factor='b': CompileError"):
        kernel(*arrays(), 256)


def test_arguments_wrong_for_every_configuration_raise_their_own_error():
    kernel = tuned_scale(FakeTimer())
    with pytest.raises(TypeError, match=r"parameter 'x' points to f32: expected a float32 array"):
        kernel(np.zeros(256, np.float64), np.zeros(256, np.float32), 256)


def test_a_timer_must_return_milliseconds():
    kernel = tuned_scale(lambda run, config: "fast")
    with pytest.raises(nb.AutotuneError, match=r"the timer returned 'fast' for block=32; it "
                                               "returns milliseconds"):
        kernel(*arrays(), 256)
    with pytest.raises(nb.AutotuneError, match="returned nan"):
        tuned_scale(lambda run, config: float("nan"))(*arrays(), 256)


def test_progress_false_writes_nothing(capsys):
    timer = FakeTimer()
    tuned_scale(timer, progress=False)(*arrays(), 256)
    assert len(timer.calls) == 3 and capsys.readouterr().err == ""


def test_the_final_progress_line_names_the_winner(capsys):
    tuned_scale(FakeTimer())(*arrays(), 256)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("nibble.autotune: scale (n=256): block=64 is fastest, 1 ms "
                           "(3 configurations, ")


def test_reset_to_zero_clears_outputs_a_kernel_accumulates_into(monkeypatch):
    def accumulate(x: nb.ptr[f32], y: nb.ptr[f32], n: int, block: nb.constexpr = 64):
        nb.launch(grid=nb.cdiv(n, block))
        X, Y = nb.view(x, [n]), nb.view(y, [n])
        start = nb.block_id(0) * block
        nb.store(Y[start:start + block], nb.load(Y[start:start + block]) +
                 nb.load(X[start:start + block]))

    monkeypatch.setenv("NIBBLE_CACHE_DIR", "off")  # both kernels benchmark
    x = np.arange(256, dtype=np.float32)
    for reset, expected in (((), 4 * x), (("y",), x)):  # 3 benchmark runs and the launch
        y = np.zeros(256, np.float32)
        kernel = nb.autotune(configs=CONFIGS, key=["n"], timer=FakeTimer(),
                             reset_to_zero=reset)(nb.jit(accumulate))
        kernel(x, y, 256)
        np.testing.assert_array_equal(y, expected)


def test_interpret_wraps_a_tuned_kernel(monkeypatch):
    monkeypatch.delenv("NIBBLE_INTERPRET")
    timer = FakeTimer()
    kernel = tuned_scale(timer)
    x, y = arrays()
    nb.interpret(kernel)(x, y, 256)
    np.testing.assert_array_equal(y, 2 * x)
    assert len(timer.calls) == 3 and nb.interpret(kernel).best_config == nb.Config(block=64)


def test_the_default_timer_on_the_interpreter_measures_wall_clock():
    kernel = nb.autotune(configs=CONFIGS[:2], key=["n"], progress=False)(scale)
    x, y = arrays()
    kernel(x, y, 256)
    np.testing.assert_array_equal(y, 2 * x)
    (timings,) = kernel.timings.values()
    assert set(timings) == {"block=32", "block=64"} and all(t > 0 for t in timings.values())


def test_arrays_as_keys_use_shape_and_dtype():
    timer = FakeTimer()
    kernel = nb.autotune(configs=CONFIGS, key=["x"], timer=timer)(scale)
    kernel(*arrays(), 256)
    kernel(*arrays(), 256)
    assert len(timer.calls) == 3
    x, y = arrays(512)
    kernel(x, y, 256)
    assert len(timer.calls) == 6
    assert (("x", ((512,), "float32")), ("x", "float32"), ("y", "float32")) in \
        [key for _, key in kernel.cache]


def test_without_a_gpu_launches_check_their_arguments(monkeypatch):
    monkeypatch.delenv("NIBBLE_INTERPRET")
    if nb._core.gpu_available():
        pytest.skip("there is a GPU")
    kernel = tuned_scale(FakeTimer())
    with pytest.raises(TypeError, match="numpy arrays run on the interpreter"):
        kernel(*arrays(), 256)


# ---- mistakes ----------------------------------------------------------------------------------


def test_configs_must_name_compile_time_parameters():
    with pytest.raises(TypeError, match=r"@nibble.autotune on scale: configuration 1 \(blok=64\) "
                                        r"sets 'blok', which is not a compile-time parameter "
                                        r"\(compile-time parameters: factor, block\)"):
        nb.autotune(configs=[nb.Config(block=32), nb.Config(blok=64)], key=["n"])(scale)
    with pytest.raises(TypeError, match="configuration 0 .* sets 'n', which is not a "
                                        "compile-time parameter"):
        nb.autotune(configs=[nb.Config(n=32)], key=[])(scale)
    with pytest.raises(TypeError, match="configuration 1 is a int, not a nibble.Config"):
        nb.autotune(configs=[nb.Config(block=32), 64], key=["n"])(scale)
    with pytest.raises(TypeError, match="configs is a list of nibble.Config"):
        nb.autotune(configs=nb.Config(block=32), key=["n"])(scale)
    with pytest.raises(ValueError, match="no configurations"):
        nb.autotune(configs=[], key=["n"])(scale)
    with pytest.raises(ValueError, match=r"configuration 1 \(block=32\) is given twice"):
        nb.autotune(configs=[nb.Config(block=32), nb.Config(block=32)], key=["n"])(scale)


def test_keys_must_name_parameters_the_caller_passes():
    with pytest.raises(TypeError, match=r"key names 'm', which is not a parameter \(parameters: "
                                        r"x, y, n, factor, block\)"):
        nb.autotune(configs=CONFIGS, key=["m"])(scale)
    with pytest.raises(TypeError, match="key block is also set by the configurations"):
        nb.autotune(configs=CONFIGS, key=["n", "block"])(scale)
    with pytest.raises(TypeError, match="key is a list of parameter names, not 'n'"):
        nb.autotune(configs=CONFIGS, key="n")(scale)
    with pytest.raises(TypeError, match="reset_to_zero names 'z', which is not a parameter"):
        nb.autotune(configs=CONFIGS, key=["n"], reset_to_zero=["z"])(scale)


def test_other_mistakes_in_the_decorator():
    with pytest.raises(TypeError, match="decorates a @nibble.jit kernel, not int"):
        nb.autotune(configs=CONFIGS, key=["n"])(3)
    tuned = nb.autotune(configs=CONFIGS, key=["n"])(scale)
    with pytest.raises(TypeError, match="applies once per kernel"):
        nb.autotune(configs=CONFIGS, key=["n"])(tuned)
    with pytest.raises(TypeError, match=r"timer is a function \(run, config\) -> milliseconds"):
        nb.autotune(configs=CONFIGS, key=["n"], timer=1.0)(scale)


def test_config_mistakes():
    with pytest.raises(TypeError, match="'block' is given twice"):
        nb.Config({"block": 32}, block=64)
    with pytest.raises(TypeError, match="takes a dict and/or keyword arguments, not list"):
        nb.Config([("block", 32)])
    with pytest.raises(TypeError, match="'block' takes a number, string, dtype or layout, not "
                                        "ndarray"):
        nb.Config(block=np.zeros(2))
    assert nb.Config(block=32, dtype=nb.f16).describe() == "block=32, dtype=nibble.f16"
    assert nb.Config() == nb.Config({}) and nb.Config().describe() == "defaults"


def test_launch_mistakes():
    kernel = tuned_scale(FakeTimer())
    x, y = arrays()
    with pytest.raises(TypeError, match=r"scale\(\): 'block' is chosen by @nibble.autotune; "
                                        "do not pass it"):
        kernel(x, y, 256, block=64)
    with pytest.raises(TypeError, match=r"scale\(\): 'factor', 'block' are chosen by "
                                        "@nibble.autotune; do not pass them"):
        tuned_scale(FakeTimer(), configs=[nb.Config(block=32, factor=3.0)])(x, y, 256, 3.0, 64)
    with pytest.raises(TypeError, match=r"scale\(\): too many positional arguments"):
        kernel(x, y, 256, 2.0, 64, 1)
    with pytest.raises(TypeError, match=r"scale\(\): the key argument 'n' is a list; keys are "
                                        "numbers, strings, dtypes or arrays"):
        kernel(x, y, [256])
    with pytest.raises(TypeError, match=r"scale\(\): missing the argument 'n'"):
        kernel(x, y)


# ---- on a GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
def test_autotune_times_gpu_launches(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("NIBBLE_INTERPRET")
    fingerprint = autotuner.device_fingerprint(False)
    assert fingerprint["device"] and fingerprint["compute_capability"] >= 70
    assert fingerprint["driver_version"] > 0
    kernel = nb.autotune(configs=CONFIGS, key=["n"])(scale)
    x = torch.randn(1 << 20, device="cuda")
    y = torch.zeros_like(x)
    kernel(x, y, 1 << 20)
    torch.cuda.synchronize()
    assert torch.equal(y, 2 * x)
    (timings,) = kernel.timings.values()
    assert len(timings) == 3 and all(0 < t < 100 for t in timings.values())


@pytest.mark.gpu
def test_the_runtime_event_timer(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # the driver's events, not torch's
    calls = []
    milliseconds = autotuner.gpu_timer(lambda: calls.append(1), nb.Config(), batch_ms=1.0)
    assert milliseconds >= 0 and len(calls) >= 1 + 3 + 5
