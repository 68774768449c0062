"""Compile latency of comparable Triton kernels (the peers of bench_compile).

For vector add, row softmax and an f16 GEMM: the first call with an empty Triton cache (compile,
load, launch, synchronize) and a warm call, in milliseconds, median over fresh cache directories.
Writes OUT/triton_compile.json and prints a Markdown table.

    python3 bench/peers/triton_compile.py --out DIR [--repeats N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r'''
import os, sys, time, json
import torch, triton, triton.language as tl

@triton.jit
def vector_add(x, y, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) + tl.load(y + offsets, mask=mask), mask=mask)

@triton.jit
def softmax(x, out, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offsets = tl.arange(0, BLOCK)
    values = tl.load(x + row * cols + offsets, mask=offsets < cols, other=-float("inf"))
    values = tl.exp(values - tl.max(values, axis=0))
    tl.store(out + row * cols + offsets, values / tl.sum(values, axis=0), mask=offsets < cols)

@triton.jit
def gemm(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        x = tl.load(a + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        y = tl.load(b + (k + rk)[:, None] * N + rn[None, :], mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, y)
    tl.store(c + rm[:, None] * N + rn[None, :], acc.to(tl.float16), mask=(rm[:, None] < M) & (rn[None, :] < N))

name = sys.argv[1]
dev = "cuda"
if name == "vector_add":
    n = 1 << 20
    x, y = torch.randn(n, device=dev), torch.randn(n, device=dev)
    out = torch.empty_like(x)
    call = lambda: vector_add[(triton.cdiv(n, 256),)](x, y, out, n, BLOCK=256)
elif name == "softmax":
    rows, cols = 4096, 1024
    x = torch.randn(rows, cols, device=dev)
    out = torch.empty_like(x)
    call = lambda: softmax[(rows,)](x, out, cols, BLOCK=1024)
else:
    m = n = k = 2048
    a = torch.randn(m, k, device=dev, dtype=torch.float16)
    b = torch.randn(k, n, device=dev, dtype=torch.float16)
    c = torch.empty(m, n, device=dev, dtype=torch.float16)
    call = lambda: gemm[(triton.cdiv(m, 128), triton.cdiv(n, 128))](a, b, c, m, n, k, BM=128, BN=128, BK=32)
torch.cuda.synchronize()
start = time.perf_counter(); call(); torch.cuda.synchronize(); first = time.perf_counter() - start
start = time.perf_counter(); call(); torch.cuda.synchronize(); warm = time.perf_counter() - start
print(json.dumps({"first_call_ms": first * 1e3, "warm_call_ms": warm * 1e3}))
'''


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for name in ["vector_add", "softmax", "gemm_f16"]:
        firsts, warms = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                # A fresh process and an empty cache: what a first call really costs. The kernels
                # live in a file because triton.jit reads their source.
                script = os.path.join(cache, "kernels.py")
                with open(script, "w") as f:
                    f.write(CHILD)
                env = dict(os.environ, TRITON_CACHE_DIR=os.path.join(cache, "triton"))
                result = subprocess.run([sys.executable, script, name], env=env, capture_output=True, text=True)
                if result.returncode != 0:
                    sys.exit(f"triton peer {name} failed:\n{result.stderr}")
                timing = json.loads(result.stdout.strip().splitlines()[-1])
                firsts.append(timing["first_call_ms"])
                warms.append(timing["warm_call_ms"])
        rows[name] = {"first_call_ms": statistics.median(firsts), "warm_call_ms": statistics.median(warms)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "triton_compile.json"), "w") as f:
        json.dump({"triton": __import__("triton").__version__, "kernels": rows}, f, indent=1)
    print(f"Triton {__import__('triton').__version__}, median of {args.repeats} fresh processes with empty caches\n")
    print("| kernel | first call (compile+launch) ms | warm call ms |\n|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['first_call_ms']:.1f} | {row['warm_call_ms']:.3f} |")


if __name__ == "__main__":
    main()
