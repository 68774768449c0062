"""The Triton peer of the quantized GEMM bench (bench/peers/triton_quant_gemm.py) against
torch, on Triton's CPU interpreter (TRITON_INTERPRET=1, in a child process so that the setting
precedes Triton's import): the packing of make_weights, both unpackings, u4 and u8, group-wise
and per-channel scales, split-K. Skipped where torch or Triton is not installed (CI); on a GPU
the bench's own check() runs the compiled kernel."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PEER = REPO / "bench" / "peers" / "triton_quant_gemm.py"

CHILD = r'''
import importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location("peer", sys.argv[1])
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
import triton
import triton.language as tl


@triton.jit
def probe(out, K):
    for t in range(0, tl.cdiv(K, 2)):
        tl.store(out + t, t)


try:  # Triton 3.6's interpreter takes int() of shape-(1,) arrays, which newer NumPy refuses
    probe[(1,)](torch.zeros(2, dtype=torch.int32), 4)
except Exception as error:
    if "0-dimensional" in str(error):
        print("skip: this Triton's interpreter does not run with this NumPy")
        sys.exit(0)
    raise

cases = [(4, 128, 1, 1), (4, 128, 2, 0), (4, 0, 1, 1), (8, 128, 4, 1), (8, 0, 2, 0),
         (4, 32, 1, 1), (8, 32, 2, 0)]
m, n, k = 5, 64, 512
for bits, group, split, unpack in cases:
    packed, scales, w = peer.make_weights(k, n, bits, group, "cpu", seed=bits + group)
    # make_weights packs row kw * P + j of column c into bits [j * B, (j + 1) * B) of word kw.
    p = 32 // bits
    codes = ((packed.to(torch.int64) & 0xFFFFFFFF).unsqueeze(1) >>
             (torch.arange(p).view(1, p, 1) * bits)) & ((1 << bits) - 1)
    rows = group or k
    expected = (codes.reshape(k, n) - (1 << (bits - 1))).float() * \
        scales.float().repeat_interleave(rows, 0)
    assert torch.equal(expected.half(), w), (bits, group)
    a = torch.randn(m, k).half()
    c = torch.zeros(m, n, dtype=torch.float16)
    grid = (triton.cdiv(m, 16) * triton.cdiv(n, 32), split)
    peer._quant_matmul_kernel[grid](a, packed, scales, c, m, n, k, BITS=bits, GROUP=group,
                                    UNPACK=unpack, BLOCK_M=16, BLOCK_N=32, BLOCK_K=64,
                                    SPLIT_K=split, GROUP_M=1)
    reference = a.float() @ w.float()
    error = ((c.float() - reference).abs().max() / reference.abs().max()).item()
    assert error < 1e-2, (bits, group, split, unpack, error)
print("ok", len(cases))
'''


def test_the_triton_peer_matches_torch_on_the_interpreter():
    for module in ("torch", "triton"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    result = subprocess.run([sys.executable, "-c", CHILD, str(PEER)], capture_output=True,
                            text=True, env=dict(os.environ, TRITON_INTERPRET="1"), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    if result.stdout.startswith("skip: "):
        pytest.skip(result.stdout[len("skip: "):].strip())
    assert result.stdout.split() == ["ok", "7"]
