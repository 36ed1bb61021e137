"""The Gram matrix of one row's gathered features, and products with it, in 16-lane vector registers.

For narrow factor rows (rank up to 15, so f = [y_j, 1] fits one 16-float vector) the explicit ALS row
system F^T F is cheap to form in registers: one masked vector load of the src row per rating and one
fused multiply-add per column, the sums carried in registers and stored once. Written as Numba loops
the same code ran one lane at a time (71 ns per rating against 18 for the CG kernel of the time; see
kernels/lanes.py for why). The column count is fixed at compile time (``width``, an integer literal:
``als_gram`` dispatches on the src matrix's width).
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from recsys_dist.kernels.lanes import LANES, Vectors, counted_loop, flat, flat_f32, gather_matrix

GRAM_AHEAD = 32  # ratings ahead whose src rows are prefetched (rows of 1-2 cache lines): 32 measured best


@intrinsic
def row_gram(typingctx, gram, b, src, indices, values, start, end, last, mu, width):
    """Over the ratings pos in [start, end) of a CSR row, with j = indices[pos], f = [src[j, :width - 1], 1]
    (zero in lanes width..15) and t = float32(values[pos] - mu - src[j, width - 1]): writes
    gram[16 c : 16 c + 16] = sum f_c f for c < width and b[:16] = sum t f, and returns sum t^2 (float64).
    gram, b: flat float32 arrays of at least 16 width and 16 floats (64-byte aligned runs fastest);
    src: float32 [n, width], or its float16 bits (lanes.gather_matrix). Prefetches the src rows of the
    ratings GRAM_AHEAD ahead, up to ``last``."""
    if not (isinstance(width, types.IntegerLiteral) and 2 <= width.literal_value <= LANES and flat_f32(gram)
            and flat_f32(b) and gather_matrix(src) and flat(indices, types.Integer) and flat(values, types.Float)):
        return None
    n_cols = width.literal_value
    sig = types.float64(gram, b, src, indices, values, types.intp, types.intp, types.intp, types.float64, width)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        gram_a, b_a, src_a, idx_a, val_a = (context.make_array(t)(context, builder, a)
                                            for t, a in zip(signature.args[:5], args[:5]))
        idx_t, val_t = signature.args[3].dtype, signature.args[4].dtype
        start, end, last, mu = args[5:9]
        k = n_cols - 1  # the bias column
        half = signature.args[2].dtype == types.uint16
        row_bytes = n_cols * (2 if half else 4)
        features = v.lanes_below(v.const(k))
        bias_one = v.vector([1.0 if c == k else 0.0 for c in range(LANES)])

        def src_row(pos):
            j = context.cast(builder, builder.load(builder.gep(idx_a.data, [pos])), idx_t, types.intp)
            return builder.gep(src_a.data, [builder.mul(j, v.const(n_cols))])

        pos, sums, close = counted_loop(builder, start, end, [v.zero] * (n_cols + 1) + [v.double(0.0)])
        rows, rhs, tt = sums[:n_cols], sums[n_cols], sums[n_cols + 1]
        ahead = builder.add(pos, v.const(GRAM_AHEAD))
        with builder.if_then(builder.icmp_signed("<", ahead, last)):
            line = builder.bitcast(src_row(ahead), v.byte_ptr)
            for offset in sorted({0, row_bytes - 1}):  # a row of at most 64 bytes spans at most two lines
                v.prefetch(line, offset)
        row = src_row(pos)
        f = builder.fadd(v.load_f32(row, 0, features), bias_one)
        value = context.cast(builder, builder.load(builder.gep(val_a.data, [pos])), val_t, types.float64)
        bias = v.scalar_f64(builder.gep(row, [v.const(k)]))
        t = builder.fptrunc(builder.fsub(builder.fsub(value, mu), bias), v.f32)
        t64 = builder.fpext(t, v.f64)
        # f_c for c < k is broadcast from memory (a load, not a shuffle: measured 1.2x faster); f_k is 1.
        # From float16 bits, a shuffle of the widened row (a scalar load, convert and broadcast was slower)
        if half:
            undef = ir.Constant(v.vec, ir.Undefined)
            columns = [builder.shuffle_vector(f, undef, ir.Constant(v.ivec, [c] * LANES)) for c in range(k)]
        else:
            columns = [v.splat(builder.load(builder.gep(row, [v.const(c)]))) for c in range(k)]
        updated = [v.fma(columns[c], f, rows[c]) for c in range(k)]
        updated.append(builder.fadd(f, rows[k]))
        close(updated + [v.fma(v.splat(t), f, rhs), builder.fadd(tt, builder.fmul(t64, t64))])
        for c in range(n_cols):
            builder.store(rows[c], v.pointer(gram_a.data, LANES * c), align=4)
        builder.store(rhs, v.pointer(b_a.data, 0), align=4)
        return tt

    return sig, codegen


@intrinsic
def gram_times(typingctx, gram, x, y, width):
    """y[:16] = sum over c < width of x[c] gram[16 c : 16 c + 16] (flat float32 arrays), summed in four
    interleaved partial sums (c mod 4) added as (0 + 1) + (2 + 3)."""
    if not (isinstance(width, types.IntegerLiteral) and 1 <= width.literal_value <= LANES and flat_f32(gram)
            and flat_f32(x) and flat_f32(y)):
        return None
    n_cols = width.literal_value
    sig = types.void(gram, x, y, width)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        gram_p, x_p, y_p = (context.make_array(t)(context, builder, a).data
                            for t, a in zip(signature.args[:3], args[:3]))
        parts = [v.zero] * 4
        for c in range(n_cols):
            row = builder.load(v.pointer(gram_p, LANES * c), align=4)
            parts[c % 4] = v.fma(v.splat(builder.load(builder.gep(x_p, [v.const(c)]))), row, parts[c % 4])
        builder.store(builder.fadd(builder.fadd(parts[0], parts[1]), builder.fadd(parts[2], parts[3])),
                      v.pointer(y_p, 0), align=4)
        return context.get_dummy_value()

    return sig, codegen
