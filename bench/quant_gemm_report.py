"""The quantized GEMM benchmark report: nibble's times (bench_quant_gemm's JSON) joined with the
peers measured in the same run on the same GPU, as JSON, a Markdown table and an SVG plot.

    python3 bench/quant_gemm_report.py NIBBLE.json --out DIR [--no-triton] [--triton-m 1,16,4096]

For every (K, N, M) nibble measured: cuBLAS f16 (torch.matmul with a dequantized f16 weight) and,
for u4 and u8 with groups of 128, the Triton dequantizing GEMM of bench/peers/triton_quant_gemm.py
(autotuned per shape). Every peer call is timed like nibble's: CUDA events around one call after
a buffer of four times the L2 was read (a cold, clean L2: a flush that writes would charge the
timed call with the write-back of its dirty lines), median of the repeats.

Ratios, all from this run:
  bandwidth SOL = (bytes of W + scales + A + C) / copy bandwidth / time  (copy bandwidth: the
                  device-to-device copy nibble's bench measured)
  compute SOL   = 2 M N K / time / peak, peak = the best cuBLAS f16 TFLOP/s seen in this run
  speedup       = peer time / nibble time
"""
import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

FLUSH_BYTES = 512 * 1024 * 1024


def time_ms(fn, repeats, flush):
    """Median milliseconds of fn() over `repeats` calls, each after `flush` was read."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        flush.sum()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure_peers(runs, repeats, with_triton, triton_ms_filter=None):
    """cuBLAS (per K, N, M) and Triton (per K, N, M, bits) times in milliseconds."""
    flush = torch.zeros(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")
    cublas, triton_ms, triton_errors = {}, {}, {}
    checked = set()
    peer = None
    if with_triton:
        try:
            import triton_quant_gemm as peer
        except Exception as error:  # report, and go on without the peer
            print(f"quant_gemm_report: no Triton peer ({error})", file=sys.stderr)
    shapes = sorted({(r["k"], r["n"], r["m"]) for r in runs})
    for k, n, m in shapes:
        a = torch.randn((m, k), device="cuda", dtype=torch.float16)
        w = (torch.randn((k, n), device="cuda", dtype=torch.float16) * 0.02)
        cublas[(k, n, m)] = time_ms(lambda: torch.matmul(a, w), repeats, flush)
        del w
        if peer is None:
            continue
        for bits in (4, 8):
            if triton_ms_filter and m not in triton_ms_filter:
                continue
            if not any(r["k"] == k and r["n"] == n and r["m"] == m and r["type"] == f"u{bits}"
                       and r["group"] == 128 for r in runs):
                continue
            packed, scales, w_f16 = peer.make_weights(k, n, bits, 128, "cuda")
            del w_f16
            try:
                if (k, n, bits) not in checked:  # the peer's answer, once per weight shape
                    peer.check(16, n, k, bits, 128)
                    checked.add((k, n, bits))
                triton_ms[(k, n, m, bits)] = time_ms(
                    lambda: peer.triton_quant_matmul(a, packed, scales, bits, 128), repeats,
                    flush)
            except Exception as error:  # a failing peer is reported, not hidden
                triton_errors[(k, n, m, bits)] = f"{type(error).__name__}: {error}"[:200]
            print(f"peers K={k} N={n} M={m} u{bits}: cublas {cublas[(k, n, m)]:.4f} ms, triton "
                  f"{triton_ms.get((k, n, m, bits))}", file=sys.stderr)
    return cublas, triton_ms, triton_errors


def svg_plot(rows, path, title):
    """Speedup over cuBLAS f16 against M (log2 axis), one line per weight type."""
    width, height, left, bottom = 720, 420, 60, 50
    series = {}
    for r in rows:
        series.setdefault(r["type"], []).append((r["m"], r["speedup_vs_cublas"]))
    ms = sorted({m for points in series.values() for m, _ in points})
    top = max([s for points in series.values() for _, s in points] + [1.0]) * 1.1
    def x_of(m):
        import math
        span = max(math.log2(ms[-1]) - math.log2(ms[0]), 1)
        return left + (width - left - 20) * (math.log2(m) - math.log2(ms[0])) / span
    def y_of(s):
        return height - bottom - (height - bottom - 30) * s / top
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="{width / 2}" y="18" text-anchor="middle">{title}</text>',
             f'<line x1="{left}" y1="{y_of(1)}" x2="{width - 20}" y2="{y_of(1)}" '
             'stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{left - 5}" y="{y_of(1) + 4}" text-anchor="end">1x</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 20}" y2="{height - bottom}" '
             'stroke="black"/>']
    for m in ms:
        parts.append(f'<text x="{x_of(m)}" y="{height - bottom + 16}" text-anchor="middle">'
                     f'{m}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">M</text>')
    for i, (name, points) in enumerate(sorted(series.items())):
        points.sort()
        color = colors[i % len(colors)]
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{x_of(m):.1f},{y_of(s):.1f}"
                          for j, (m, s) in enumerate(points))
        parts.append(f'<path d="{path_d}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{width - 90}" y="{40 + 14 * i}" fill="{color}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as file:
        file.write("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("nibble_json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--triton-m", help="measure the Triton peer at these M only (its "
                        "autotuning takes seconds per shape)")
    args = parser.parse_args()
    with open(args.nibble_json) as file:
        nibble = json.load(file)
    runs = nibble["runs"]
    only = {int(m) for m in args.triton_m.split(",")} if args.triton_m else None
    cublas, triton_ms, triton_errors = measure_peers(runs, args.repeats, not args.no_triton, only)
    peak_tflops = max(2.0 * k * n * m / (ms * 1e-3) / 1e12 for (k, n, m), ms in cublas.items())
    rows = []
    for r in runs:
        k, n, m = r["k"], r["n"], r["m"]
        us = r["us"]
        row = dict(r)
        row["bandwidth_sol"] = r["bytes"] / (nibble["copy_gbps"] * 1e3) / us
        row["tflops"] = 2.0 * m * n * k / us / 1e6
        row["compute_sol"] = row["tflops"] / peak_tflops
        row["cublas_f16_us"] = cublas[(k, n, m)] * 1e3
        row["speedup_vs_cublas"] = row["cublas_f16_us"] / us
        bits = int(r["type"][1:]) if r["type"] in ("u4", "u8") else None
        if bits and r["group"] == 128 and (k, n, m, bits) in triton_ms:
            row["triton_us"] = triton_ms[(k, n, m, bits)] * 1e3
            row["speedup_vs_triton"] = row["triton_us"] / us
        elif bits and (k, n, m, bits) in triton_errors:
            row["triton_error"] = triton_errors[(k, n, m, bits)]
        rows.append(row)
    result = {"device": nibble["device"], "copy_gbps": nibble["copy_gbps"],
              "cublas_f16_peak_tflops": peak_tflops, "method": nibble["method"],
              "torch": torch.__version__, "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "quant_gemm.json"), "w") as file:
        json.dump(result, file, indent=1)
    lines = [f"# Quantized GEMM on {nibble['device']}", "",
             f"Copy bandwidth {nibble['copy_gbps']:.0f} GB/s; best cuBLAS f16 in this run "
             f"{peak_tflops:.0f} TFLOP/s. {nibble['method']}.", "",
             "| W | K | N | M | nibble µs | BW SOL | compute SOL | cuBLAS f16 µs | × cuBLAS | "
             "Triton µs | × Triton | kernel |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["k"], r["n"], r["type"], r["m"])):
        triton_cell = f"{r['triton_us']:.1f}" if "triton_us" in r else ("error" if
                                                                         "triton_error" in r
                                                                         else "")
        lines.append(
            f"| {r['type']} | {r['k']} | {r['n']} | {r['m']} | {r['us']:.1f} | "
            f"{100 * r['bandwidth_sol']:.0f}% | {100 * r['compute_sol']:.0f}% | "
            f"{r['cublas_f16_us']:.1f} | {r['speedup_vs_cublas']:.2f} | {triton_cell} | "
            f"{r.get('speedup_vs_triton', float('nan')):.2f} | {r['config']} |")
    with open(os.path.join(args.out, "quant_gemm.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    largest = max(((r["k"] * r["n"], r["k"], r["n"]) for r in rows))
    svg_plot([r for r in rows if (r["k"], r["n"]) == largest[1:]],
             os.path.join(args.out, "quant_gemm_speedup.svg"),
             f"nibble speedup over cuBLAS f16, K={largest[1]} N={largest[2]}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
