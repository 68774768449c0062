"""`nibble quantize`: weight preparation from the command line, checked with numpy."""
import json

import numpy as np


def unpack_u4(packed, count):
    """Codes of a little-endian 4-bit stream: element i in bits [4i, 4i + 4)."""
    low = packed & 0x0F
    high = packed >> 4
    return np.stack([low, high], axis=1).reshape(-1)[:count]


def test_quantize_writes_codes_scales_and_the_repacking(nibble_cli, tmp_path):
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((256, 128)) * 0.02).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "out"
    result = nibble_cli("quantize", tmp_path / "w.npy", "--type", "u4", "--group", "64",
                        "--for-m", "1", "-o", out)
    assert "quantized W[256, 128] to u4 (groups of 64, f16 scales)" in result.stdout
    meta = json.loads((out / "weight.json").read_text())
    assert (meta["type"], meta["k"], meta["n"], meta["group_size"]) == ("u4", 256, 128, 64)
    assert meta["implicit_zero"] == 8
    assert meta["config"]["stored_type"] == "i4" and meta["config"]["block_n"] == 128
    codes = unpack_u4(np.load(out / "codes.npy"), 256 * 128).reshape(256, 128).astype(np.float64)
    scales = np.load(out / "scales.npy")
    assert scales.dtype == np.float16 and scales.shape == (4, 128)
    dequantized = (codes - 8) * np.repeat(scales.astype(np.float64), 64, axis=0)
    step = np.repeat(scales.astype(np.float64), 64, axis=0)
    # Symmetric rounding: within half a step of the weight, except where it saturated.
    assert np.all(np.abs(dequantized - w) <= 0.5 * step + 1e-3 * np.abs(w) + 1e-7)
    repacked = np.load(out / "repacked.npy")
    # The same multiset of stored codes (q - 8 as i4, the top bit flipped), in another order.
    stored = unpack_u4(repacked, 256 * 128)
    assert np.array_equal(np.sort(stored), np.sort((codes.reshape(-1).astype(np.uint8) ^ 8)))


def test_quantize_zero_points_and_bf16(nibble_cli, tmp_path):
    w = np.linspace(-0.1, 0.3, 64 * 64, dtype=np.float64).reshape(64, 64)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "out"
    nibble_cli("quantize", tmp_path / "w.npy", "--type", "u8", "--group", "32", "--zero-points",
               "--scale-type", "bf16", "-o", out)
    assert (out / "zeros.npy").exists()
    assert np.load(out / "scales.npy").dtype == np.uint16  # bf16 codes
    meta = json.loads((out / "weight.json").read_text())
    assert meta["zero_points"] is True and meta["config"] is None


def test_quantize_rejects_bad_input(nibble_cli, tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((100, 64), dtype=np.float32))
    np.save(tmp_path / "v.npy", np.zeros(64, dtype=np.float32))
    np.save(tmp_path / "i.npy", np.zeros((128, 64), dtype=np.int32))
    result = nibble_cli("quantize", tmp_path / "w.npy", "--type", "u4", "-o", tmp_path / "o",
                        check=False)
    assert result.returncode == 1 and "not a multiple of the group size 128" in result.stderr
    result = nibble_cli("quantize", tmp_path / "v.npy", "--type", "u4", "-o", tmp_path / "o",
                        check=False)
    assert result.returncode == 1 and "must be 2-D [K, N], not 1-D" in result.stderr
    result = nibble_cli("quantize", tmp_path / "i.npy", "--type", "u4", "-o", tmp_path / "o",
                        check=False)
    assert result.returncode == 1 and "use float16, float32 or float64" in result.stderr
    result = nibble_cli("quantize", tmp_path / "w.npy", "-o", tmp_path / "o", check=False)
    assert result.returncode == 2 and "the weight type" in result.stderr
    result = nibble_cli("quantize", tmp_path / "w.npy", "--type", "u4", "--group", "x",
                        check=False)
    assert result.returncode == 2 and "--group needs a whole number, not 'x'" in result.stderr
