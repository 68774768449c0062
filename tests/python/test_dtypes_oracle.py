"""nibble's exact dtype semantics against ml_dtypes, the external oracle for float types.

Every bit pattern of every type ml_dtypes shares with nibble is decoded by both; values
are encoded by both (round to nearest even) where ml_dtypes' conversion is defined the same
way (in range: ml_dtypes turns overflow into NaN or inf, nibble saturates types without inf).
"""
import math

import ml_dtypes
import numpy as np
import pytest

SHARED_TYPES = {
    "f8e4m3": ml_dtypes.float8_e4m3fn,
    "f8e5m2": ml_dtypes.float8_e5m2,
    "f6e3m2": ml_dtypes.float6_e3m2fn,
    "f6e2m3": ml_dtypes.float6_e2m3fn,
    "f4e2m1": ml_dtypes.float4_e2m1fn,
    "i4": ml_dtypes.int4,
    "u4": ml_dtypes.uint4,
    "i2": ml_dtypes.int2,
    "u2": ml_dtypes.uint2,
    "bf16": ml_dtypes.bfloat16,
    "f16": np.float16,
}

BITS = {"f8e4m3": 8, "f8e5m2": 8, "f6e3m2": 6, "f6e2m3": 6, "f4e2m1": 4, "i4": 4, "u4": 4,
        "i2": 2, "u2": 2, "bf16": 16, "f16": 16}


def nibble_values(nibble_cli, name):
    """Every (code, value) of a type as nibble decodes it."""
    output = nibble_cli("dtypes", name, "--all", "--format", "tsv").stdout
    values = {}
    for line in output.splitlines():
        code, value = line.split("\t")
        values[int(code, 16)] = float.fromhex(value) if value not in ("nan", "inf", "-inf") else float(value)
    return values


def oracle_value(name, code):
    """ml_dtypes' value of a bit pattern (stored in the low bits of a byte or a 16-bit word)."""
    storage = np.uint16 if BITS[name] == 16 else np.uint8
    raw = np.array([code], dtype=storage)
    if BITS[name] < 8 and code >= (1 << (BITS[name] - 1)) and name.startswith(("i", "f")):
        # ml_dtypes keeps sub-byte values sign-extended in their byte.
        raw = np.array([code | (0xFF << BITS[name]) & 0xFF], dtype=storage)
    with np.errstate(invalid="ignore"):  # NaN patterns are compared as NaN
        return float(raw.view(SHARED_TYPES[name])[0].astype(np.float64))


@pytest.mark.parametrize("name", sorted(SHARED_TYPES))
def test_decode_matches_ml_dtypes_for_every_code(nibble_cli, name):
    values = nibble_values(nibble_cli, name)
    assert len(values) == 1 << BITS[name]
    mismatches = []
    for code, value in values.items():
        expected = oracle_value(name, code)
        same = (math.isnan(value) and math.isnan(expected)) or (
            value == expected and math.copysign(1, value) == math.copysign(1, expected))
        if not same:
            mismatches.append((hex(code), value, expected))
    assert not mismatches, f"{name}: first mismatches (code, nibble, ml_dtypes): {mismatches[:5]}"


@pytest.mark.parametrize("name", sorted(n for n in SHARED_TYPES if n.startswith(("f", "bf"))))
def test_encode_matches_ml_dtypes_in_range(nibble_cli, name):
    rng = np.random.default_rng(12345)
    finite = [v for v in nibble_values(nibble_cli, name).values() if math.isfinite(v)]
    largest = max(finite)
    # Random values across the range, plus every midpoint between neighbours (the ties).
    ordered = sorted(set(finite))
    midpoints = [(a + b) / 2 for a, b in zip(ordered, ordered[1:])]
    if len(midpoints) > 2000:
        midpoints = list(rng.choice(midpoints, 2000, replace=False))
    samples = list(rng.uniform(-largest, largest, 2000)) + midpoints
    samples = [float(np.float32(v)) for v in samples]  # ml_dtypes converts through float32
    samples = [v for v in samples if abs(v) <= largest]
    output = nibble_cli("dtypes", name, "--encode", *[v.hex() for v in samples]).stdout
    ours = [int(line.split("\t")[1], 16) for line in output.splitlines()]
    theirs = np.array(samples, dtype=np.float32).astype(SHARED_TYPES[name])
    storage = np.uint16 if BITS[name] == 16 else np.uint8
    theirs_codes = theirs.view(storage).astype(np.int64) & ((1 << BITS[name]) - 1)
    mismatches = [(samples[i], hex(ours[i]), hex(int(theirs_codes[i])))
                  for i in range(len(samples)) if ours[i] != theirs_codes[i]]
    assert not mismatches, f"{name}: (value, nibble, ml_dtypes): {mismatches[:5]}"


def test_listing_f4e2m1_prints_its_16_values(nibble_cli):
    text = nibble_cli("dtypes", "f4e2m1").stdout
    values = [line.split()[-1] for line in text.splitlines()[1:]]
    assert values == ["0", "0.5", "1", "1.5", "2", "3", "4", "6",
                      "-0", "-0.5", "-1", "-1.5", "-2", "-3", "-4", "-6"]


@pytest.mark.parametrize("name, problem", [
    ("f9e9m9", "3 to 8 bits"),
    ("u0", "1..8, 16, 32"),
    ("i65", "1..8, 16, 32, 64"),
    ("f6e3m3", "1 sign + 3 exponent + 3 mantissa bits = 7"),
])
def test_bad_type_names_are_explained(nibble_cli, name, problem):
    result = nibble_cli("dtypes", name, check=False)
    assert result.returncode == 1
    assert f"'{name}'" in result.stderr and problem in result.stderr


def test_bad_command_lines_are_explained(nibble_cli):
    result = nibble_cli("dtypes", "f16", "--format", "xml", check=False)
    assert result.returncode == 2 and "unknown format 'xml'" in result.stderr
    result = nibble_cli("dtypes", "f32", check=False)
    assert result.returncode == 2 and "8 bits or fewer" in result.stderr
    result = nibble_cli("frobnicate", check=False)
    assert result.returncode == 2 and "unknown subcommand 'frobnicate'" in result.stderr


def test_plan_demo_is_exact(nibble_cli):
    result = nibble_cli("demo", "plans")
    assert "all exact" in result.stdout
    assert result.stdout.count("exact") >= 7  # six conversions and the summary


def test_main_job_runs_and_checks_the_quantized_gemm(nibble_cli):
    result = nibble_cli("demo", "--interpret", "--m", "3")
    assert "quantized GEMM on the interpreter" in result.stdout
    assert "check against the double-precision reference (384 elements): ok" in result.stdout


def test_main_job_rejects_bad_arguments(nibble_cli):
    result = nibble_cli("demo", "--m", "x", check=False)
    assert result.returncode == 2 and "--m needs a whole number, not 'x'" in result.stderr
    result = nibble_cli("demo", "--k", "200", "--interpret", check=False)
    assert result.returncode != 0 and "not a multiple" in result.stderr
