"""The three passes of explicit CG over a row's gathered features (rank 16 and up), in 16-lane vector registers.

``kernels.als_cg._cg_rows`` keeps a row's gathered features y_q (k floats each) in a buffer x [longest, k]
and passes over them: once gathering (with the first residual), once per CG step, once for the squared
error. Each pass here holds its vectors (the row's current solution or search direction, and its sums)
in registers for the whole row, as ``n_vec`` = ceil(k / 16) vectors, the last one masked; as Numba
loops the sums went through memory on every rating. Kernel only, one thread, bench_kernel's block (5.2 M
ratings over 160 k src rows) in alternating rounds against the Numba loops: rank 64 51-58 against 66
ns per rating (in cache: 30 against 44), rank 20 22 against 31 (the transposed kernel then used up to
rank 20), rank 33 35 against 41, rank 128 82 against 100.
"""

from numba import types
from numba.extending import intrinsic

from recsys_dist.kernels.lanes import LANES, Vectors, counted_loop, flat, flat_f32, gather_matrix

MAX_VECTORS = 16  # up to rank 256 (beyond, _cg_rows runs its Numba loops): 2 n_vec registers of 32 in use
ROWS_AHEAD = 8  # ratings ahead whose src rows are prefetched (5 cache lines each at rank 64): 4-8 measured best


def _literal_vectors(n_vec) -> int | None:
    if isinstance(n_vec, types.IntegerLiteral) and 1 <= n_vec.literal_value <= MAX_VECTORS:
        return n_vec.literal_value
    return None


def _masks(v, k, n_vec):
    return [v.lanes_below(k, LANES * i) for i in range(n_vec)]


def _dot(v, xs, ys):
    """sum over lanes of xs . ys (lists of vectors), the vectors chained in order, the lanes by ``hsum``."""
    acc = v.builder.fmul(xs[0], ys[0])
    for x, y in zip(xs[1:], ys[1:]):
        acc = v.fma(x, y, acc)
    return v.hsum(acc)


@intrinsic
def gather_rows(typingctx, x, t, res, src, indices, values, start, end, last, mu, sol, n_vec):
    """The gather pass of a CSR row's ratings pos in [start, end), j = indices[pos], k = src.shape[1] - 1:
    x[q] = src[j, :k] (q = pos - start), t[q] = float32(values[pos] - mu - src[j, k]) and
    res[:k + 1] = sum_q s_q [x[q], 1] with s_q = t_q - x[q] . sol[:k] - sol[k], the first residual before
    the penalty. x [longest, k] and src: float32, or both float16 bits (lanes.gather_matrix: the bits are
    copied to x as they are and widened for the arithmetic); t, res, sol: flat float32. Prefetches
    ROWS_AHEAD ratings ahead."""
    n = _literal_vectors(n_vec)
    if not (n and gather_matrix(x) and x.dtype == src.dtype and flat_f32(t) and flat_f32(res) and gather_matrix(src)
            and flat(indices, types.Integer)
            and flat(values, types.Float) and flat_f32(sol)):
        return None
    sig = types.void(x, t, res, src, indices, values, types.intp, types.intp, types.intp, types.float64, sol, n_vec)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        x_a, t_a, res_a, src_a, idx_a, val_a = (context.make_array(ty)(context, builder, a)
                                                for ty, a in zip(signature.args[:6], args[:6]))
        sol_p = context.make_array(signature.args[10])(context, builder, args[10]).data
        idx_t, val_t = signature.args[4].dtype, signature.args[5].dtype
        start, end, last, mu = args[6:10]
        n_cols = builder.extract_value(src_a.shape, 1)
        k = builder.sub(n_cols, v.const(1))
        masks = _masks(v, k, n)
        sol_v = [v.load(sol_p, LANES * i, masks[i]) for i in range(n)]
        sol_k = builder.load(builder.gep(sol_p, [k]))
        half = signature.args[3].dtype == types.uint16
        row_bytes = builder.mul(n_cols, v.const(2 if half else 4))

        def src_row(pos):
            j = context.cast(builder, builder.load(builder.gep(idx_a.data, [pos])), idx_t, types.intp)
            return builder.gep(src_a.data, [builder.mul(j, n_cols)])

        pos, sums, close = counted_loop(builder, start, end, [v.zero] * n + [v.single(0.0)])
        ahead = builder.add(pos, v.const(ROWS_AHEAD))
        with builder.if_then(builder.icmp_signed("<", ahead, last)):
            line = builder.bitcast(src_row(ahead), v.byte_ptr)
            offset, _, close_lines = counted_loop(builder, v.const(0), builder.udiv(row_bytes, v.const(64)), [])
            v.prefetch(line, builder.mul(offset, v.const(64)))
            close_lines([])
            v.prefetch(line, builder.sub(row_bytes, v.const(1)))
        row = src_row(pos)
        if half:  # the bits go to x as they are (lossless); the arithmetic gets them widened
            bits = [v.load_bits(row, LANES * i, masks[i]) for i in range(n)]
            ys = [v.widen(b) for b in bits]
        else:
            ys = [v.load(row, LANES * i, masks[i]) for i in range(n)]
        value = context.cast(builder, builder.load(builder.gep(val_a.data, [pos])), val_t, types.float64)
        bias = v.scalar_f64(builder.gep(row, [k]))
        t_q = builder.fptrunc(builder.fsub(builder.fsub(value, mu), bias), v.f32)
        s = builder.fsub(t_q, builder.fadd(sol_k, _dot(v, ys, sol_v)))
        q = builder.sub(pos, start)
        builder.store(t_q, builder.gep(t_a.data, [q]))
        x_row = builder.gep(x_a.data, [builder.mul(q, k)])
        for i in range(n):
            if half:
                v.store_bits(bits[i], x_row, LANES * i, masks[i])
            else:
                v.store(ys[i], x_row, LANES * i, masks[i])
        s_v = v.splat(s)
        close([v.fma(s_v, ys[i], sums[i]) for i in range(n)] + [builder.fadd(sums[n], s)])
        for i in range(n):
            v.store(sums[i], res_a.data, LANES * i, masks[i])
        builder.store(sums[n], builder.gep(res_a.data, [k]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def apply_rows(typingctx, x, n_rows, p, w, lam, lam_b, n_vec):
    """w = (sum_q f_q f_q^T + diag(lam, ..., lam, lam_b)) p over the first n_rows gathered rows of x [longest, k]
    (float32 or float16 bits), f_q = [x[q], 1]: per row one dot product and one multiply-add into sums held in
    registers."""
    n = _literal_vectors(n_vec)
    if not (n and gather_matrix(x) and isinstance(n_rows, types.Integer) and flat_f32(p) and flat_f32(w)):
        return None
    sig = types.void(x, types.intp, p, w, types.float32, types.float32, n_vec)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        x_a = context.make_array(signature.args[0])(context, builder, args[0])
        p_p = context.make_array(signature.args[2])(context, builder, args[2]).data
        w_p = context.make_array(signature.args[3])(context, builder, args[3]).data
        n_rows, lam, lam_b = args[1], args[4], args[5]
        k = builder.extract_value(x_a.shape, 1)
        masks = _masks(v, k, n)
        p_v = [v.load(p_p, LANES * i, masks[i]) for i in range(n)]
        p_k = builder.load(builder.gep(p_p, [k]))
        q, sums, close = counted_loop(builder, v.const(0), n_rows, [v.zero] * n + [v.single(0.0)])
        x_row = builder.gep(x_a.data, [builder.mul(q, k)])
        ys = [v.load_f32(x_row, LANES * i, masks[i]) for i in range(n)]
        z = builder.fadd(p_k, _dot(v, ys, p_v))
        z_v = v.splat(z)
        close([v.fma(z_v, ys[i], sums[i]) for i in range(n)] + [builder.fadd(sums[n], z)])
        lam_v = v.splat(lam)
        for i in range(n):
            v.store(v.fma(lam_v, p_v[i], sums[i]), w_p, LANES * i, masks[i])
        builder.store(builder.fadd(sums[n], builder.fmul(lam_b, p_k)), builder.gep(w_p, [k]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def rows_sse(typingctx, x, t, n_rows, sol, n_vec):
    """sum over the first n_rows gathered rows of (t[q] - x[q] . sol[:k] - sol[k])^2, the terms in float64."""
    n = _literal_vectors(n_vec)
    if not (n and gather_matrix(x) and flat_f32(t) and isinstance(n_rows, types.Integer) and flat_f32(sol)):
        return None
    sig = types.float64(x, t, types.intp, sol, n_vec)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        x_a = context.make_array(signature.args[0])(context, builder, args[0])
        t_p = context.make_array(signature.args[1])(context, builder, args[1]).data
        sol_p = context.make_array(signature.args[3])(context, builder, args[3]).data
        k = builder.extract_value(x_a.shape, 1)
        masks = _masks(v, k, n)
        sol_v = [v.load(sol_p, LANES * i, masks[i]) for i in range(n)]
        sol_k = builder.load(builder.gep(sol_p, [k]))
        q, (total,), close = counted_loop(builder, v.const(0), args[2], [v.double(0.0)])
        x_row = builder.gep(x_a.data, [builder.mul(q, k)])
        pred = builder.fadd(sol_k, _dot(v, [v.load_f32(x_row, LANES * i, masks[i]) for i in range(n)], sol_v))
        e = builder.fsub(builder.fpext(builder.load(builder.gep(t_p, [q])), v.f64), builder.fpext(pred, v.f64))
        close([builder.fadd(total, builder.fmul(e, e))])
        return total

    return sig, codegen

