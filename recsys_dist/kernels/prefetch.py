"""A software prefetch for Numba kernels that gather rows of a large matrix.

A half-step gathers, for every rating, one factor row of the src matrix at a random row index:
a cache miss the hardware prefetcher cannot predict. ``prefetch(a, i, j)`` asks the CPU to start
loading the cache line of ``a[i, j]`` (LLVM's ``llvm.prefetch``: a hint; it never faults, changes
no value and does nothing where the target has no prefetch instruction), so a kernel can request
the rows it will gather a few ratings ahead while it works on the current ones.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, row, col):
    """Prefetch the cache line holding array[row, col] of a 2-D array (read, keep in all cache levels)."""
    if not (isinstance(array, types.Array) and array.ndim == 2 and isinstance(row, types.Integer)
            and isinstance(col, types.Integer)):
        return None
    sig = types.void(array, row, col)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, value, ty, types.intp) for value, ty in zip(args[1:], signature.args[1:])]
        pointer = cgutils.get_item_pointer(context, builder, array_type, ary, index, wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32,
                                                                                          int32]), "llvm.prefetch.p0i8")
        # (address, 0 = read, 3 = keep in all cache levels, 1 = data cache)
        builder.call(fn, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def prefetch_row(a, j, width):
    """Prefetch the cache lines of a[j, :width] (a line holds 16 float32: one address per 16 and the last)."""
    for c in range(0, width, 16):
        prefetch(a, j, c)
    prefetch(a, j, width - 1)
