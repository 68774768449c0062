"""The example kernels written in Python (twins of examples/*.cpp), run on the interpreter and
checked against numpy."""
import math

import ml_dtypes
import numpy as np
import pytest

import nibble as nb
from nibble import f16, f32, u4

LOG2E = 1.4426950408889634


@nb.jit
def vector_add(x: nb.ptr, y: nb.ptr, out: nb.ptr, n: int, block: nb.constexpr = 256):
    nb.launch(grid=nb.cdiv(n, block), warps=4)
    X, Y, Out = nb.view(x, [n]), nb.view(y, [n]), nb.view(out, [n])
    start = nb.block_id(0) * block
    xs = nb.load(X[start:start + block])
    ys = nb.load(Y[start:start + block])
    nb.store(Out[start:start + block], xs + ys)


@nb.jit
def softmax(x: nb.ptr[f32], y: nb.ptr[f32], rows: int, cols: int,
            br: nb.constexpr = 4, bc: nb.constexpr = 64):
    nb.launch(grid=nb.cdiv(rows, br), warps=4)
    X, Y = nb.view(x, [rows, cols]), nb.view(y, [rows, cols])
    r0 = nb.block_id(0) * br
    row_max = nb.full([br, 1], -math.inf)
    for c0 in nb.range(0, cols, bc):
        tile = nb.load(X[r0:r0 + br, c0:c0 + bc], other=-math.inf)
        row_max = nb.maximum(row_max, nb.max(tile, axis=1))
    row_sum = nb.zeros([br, 1])
    for c0 in nb.range(0, cols, bc):
        tile = nb.load(X[r0:r0 + br, c0:c0 + bc], other=-math.inf)
        row_sum += nb.sum(nb.exp2((tile - row_max) * LOG2E), axis=1)
    for c0 in nb.range(0, cols, bc):
        tile = nb.load(X[r0:r0 + br, c0:c0 + bc], other=-math.inf)
        e = nb.exp2((tile - row_max) * LOG2E)
        nb.store(Y[r0:r0 + br, c0:c0 + bc], e / row_sum)


@nb.jit
def gemm(a: nb.ptr[f16], b: nb.ptr[f16], c: nb.ptr[f16], m: int, n: int, k: int,
         bm: nb.constexpr = 64, bn: nb.constexpr = 64, bk: nb.constexpr = 32,
         stages: nb.constexpr = 2, swizzle: nb.constexpr = "none"):
    """C = A · B through shared memory; with stages > 1 the copies run stages - 1 steps
    ahead of the math in a ring of shared tiles."""
    nb.launch(grid=(nb.cdiv(n, bn), nb.cdiv(m, bm)), warps=4)
    A, B, C = nb.view(a, [m, k]), nb.view(b, [k, n]), nb.view(c, [m, n])
    m0 = nb.block_id(1) * bm
    n0 = nb.block_id(0) * bn
    a_tiles = nb.shared([stages * bm, bk], f16, swizzle=swizzle)
    b_tiles = nb.shared([stages * bk, bn], f16, swizzle=swizzle)
    acc = nb.zeros([bm, bn], f32)
    for s in range(stages - 1):  # the prologue, unrolled while compiling
        nb.copy_async(a_tiles[s * bm:(s + 1) * bm, :], A[m0:m0 + bm, s * bk:(s + 1) * bk])
        nb.copy_async(b_tiles[s * bk:(s + 1) * bk, :], B[s * bk:(s + 1) * bk, n0:n0 + bn])
        nb.commit()
    for k0 in nb.range(0, k, bk):
        step = k0 // bk
        if stages == 1:
            nb.copy_async(a_tiles[0:bm, :], A[m0:m0 + bm, k0:k0 + bk])
            nb.copy_async(b_tiles[0:bk, :], B[k0:k0 + bk, n0:n0 + bn])
        else:
            ahead = k0 + (stages - 1) * bk
            if ahead < k:
                ring = (step + stages - 1) % stages
                nb.copy_async(a_tiles[ring * bm:ring * bm + bm, :], A[m0:m0 + bm, ahead:ahead + bk])
                nb.copy_async(b_tiles[ring * bk:ring * bk + bk, :], B[ahead:ahead + bk, n0:n0 + bn])
        nb.commit()
        nb.wait(stages - 1)
        nb.barrier()
        slot = step % stages
        a_tile = nb.load(a_tiles[slot * bm:slot * bm + bm, :])
        b_tile = nb.load(b_tiles[slot * bk:slot * bk + bk, :])
        acc += nb.dot(a_tile, b_tile)
        nb.barrier()  # the slot is overwritten by the copy of a later step
    nb.store(C[m0:m0 + bm, n0:n0 + bn], nb.cast(acc, f16))


@nb.jit
def gemv_u4(x: nb.ptr[f16], w: nb.ptr[u4], s: nb.ptr[f16], y: nb.ptr[f16], n: int, k: int,
            group: nb.constexpr = 128, bn: nb.constexpr = 64, bk: nb.constexpr = 256):
    """y = x · dequant(W), dequant(W)[k, n] = (W[k, n] - 8) · S[k // group, n]."""
    nb.static_assert(bk % group == 0 or group % bk == 0, "bk and group must divide one another")
    scale_rows = bk // group if bk >= group else 1
    nb.multiple_of(k, group)
    nb.launch(grid=nb.cdiv(n, bn), warps=4)
    X, W = nb.view(x, [1, k]), nb.view(w, [k, n])
    S, Y = nb.view(s, [k // group, n]), nb.view(y, [1, n])
    n0 = nb.block_id(0) * bn
    acc = nb.zeros([1, bn], f32)
    for k0 in nb.range(0, k, bk):
        xs = nb.load(X[:, k0:k0 + bk])
        codes = nb.load(W[k0:k0 + bk, n0:n0 + bn])
        scales = nb.load(S[k0 // group:(k0 + bk) // group if bk >= group else k0 // group + 1,
                           n0:n0 + bn])
        weights = (nb.cast(codes, f16) - 8) * nb.repeat(scales, bk // scale_rows, axis=0)
        acc += nb.dot(xs, weights)
    nb.store(Y[:, n0:n0 + bn], nb.cast(acc, f16))


def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("np_dtype", [np.float32, np.float16, ml_dtypes.bfloat16, np.int32])
def test_vector_add(np_dtype):
    n = 1000  # not a multiple of the block: the tail is masked
    x = rng().uniform(-4, 4, n).astype(np_dtype)
    y = rng().uniform(-4, 4, n).astype(np_dtype)
    out = np.zeros(n, np_dtype)
    nb.interpret(vector_add)(x, y, out, n)
    np.testing.assert_array_equal(out, (x + y).astype(np_dtype))


@pytest.mark.parametrize("rows,cols", [(8, 256), (5, 100)])
def test_softmax(rows, cols):
    x = rng().normal(size=(rows, cols)).astype(np.float32)
    y = np.full_like(x, np.nan)
    nb.interpret(softmax)(x, y, rows, cols)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("stages,bk,swizzle", [(1, 16, "none"), (2, 16, "none"), (3, 16, "none"),
                                               (2, 64, "128B")])
def test_gemm_through_shared_memory(stages, bk, swizzle):
    m, n, k = 70, 96, 200  # ragged: copies zero-fill and the store is masked
    a = rng().uniform(-1, 1, (m, k)).astype(np.float16)
    b = rng().uniform(-1, 1, (k, n)).astype(np.float16)
    c = np.zeros((m, n), np.float16)
    nb.interpret(gemm)(a, b, c, m, n, k, bm=32, bn=64, bk=bk, stages=stages, swizzle=swizzle)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c.astype(np.float64), reference, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("group,bk", [(128, 256), (64, 64), (128, 64)])
def test_gemv_u4(group, bk):
    n, k = 96, 512
    x = rng().uniform(-1, 1, (1, k)).astype(np.float16)
    codes = rng().integers(0, 16, (k, n))
    scales = rng().uniform(0.01, 0.1, (k // group, n)).astype(np.float16)
    w = nb.pack(codes, u4)
    assert w.dtype == np.uint8 and w.size == k * n // 2
    y = np.zeros((1, n), np.float16)
    nb.interpret(gemv_u4)(x, w, scales, y, n, k, group=group, bn=32, bk=bk)
    weights = (codes - 8).astype(np.float16) * np.repeat(scales, group, axis=0)
    reference = x.astype(np.float64) @ weights.astype(np.float64)
    np.testing.assert_allclose(y.astype(np.float64), reference, rtol=2e-3, atol=2e-3)


def test_grid_from_the_launch_or_the_brackets():
    n = 512
    x, y = np.ones(n, np.float32), np.full(n, 2.0, np.float32)
    out = np.zeros(n, np.float32)
    nb.interpret(vector_add)[1](x, y, out, n)  # one block of 256: half the vector
    assert (out[:256] == 3).all() and (out[256:] == 0).all()
    nb.interpret(vector_add)[...](x, y, out, n)  # the kernel's own grid
    assert (out == 3).all()
    out[:] = 0
    nb.interpret(vector_add)[lambda args: (nb_cdiv(args["n"], 256),)](x, y, out, n)
    assert (out == 3).all()


def nb_cdiv(a, b):
    return -(-a // b)


def test_interpret_environment_variable(monkeypatch):
    n = 64
    x, y, out = np.ones(n, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32)
    monkeypatch.setenv("NIBBLE_INTERPRET", "1")
    vector_add(x, y, out, n)
    assert (out == 2).all()
    monkeypatch.setenv("NIBBLE_INTERPRET", "0")  # the GPU path: numpy arrays are refused
    with pytest.raises((TypeError, RuntimeError), match="interpret"):
        vector_add(x, y, out, n)


def test_device_print_reaches_python(capsys):
    @nb.jit
    def show(n: int):
        nb.launch(grid=1)
        t = nb.full([2, 2], 1.5)
        print("tile", t)
        print("n", n * 2)

    nb.interpret(show)(21)
    printed = capsys.readouterr().out
    assert "tile" in printed and "1.5" in printed and "42" in printed


def test_while_break_and_scalar_variables():
    @nb.jit
    def count(out: nb.ptr[nb.i32], limit: int):
        nb.launch(grid=1)
        Out = nb.view(out, [2])
        i = nb.i32(0)
        steps = nb.i32(0)
        while i < 1000:
            i += 3
            steps = steps + 1
            if i >= limit:
                break
        nb.store(Out[0:2], nb.zeros([2], nb.i32) + i)
        if steps > 2:
            nb.store(Out[1:2], nb.zeros([1], nb.i32) + steps)

    out = np.zeros(2, np.int32)
    nb.interpret(count)(out, 10)
    assert out.tolist() == [12, 4]


@nb.jit
def last_block_sum(x: nb.ptr[f32], workspace: nb.ptr[f32], counter: nb.ptr[nb.i32],
                   y: nb.ptr[f32], blocks: nb.constexpr = 8):
    """Each block stores its row of x; the last to arrive sums the rows in row order."""
    nb.launch(grid=blocks, warps=2)
    X, W = nb.view(x, [blocks, 64]), nb.view(workspace, [blocks, 64])
    Counter, Y = nb.view(counter, [1]), nb.view(y, [1, 64])
    b = nb.block_id(0)
    nb.store(W[b:b + 1, 0:64], nb.load(X[b:b + 1, 0:64]))
    arrived = nb.fetch_add(Counter[0])
    if arrived == blocks - 1:
        total = nb.zeros([1, 64])
        for r in nb.range(0, blocks):
            total += nb.load(W[r:r + 1, 0:64])
        nb.store(Y[0:1, 0:64], total)
        nb.store(Counter[0:1], nb.zeros([1], nb.i32))


def test_fetch_add_hands_the_stores_to_the_last_block():
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (8, 64)).astype(np.float32)
    workspace = np.zeros((8, 64), np.float32)
    counter = np.zeros(1, np.int32)
    for _ in range(2):  # the counter is back at zero for the next call
        y = np.full((1, 64), np.nan, np.float32)
        nb.interpret(last_block_sum)(x, workspace, counter, y)
        expected = np.zeros(64, np.float32)
        for r in range(8):
            expected += x[r]
        assert np.array_equal(y[0], expected)
        assert counter[0] == 0



@nb.jit
def cluster_rotate(x: nb.ptr[f32], y: nb.ptr[f32], blocks: nb.constexpr = 8,
                   cluster: nb.constexpr = 4):
    """Clusters of `cluster` blocks: each leaves its row of x, doubled, in shared memory; after
    the cluster barrier each stores its right neighbour's row (rank + 1, wrapping)."""
    nb.launch(grid=blocks, warps=2, cluster=cluster)
    X, Y = nb.view(x, [blocks, 64]), nb.view(y, [blocks, 64])
    b = nb.block_id(0)
    row = nb.shared([1, 64], f32)
    values = nb.load(X[b:b + 1, 0:64])
    nb.store(row[0:1, 0:64], values + values)
    nb.cluster_barrier()
    nb.store(Y[b:b + 1, 0:64], nb.load(row[0:1, 0:64], block=(b + 1) % cluster))
    nb.cluster_barrier()


def cluster_rotate_expected(x, cluster=4):
    rows = np.arange(x.shape[0])
    neighbour = rows - rows % cluster + (rows % cluster + 1) % cluster
    return 2 * x[neighbour]


def test_clusters_read_their_peers_shared_tiles():
    x = np.random.default_rng(9).uniform(-2, 2, (8, 64)).astype(np.float32)
    y = np.full((8, 64), np.nan, np.float32)
    nb.interpret(cluster_rotate)(x, y)
    assert np.array_equal(y, cluster_rotate_expected(x))
    assert "cluster (4, 1, 1)" in cluster_rotate.specialize().ir


def test_cluster_errors_name_the_problem():
    @nb.jit
    def bad_cluster(x: nb.ptr[f32]):
        nb.launch(grid=8, cluster=(2, 0))
        X = nb.view(x, [8])

    with pytest.raises(nb.CompileError, match="cluster is 1 to 3 positive compile-time integers"):
        nb.interpret(bad_cluster)(np.zeros(8, np.float32))

    x = np.zeros((8, 64), np.float32)
    with pytest.raises(nb.InterpreterError, match=r"not a whole number of clusters \(3, 1, 1\)"):
        nb.interpret(cluster_rotate)(x, np.zeros_like(x), cluster=3)
