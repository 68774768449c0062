"""The Triton peer of the quantized GEMM benchmark (examples/quant_gemm): a dequantizing GEMM

    C[M, N] = A[M, K] (f16) x dequant(W)[K, N],   dequant(W)[k, n] = (q[k, n] - 2^(B-1)) * S[k // group, n]

for unsigned B-bit codes q (B = 4 or 8, symmetric: the zero point is 2^(B-1)) with f16 scales,
group-wise (group = 128 rows of K per scale) or per channel (group = 0: one scale per column,
S is [1, N]). W is stored as int32 words, [K / (32 / B), N]: word [kw, n] holds the codes of rows
kw * P ... kw * P + P - 1 of column n (P = 32 / B: 8 u4 or 4 u8), row kw * P + j in bits
[j * B, (j + 1) * B).

One Triton kernel, two autotuned entry points: small M (decode; BLOCK_M = 16, and split-K: the
K range is cut over grid axis 1 and the partial results meet in C through f16 atomic adds, so C
is zeroed first) and large M (prefill; big tiles, grouped block order for L2 reuse, no split).

    make_weights(k, n, bits, group, device)     -> (packed int32, scales f16, dequantized f16)
    triton_quant_matmul(a, packed, scales, bits, group) -> C (f16)
    cublas_f16(a, w_f16)                        -> torch.matmul on the dequantized weights
    bench(fn, args_list, iters, warmup, flush_l2) -> median milliseconds (CUDA events)
    check(m, n, k, bits, group)                 -> relative error against torch (raises if large)

    python3 bench/peers/triton_quant_gemm.py [--quick] [--iters N] [--out FILE]

prints one JSON object (Triton and torch versions, the device, and one row per case: both
times, TFLOP/s, GB/s of the quantized operands, the configuration Triton chose, the error).
"""
import argparse
import json
import statistics
import sys

import torch
import triton
import triton.language as tl


@triton.jit
def _quant_matmul_kernel(a_ptr, w_ptr, s_ptr, c_ptr, M, N, K,
                         BITS: tl.constexpr, GROUP: tl.constexpr, UNPACK: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         SPLIT_K: tl.constexpr, GROUP_M: tl.constexpr):
    # A [M, K], W [K / (32 / BITS), N] int32, S [K / GROUP or 1, N], C [M, N]; all row-major
    # and contiguous. GROUP == 0: per-channel scales. UNPACK: how the codes leave their words
    # (1: one load per word and a reshape; 0: one load per code, the fallback).
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    # Blocks in groups of GROUP_M rows of tiles, so that neighbours share W tiles in L2.
    blocks_per_group = GROUP_M * num_pid_n
    first_m = (pid // blocks_per_group) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % blocks_per_group) % group_rows
    pid_n = (pid % blocks_per_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N

    # Split s of K covers tiles [s * tiles, (s + 1) * tiles); tiles past K load nothing.
    tiles = tl.cdiv(K, SPLIT_K * BLOCK_K)
    k_begin = pid_k * tiles * BLOCK_K
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for tile in range(0, tiles):
        k0 = k_begin + tile * BLOCK_K
        kk = k0 + offs_k
        mask_k = kk < K
        a = tl.load(a_ptr + offs_m[:, None] * K + kk[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        if UNPACK == 1:
            # Each word once: [BLOCK_K / P, BLOCK_N] words, shifted into [BLOCK_K / P, P,
            # BLOCK_N] codes, read row-major as [BLOCK_K, BLOCK_N] (row kw * P + j).
            kw = k0 // (32 // BITS) + tl.arange(0, BLOCK_K // (32 // BITS))
            words = tl.load(w_ptr + kw[:, None] * N + offs_n[None, :],
                            mask=(kw < K // (32 // BITS))[:, None] & mask_n[None, :], other=0)
            shifts = tl.arange(0, 32 // BITS) * BITS
            q = (words[:, None, :] >> shifts[None, :, None]) & ((1 << BITS) - 1)
            q = tl.reshape(q, (BLOCK_K, BLOCK_N))
        else:
            # Each row of K loads its own copy of its word (the classic GPTQ-Triton gather).
            words = tl.load(w_ptr + (kk // (32 // BITS))[:, None] * N + offs_n[None, :],
                            mask=mask_k[:, None] & mask_n[None, :], other=0)
            q = (words >> ((kk % (32 // BITS)) * BITS)[:, None]) & ((1 << BITS) - 1)
        w = (q - (1 << (BITS - 1))).to(tl.float16)
        if GROUP > 0:
            if GROUP % BLOCK_K == 0:
                # The whole K tile shares one row of scales.
                s = tl.load(s_ptr + (k0 // GROUP) * N + offs_n, mask=mask_n & (k0 < K),
                            other=0.0)
                w = w * s[None, :]
            else:
                s = tl.load(s_ptr + (kk // GROUP)[:, None] * N + offs_n[None, :],
                            mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                w = w * s
        acc += tl.dot(a, w)
    if GROUP == 0:
        s = tl.load(s_ptr + offs_n, mask=mask_n, other=0.0)
        acc = acc * s.to(tl.float32)[None, :]
    c = acc.to(tl.float16)
    c_ptrs = c_ptr + offs_m[:, None] * N + offs_n[None, :]
    mask_c = mask_m[:, None] & mask_n[None, :]
    if SPLIT_K == 1:
        tl.store(c_ptrs, c, mask=mask_c)
    else:
        tl.atomic_add(c_ptrs, c, mask=mask_c, sem="relaxed")


def _config(bm, bn, bk, split, group_m, warps, stages):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
                          "GROUP_M": group_m}, num_warps=warps, num_stages=stages)


# Decode: few rows of A, so the blocks come from N and from splitting K.
SMALL_M_CONFIGS = [
    _config(16, 32, 128, 1, 1, 4, 4),
    _config(16, 64, 128, 1, 1, 4, 4),
    _config(16, 64, 256, 1, 1, 4, 3),
    _config(16, 32, 128, 4, 1, 4, 4),
    _config(16, 64, 128, 2, 1, 4, 4),
    _config(16, 64, 256, 4, 1, 4, 3),
    _config(16, 128, 128, 2, 1, 4, 3),
    _config(16, 32, 256, 8, 1, 4, 3),
    _config(32, 64, 128, 2, 1, 4, 4),
    _config(64, 64, 64, 1, 8, 4, 4),
]
# Prefill: tiles big enough to feed the tensor cores from shared memory.
LARGE_M_CONFIGS = [
    _config(128, 128, 64, 1, 8, 8, 3),
    _config(128, 256, 64, 1, 8, 8, 3),
    _config(256, 128, 64, 1, 8, 8, 3),
    _config(64, 128, 64, 1, 8, 4, 4),
    _config(128, 64, 64, 1, 8, 4, 4),
    _config(128, 128, 32, 1, 8, 4, 4),
]
# Small M runs SPLIT_K > 1 configurations, which add into C: the autotuner zeroes C before each
# of its benchmark runs, and triton_quant_matmul hands the kernel a zeroed C.
_small_m = triton.autotune(configs=SMALL_M_CONFIGS, key=["M", "N", "K", "BITS", "GROUP", "UNPACK"],
                           reset_to_zero=["c_ptr"])(_quant_matmul_kernel)
_large_m = triton.autotune(configs=LARGE_M_CONFIGS,
                           key=["M", "N", "K", "BITS", "GROUP", "UNPACK"])(_quant_matmul_kernel)
SMALL_M_LIMIT = 64  # M up to this takes the small-M entry point
_unpack = [1]  # 1: reshape, 0: gather (after the reshape failed to compile)


def _group_rows(k, group):
    """The rows of K one scale covers: `group`, or all of K for per-channel (group 0/None)."""
    return k if not group else group


def make_weights(k, n, bits, group, device="cuda", seed=0):
    """Random codes and scales for a [K, N] weight: (packed, scales, w_f16) where packed is the
    int32 [K / (32 / bits), N] storage, scales the f16 [K / group, N] ([1, N] for per-channel,
    group 0 or None) and w_f16 the dequantized weight (exactly what the kernel computes in f16:
    (q - 2^(bits-1)) * scale, one rounding)."""
    if bits not in (4, 8):
        raise ValueError(f"bits is 4 or 8, not {bits}")
    pack = 32 // bits
    rows = _group_rows(k, group)
    if k % pack or k % rows:
        raise ValueError(f"K={k} must be a multiple of {pack} (codes per word) and of the group "
                         f"size {rows}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    codes = torch.randint(0, 1 << bits, (k, n), generator=generator, dtype=torch.int64)
    # Scales around 0.02 / 2^(bits-2): dequantized weights of about +-0.02..0.04.
    scales = (torch.rand((k // rows, n), generator=generator) + 0.5) * (0.04 / (1 << (bits - 1)))
    scales = scales.to(torch.float16)
    shifts = (torch.arange(pack, dtype=torch.int64) * bits).view(1, pack, 1)
    words = (codes.view(k // pack, pack, n) << shifts).sum(dim=1)  # < 2^32: exact in int64
    words = torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)
    w = (codes - (1 << (bits - 1))).to(torch.float32) * scales.to(torch.float32).repeat_interleave(
        rows, dim=0)
    return words.to(device), scales.to(device), w.to(torch.float16).to(device)


def triton_quant_matmul(a, packed, scales, bits, group):
    """C = A x dequant(W) with the Triton kernel (autotuned per M, N, K, bits, group)."""
    if a.dtype != torch.float16 or scales.dtype != torch.float16 or packed.dtype != torch.int32:
        raise TypeError("A and the scales are f16, the packed weights int32")
    if not (a.is_contiguous() and packed.is_contiguous() and scales.is_contiguous()):
        raise ValueError("A, the packed weights and the scales must be contiguous")
    m, k = a.shape
    n = packed.shape[1]
    rows = _group_rows(k, group)
    if packed.shape[0] * (32 // bits) != k or scales.shape != (k // rows, n):
        raise ValueError(f"shapes: A {tuple(a.shape)}, packed {tuple(packed.shape)}, scales "
                         f"{tuple(scales.shape)} do not fit bits={bits}, group={group}")
    group_constexpr = 0 if not group else group
    if m <= SMALL_M_LIMIT:
        c = torch.zeros((m, n), device=a.device, dtype=torch.float16)
        tuner = _small_m
    else:
        c = torch.empty((m, n), device=a.device, dtype=torch.float16)
        tuner = _large_m

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),
                meta["SPLIT_K"])

    try:
        tuner[grid](a, packed, scales, c, m, n, k, BITS=bits, GROUP=group_constexpr,
                    UNPACK=_unpack[0])
    except Exception as error:  # a Triton that cannot compile the reshape: the gather instead
        if _unpack[0] != 1:
            raise
        print(f"triton_quant_gemm: the reshape unpacking failed ({type(error).__name__}: "
              f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); using the "
              "gather unpacking", file=sys.stderr)
        _unpack[0] = 0
        c.zero_()
        tuner[grid](a, packed, scales, c, m, n, k, BITS=bits, GROUP=group_constexpr,
                    UNPACK=_unpack[0])
    return c


def unpacking():
    """Which way the codes leave their words: "reshape" (each word loaded once) or "gather"
    (the fallback when this Triton cannot compile the reshape)."""
    return "reshape" if _unpack[0] == 1 else "gather"


def chosen_config(m):
    """The configuration the autotuner chose last for the entry point that M takes."""
    config = getattr(_small_m if m <= SMALL_M_LIMIT else _large_m, "best_config", None)
    return str(config) if config is not None else None


def cublas_f16(a, w_f16):
    """The f16 GEMM on dequantized weights (cuBLAS through torch): the unquantized baseline."""
    return torch.matmul(a, w_f16)


def bench(fn, args_list, iters=100, warmup=10, flush_l2=True):
    """Median milliseconds of fn(*args) over `iters` timed calls, each between two CUDA events.
    Calls rotate over `args_list` (give several copies of the weights to defeat L2 that way);
    with flush_l2 a 256 MB buffer is read before each call, outside the timed interval (a cold,
    clean L2)."""
    if not args_list:
        raise ValueError("bench needs at least one argument tuple")
    flush = torch.zeros(256 * 1024 * 1024 // 4, dtype=torch.float32, device="cuda") if flush_l2 \
        else None
    for i in range(warmup):
        fn(*args_list[i % len(args_list)])
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        if flush is not None:
            flush.sum()
        starts[i].record()
        fn(*args_list[i % len(args_list)])
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def check(m, n, k, bits, group, device="cuda"):
    """The largest error of triton_quant_matmul against torch (A x dequantized W in f32),
    relative to the largest output; raises AssertionError above 1e-2. The second call is
    checked: the first may include autotuning."""
    packed, scales, w = make_weights(k, n, bits, group, device)
    a = torch.randn((m, k), generator=torch.Generator(device="cpu").manual_seed(1)).to(
        device=device, dtype=torch.float16)
    reference = a.float() @ w.float()
    for _ in range(2):
        out = triton_quant_matmul(a, packed, scales, bits, group)
    torch.cuda.synchronize()
    error = ((out.float() - reference).abs().max() / reference.abs().max().clamp_min(1e-6)).item()
    if not error < 1e-2:
        raise AssertionError(f"triton_quant_matmul M={m} N={n} K={k} u{bits} group={group}: "
                             f"relative error {error:.3g}")
    return error


def _case(m, n, k, bits, group, iters, copies):
    error = check(m, n, k, bits, group)
    weights = [make_weights(k, n, bits, group, "cuda", seed=i) for i in range(copies)]
    a = torch.randn((m, k), device="cuda", dtype=torch.float16)
    triton_ms = bench(triton_quant_matmul, [(a, p, s, bits, group) for p, s, _ in weights],
                      iters=iters)
    cublas_ms = bench(cublas_f16, [(a, w) for _, _, w in weights], iters=iters)
    packed, scales, _ = weights[0]
    quantized_bytes = (a.numel() * 2 + packed.numel() * 4 + scales.numel() * 2 + m * n * 2)
    flops = 2.0 * m * n * k
    return {"m": m, "n": n, "k": k, "bits": bits, "group": group or "per-channel",
            "triton_ms": triton_ms, "cublas_f16_ms": cublas_ms,
            "speedup_vs_cublas_f16": cublas_ms / triton_ms,
            "triton_tflops": flops / triton_ms / 1e9,
            "triton_gbps": quantized_bytes / triton_ms / 1e6,
            "triton_config": chosen_config(m), "triton_unpacking": unpacking(),
            "relative_error": error}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a handful of cases only")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--copies", type=int, default=1,
                        help="weight copies to rotate over (besides the L2 flush)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("triton_quant_gemm: needs a CUDA GPU")
    ms = [1, 16] if args.quick else [1, 16, 64, 256, 1024, 4096]
    shapes = [(4096, 4096)] if args.quick else [(4096, 4096), (14336, 4096), (4096, 14336)]
    schemes = [(4, 128), (8, 128)] if args.quick else [(4, 128), (4, 0), (8, 128), (8, 0)]
    rows = []
    for n, k in shapes:
        for bits, group in schemes:
            for m in ms:
                row = _case(m, n, k, bits, group, args.iters, args.copies)
                rows.append(row)
                print(f"M={m} N={n} K={k} u{bits} g={row['group']}: triton "
                      f"{row['triton_ms']:.4f} ms, cublas f16 {row['cublas_f16_ms']:.4f} ms",
                      file=sys.stderr)
    result = {"triton": triton.__version__, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(), "iters": args.iters,
              "l2": "256 MB buffer written before each timed call", "rows": rows}
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
