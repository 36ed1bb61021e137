"""LLVM IR building blocks for the explicit ALS kernels' 16-lane vector intrinsics (lane_gram, lane_rows).

Numba leaves LLVM's SLP vectoriser off, and LLVM fully unrolls short constant loops before its loop
vectoriser sees them, so row kernels over 11 or 65 floats written as Numba loops ran partly one lane at
a time, and kept their sums in memory. The intrinsics built from these pieces write the vector code
directly: masked loads and stores (rows whose width is not a multiple of 16 never read or write past
their end), fused multiply-adds, and horizontal sums in one fixed tree, so every sum runs in the same
order whatever the thread, buffer or process (STABLE_SUMS, kernels/als.py).

The src matrix a kernel gathers from may be float16 bits (``gather_matrix``): ``load_f32`` and
``scalar_f32`` widen them to float32 as they load (exactly: every float16 is a float32), so a kernel
reading float16 src computes what it would from that copy widened to float32, bit for bit.

Numba's on-disk cache of a kernel is keyed on the kernel's own source file only: after editing an
intrinsic here, in lane_gram or in lane_rows, delete the ``__pycache__/*.nbi`` files (or touch als_cg.py and
als_gram.py), or the kernels keep running the old code.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # float32 lanes of one vector: one 512-bit register, two 256-bit ones without AVX-512


def flat(t, dtype_class) -> bool:
    """t is a 1-D C-contiguous array of that dtype class (the intrinsics index its memory directly)."""
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and isinstance(t.dtype, dtype_class)


def flat_f32(t) -> bool:
    return flat(t, types.Float) and t.dtype == types.float32


def matrix_f32(t) -> bool:
    return isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == types.float32


def gather_matrix(t) -> bool:
    """A C-contiguous 2-D src matrix the row kernels gather from: float32, or uint16 holding float16 bits
    (kernels/half.py's copies, widened to float32 as they are loaded; Numba has no float16 arrays)."""
    return (isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C"
            and t.dtype in (types.float32, types.uint16))


class Vectors:
    """The types and intrinsics one codegen uses, bound to its builder."""

    def __init__(self, context, builder):
        self.builder = builder
        self.f32, self.f64, self.i32 = ir.FloatType(), ir.DoubleType(), ir.IntType(32)
        self.intp = context.get_value_type(types.intp)
        self.vec = ir.VectorType(self.f32, LANES)
        self.ivec = ir.VectorType(self.i32, LANES)
        self.mask_type = ir.VectorType(ir.IntType(1), LANES)
        self.zero = ir.Constant(self.vec, [0.0] * LANES)
        module = builder.module
        self._fma = cgutils.get_or_insert_function(module, ir.FunctionType(self.vec, [self.vec] * 3),
                                                   f"llvm.fma.v{LANES}f32")
        self.half, self.i16 = ir.HalfType(), ir.IntType(16)
        self.hvec = ir.VectorType(self.i16, LANES)  # float16 bit patterns
        self._load, self._store = self._masked(module, self.vec, "f32")
        self._load_half, self._store_half = self._masked(module, self.hvec, "i16")
        self.byte_ptr = ir.IntType(8).as_pointer()
        self._prefetch = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [self.byte_ptr, self.i32, self.i32, self.i32]), "llvm.prefetch.p0i8")

    def _masked(self, module, vec, name: str):
        """LLVM's masked load and store of ``vec`` (element type ``name``) in ``module``."""
        tag = f"v{LANES}{name}.p0v{LANES}{name}"
        load = cgutils.get_or_insert_function(
            module, ir.FunctionType(vec, [vec.as_pointer(), self.i32, self.mask_type, vec]), f"llvm.masked.load.{tag}")
        store = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), self.i32, self.mask_type]),
            f"llvm.masked.store.{tag}")
        return load, store

    def const(self, value: int):
        return ir.Constant(self.intp, value)

    def single(self, value: float):
        return ir.Constant(self.f32, value)

    def double(self, value: float):
        return ir.Constant(self.f64, value)

    def vector(self, values: list):
        return ir.Constant(self.vec, values)

    def splat(self, scalar):
        undef = ir.Constant(self.vec, ir.Undefined)
        first = self.builder.insert_element(undef, scalar, self.i32(0))
        return self.builder.shuffle_vector(first, undef, ir.Constant(self.ivec, [0] * LANES))

    def fma(self, a, b, c):
        return self.builder.call(self._fma, [a, b, c])

    def lanes_below(self, count, first: int = 0):
        """The mask of lanes first + l < count (count: a run-time intp)."""
        b = self.builder
        undef = ir.Constant(self.ivec, ir.Undefined)
        counts = b.shuffle_vector(b.insert_element(undef, b.trunc(count, self.i32), self.i32(0)), undef,
                                  ir.Constant(self.ivec, [0] * LANES))
        return b.icmp_signed("<", ir.Constant(self.ivec, [first + lane for lane in range(LANES)]), counts)

    def pointer(self, base, at):
        """The vector at base + at floats (at: an int or an intp value)."""
        at = self.const(at) if isinstance(at, int) else at
        return self.builder.bitcast(self.builder.gep(base, [at]), self.vec.as_pointer())

    def load(self, base, at, mask):
        return self.builder.call(self._load, [self.pointer(base, at), self.i32(4), mask, self.zero])

    def load_f32(self, base, at, mask):
        """``load`` from float32 memory, or from float16 bits (base: i16*), widened to float32."""
        if base.type.pointee == self.f32:
            return self.load(base, at, mask)
        return self.widen(self.load_bits(base, at, mask))

    def load_bits(self, base, at, mask):
        """16 float16 bit patterns from i16* memory (masked lanes 0)."""
        b = self.builder
        at = self.const(at) if isinstance(at, int) else at
        return b.call(self._load_half, [b.bitcast(b.gep(base, [at]), self.hvec.as_pointer()), self.i32(2), mask,
                                        ir.Constant(self.hvec, [0] * LANES)])

    def store_bits(self, bits, base, at, mask):
        b = self.builder
        at = self.const(at) if isinstance(at, int) else at
        b.call(self._store_half, [bits, b.bitcast(b.gep(base, [at]), self.hvec.as_pointer()), self.i32(2), mask])

    def widen(self, bits):
        """float16 bit patterns as float32 values (exact)."""
        b = self.builder
        return b.fpext(b.bitcast(bits, ir.VectorType(self.half, LANES)), self.vec)

    def scalar_f32(self, pointer):
        """The float32, or the float16 bits (pointer: i16*), at ``pointer``, as a float32."""
        value = self.builder.load(pointer)
        if value.type == self.i16:
            value = self.builder.fpext(self.builder.bitcast(value, self.half), self.f32)
        return value

    def scalar_f64(self, pointer):
        return self.builder.fpext(self.scalar_f32(pointer), self.f64)

    def store(self, value, base, at, mask):
        self.builder.call(self._store, [value, self.pointer(base, at), self.i32(4), mask])

    def prefetch(self, byte_pointer, offset):
        b = self.builder
        offset = self.const(offset) if isinstance(offset, int) else offset
        b.call(self._prefetch, [b.gep(byte_pointer, [offset]), self.i32(0), self.i32(3), self.i32(1)])

    def hsum(self, v):
        """The sum of v's lanes in a fixed tree (lanes 8, 4, 2, 1 apart)."""
        b = self.builder
        undef = ir.Constant(self.vec, ir.Undefined)
        span = LANES // 2
        while span:
            v = b.fadd(v, b.shuffle_vector(v, undef, ir.Constant(self.ivec, [(lane + span) % LANES
                                                                             for lane in range(LANES)])))
            span //= 2
        return b.extract_element(v, self.i32(0))


def counted_loop(builder, start, end, carried: list):
    """Emit ``for i in range(start, end)`` carrying values in registers: returns (i, the carried phis, close),
    where close(new values) ends the body; after it the builder is past the loop and the phis hold the
    results."""
    entry = builder.basic_block
    header = builder.append_basic_block("lanes.header")
    body = builder.append_basic_block("lanes.body")
    done = builder.append_basic_block("lanes.done")
    builder.branch(header)
    builder.position_at_end(header)
    i = builder.phi(start.type)
    i.add_incoming(start, entry)
    phis = []
    for value in carried:
        phi = builder.phi(value.type)
        phi.add_incoming(value, entry)
        phis.append(phi)
    builder.cbranch(builder.icmp_signed("<", i, end), body, done)
    builder.position_at_end(body)

    def close(new_values: list) -> None:
        tail = builder.basic_block
        i.add_incoming(builder.add(i, ir.Constant(i.type, 1)), tail)
        for phi, value in zip(phis, new_values):
            phi.add_incoming(value, tail)
        builder.branch(header)
        builder.position_at_end(done)

    return i, phis, close


@intrinsic
def src_value(typingctx, src, row, col):
    """src[row, col] of a ``gather_matrix`` as float32 (for kernels' plain Numba loops over such a matrix)."""
    if not (gather_matrix(src) and isinstance(row, types.Integer) and isinstance(col, types.Integer)):
        return None
    sig = types.float32(src, row, col)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        src_a = context.make_array(signature.args[0])(context, builder, args[0])
        r, c = (context.cast(builder, a, t, types.intp) for a, t in zip(args[1:], signature.args[1:]))
        at = builder.add(builder.mul(r, builder.extract_value(src_a.shape, 1)), c)
        return v.scalar_f32(builder.gep(src_a.data, [at]))

    return sig, codegen


@intrinsic
def set_value(typingctx, dst, row, col, value):
    """dst[row, col] = value for a ``gather_matrix`` dst (float16 bits: rounded to nearest even, exact for a
    value read from such a matrix)."""
    if not (gather_matrix(dst) and isinstance(row, types.Integer) and isinstance(col, types.Integer)
            and value == types.float32):
        return None
    sig = types.void(dst, row, col, value)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        dst_a = context.make_array(signature.args[0])(context, builder, args[0])
        r, c = (context.cast(builder, a, t, types.intp) for a, t in zip(args[1:3], signature.args[1:3]))
        pointer = builder.gep(dst_a.data, [builder.add(builder.mul(r, builder.extract_value(dst_a.shape, 1)), c)])
        value = args[3]
        if pointer.type.pointee == v.i16:
            value = builder.bitcast(builder.fptrunc(value, v.half), v.i16)
        builder.store(value, pointer)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def narrow_to_half(typingctx, src, out):
    """out[i] = float16 bits of src[i] (round to nearest even), for flat float32 src and uint16 out of one length."""
    if not (flat_f32(src) and flat(out, types.Integer) and out.dtype == types.uint16):
        return None
    sig = types.void(src, out)

    def codegen(context, builder, signature, args):
        v = Vectors(context, builder)
        src_a, out_a = (context.make_array(t)(context, builder, a) for t, a in zip(signature.args, args))
        n = builder.extract_value(src_a.shape, 0)
        i, _, close = counted_loop(builder, v.const(0), builder.udiv(builder.add(n, v.const(LANES - 1)),
                                                                      v.const(LANES)), [])
        at = builder.mul(i, v.const(LANES))
        mask = v.lanes_below(builder.sub(n, at))
        half = builder.fptrunc(v.load(src_a.data, at, mask), ir.VectorType(v.half, LANES))
        v.store_bits(builder.bitcast(half, v.hvec), out_a.data, at, mask)
        close([])
        return context.get_dummy_value()

    return sig, codegen
