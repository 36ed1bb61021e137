"""The Gram matrix of one row's gathered features, and products with it, as explicit 16-lane vector code.

For narrow factor rows (rank up to 15, so f = [y_j, 1] fits one 16-float vector) the explicit ALS row
system F^T F is cheap to form in registers: one masked vector load of the src row per rating and one
fused multiply-add per column. Numba cannot be asked for that code: it leaves LLVM's SLP vectoriser
off and LLVM unrolls 16-iteration loops before its loop vectoriser sees them, so the same loops written
in Numba ran one lane at a time (71 ns per rating against 18 for the transposed CG kernel). These two
intrinsics build the vector IR directly, for a column count fixed at compile time (``width``, an
integer literal: the callers dispatch on the src matrix's width).

Every sum here runs in one fixed order (the ratings in order, the columns in a fixed tree), whatever
the thread, buffer or process, so the engines' bit-for-bit agreement holds (STABLE_SUMS, kernels/als.py).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # float32 lanes of one vector: one 512-bit register, two 256-bit ones without AVX-512
GRAM_AHEAD = 32  # ratings ahead whose src rows are prefetched: as for the transposed narrow kernel


def _flat(t, dtype_class) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and isinstance(t.dtype, dtype_class)


def _flat_f32(t) -> bool:
    return _flat(t, types.Float) and t.dtype == types.float32


def _vector_types(context):
    f32, i32 = ir.FloatType(), ir.IntType(32)
    return f32, i32, ir.VectorType(f32, LANES), ir.VectorType(i32, LANES), context.get_value_type(types.intp)


def _splat(builder, scalar, vec, ivec):
    undef = ir.Constant(vec, ir.Undefined)
    first = builder.insert_element(undef, scalar, ir.IntType(32)(0))
    return builder.shuffle_vector(first, undef, ir.Constant(ivec, [0] * LANES))


def _fma(builder, vec):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{LANES}f32")


def _lane_pointer(builder, base, at, intp, vec):
    """Pointer to the vector at base + at floats."""
    return builder.bitcast(builder.gep(base, [ir.Constant(intp, at)]), vec.as_pointer())


@intrinsic
def row_gram(typingctx, gram, b, src, indices, values, start, end, last, mu, width):
    """Over the ratings pos in [start, end) of a CSR row, with j = indices[pos], f = [src[j, :width - 1], 1]
    (zero in lanes width..15) and t = float32(values[pos] - mu - src[j, width - 1]): writes
    gram[16 c : 16 c + 16] = sum f_c f for c < width and b[:16] = sum t f, and returns sum t^2 (float64).
    gram, b: flat float32 C arrays of at least 16 width and 16 floats (64-byte aligned runs fastest);
    src: float32 [n, width]. Prefetches the src rows of the ratings GRAM_AHEAD ahead, up to ``last``."""
    if not (isinstance(width, types.IntegerLiteral) and 2 <= width.literal_value <= LANES and _flat_f32(gram)
            and _flat_f32(b) and isinstance(src, types.Array) and src.ndim == 2 and src.layout == "C"
            and src.dtype == types.float32 and _flat(indices, types.Integer) and _flat(values, types.Float)):
        return None
    n_cols = width.literal_value
    sig = types.float64(gram, b, src, indices, values, types.intp, types.intp, types.intp, types.float64, width)

    def codegen(context, builder, signature, args):
        f32, i32, vec, ivec, intp = _vector_types(context)
        f64 = ir.DoubleType()
        gram_t, b_t, src_t, idx_t, val_t = signature.args[:5]
        gram_a, b_a, src_a, idx_a, val_a = (context.make_array(t)(context, builder, a)
                                            for t, a in zip(signature.args[:5], args[:5]))
        start, end, last, mu = args[5:9]
        k = n_cols - 1  # the bias column
        zero = ir.Constant(vec, [0.0] * LANES)
        bias_one = ir.Constant(vec, [1.0 if c == k else 0.0 for c in range(LANES)])
        mask_type = ir.VectorType(ir.IntType(1), LANES)
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec.as_pointer(), i32, mask_type, vec]),
            f"llvm.masked.load.v{LANES}f32.p0v{LANES}f32")
        features = ir.Constant(mask_type, [1 if c < k else 0 for c in range(LANES)])
        fma = _fma(builder, vec)
        byte_ptr = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]), "llvm.prefetch.p0i8")

        def src_row(pos):
            j = context.cast(builder, builder.load(builder.gep(idx_a.data, [pos])), idx_t.dtype, types.intp)
            return cgutils.get_item_pointer(context, builder, src_t, src_a, [j, ir.Constant(intp, 0)],
                                            wraparound=False)

        # one loop over the ratings, its sums carried in registers (phis), stored once at the end
        entry = builder.basic_block
        header = builder.append_basic_block("gram.header")
        body = builder.append_basic_block("gram.body")
        done = builder.append_basic_block("gram.done")
        builder.branch(header)
        builder.position_at_end(header)
        pos = builder.phi(intp)
        rows = [builder.phi(vec) for _ in range(n_cols)]
        rhs = builder.phi(vec)
        tt = builder.phi(f64)
        pos.add_incoming(start, entry)
        for acc in rows + [rhs]:
            acc.add_incoming(zero, entry)
        tt.add_incoming(ir.Constant(f64, 0.0), entry)
        builder.cbranch(builder.icmp_signed("<", pos, end), body, done)

        builder.position_at_end(body)
        ahead = builder.add(pos, ir.Constant(intp, GRAM_AHEAD))
        with builder.if_then(builder.icmp_signed("<", ahead, last)):
            row_bytes = builder.bitcast(src_row(ahead), byte_ptr)
            for offset in sorted({0, 4 * n_cols - 1}):  # a row of at most 64 bytes spans at most two lines
                builder.call(prefetch, [builder.gep(row_bytes, [ir.Constant(intp, offset)]), i32(0), i32(3), i32(1)])
        row = builder.bitcast(src_row(pos), f32.as_pointer())
        y = builder.call(masked_load, [builder.bitcast(row, vec.as_pointer()), i32(4), features, zero])
        f = builder.fadd(y, bias_one)
        value = context.cast(builder, builder.load(builder.gep(val_a.data, [pos])), val_t.dtype, types.float64)
        bias = builder.fpext(builder.load(builder.gep(row, [ir.Constant(intp, k)])), f64)
        t = builder.fptrunc(builder.fsub(builder.fsub(value, mu), bias), f32)
        t64 = builder.fpext(t, f64)
        # f_c for c < k is broadcast from memory (a load, not a shuffle: measured 1.2x faster); f_k is 1
        updated = [builder.call(fma, [_splat(builder, builder.load(builder.gep(row, [ir.Constant(intp, c)])), vec, ivec),
                                      f, rows[c]]) for c in range(k)]
        updated.append(builder.fadd(f, rows[k]))
        tail = builder.basic_block
        pos.add_incoming(builder.add(pos, ir.Constant(intp, 1)), tail)
        for acc, new in zip(rows, updated):
            acc.add_incoming(new, tail)
        rhs.add_incoming(builder.call(fma, [_splat(builder, t, vec, ivec), f, rhs]), tail)
        tt.add_incoming(builder.fadd(tt, builder.fmul(t64, t64)), tail)
        builder.branch(header)

        builder.position_at_end(done)
        for c in range(n_cols):
            builder.store(rows[c], _lane_pointer(builder, gram_a.data, LANES * c, intp, vec), align=4)
        builder.store(rhs, _lane_pointer(builder, b_a.data, 0, intp, vec), align=4)
        return tt

    return sig, codegen


@intrinsic
def gram_times(typingctx, gram, x, y, width):
    """y[:16] = sum over c < width of x[c] gram[16 c : 16 c + 16] (flat float32 arrays), summed in four
    interleaved partial sums (c mod 4) added as (0 + 1) + (2 + 3)."""
    if not (isinstance(width, types.IntegerLiteral) and 1 <= width.literal_value <= LANES and _flat_f32(gram)
            and _flat_f32(x) and _flat_f32(y)):
        return None
    n_cols = width.literal_value
    sig = types.void(gram, x, y, width)

    def codegen(context, builder, signature, args):
        f32, i32, vec, ivec, intp = _vector_types(context)
        gram_p, x_p, y_p = (context.make_array(t)(context, builder, a).data
                            for t, a in zip(signature.args[:3], args[:3]))
        fma = _fma(builder, vec)
        parts = [ir.Constant(vec, [0.0] * LANES)] * 4
        for c in range(n_cols):
            row = builder.load(_lane_pointer(builder, gram_p, LANES * c, intp, vec), align=4)
            xc = _splat(builder, builder.load(builder.gep(x_p, [ir.Constant(intp, c)])), vec, ivec)
            parts[c % 4] = builder.call(fma, [xc, row, parts[c % 4]])
        total = builder.fadd(builder.fadd(parts[0], parts[1]), builder.fadd(parts[2], parts[3]))
        builder.store(total, _lane_pointer(builder, y_p, 0, intp, vec), align=4)
        return context.get_dummy_value()

    return sig, codegen
