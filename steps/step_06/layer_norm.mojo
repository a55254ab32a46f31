"""LayerNorm kernels for MAX: a naive scalar one (given) and a fast one (yours).

The fast one uses SIMD across a row and threads across rows. Both compute, for each row of
x (N, D) in float32,

    y = (x - mean) / sqrt(var + epsilon) * gamma + beta

with the biased variance (divide by D). `epsilon` is a compile-time parameter: Python passes it
with `parameters={"epsilon": eps}`. Both kernels run on the CPU only.
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm.functional import parallelize
from max.gpu.host import DeviceContext
from max.gpu.host.info import is_cpu
from std.math import sqrt
from std.sys import simd_width_of


# ANCHOR: naive
@extensibility.register("layer_norm_naive")
struct LayerNormNaive[epsilon: Float32]:
    """One element at a time, one row after another: the correct, slow baseline."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype=DType.float32, rank=2, ...],  # (N, D)
        x: InputTensor[dtype=DType.float32, rank=2, ...],  # (N, D)
        gamma: InputTensor[dtype=DType.float32, rank=1, ...],  # (D,)
        beta: InputTensor[dtype=DType.float32, rank=1, ...],  # (D,)
        ctx: DeviceContext,
    ) raises:
        comptime if is_cpu[target]():
            var rows = x.shape()[0]
            var width = x.shape()[1]
            for row in range(rows):
                var total: Float32 = 0
                for col in range(width):
                    total += x[row, col]
                var mean = total / Float32(width)
                var squares: Float32 = 0
                for col in range(width):
                    var centred = x[row, col] - mean
                    squares += centred * centred
                var rstd = 1 / sqrt(squares / Float32(width) + Self.epsilon)
                for col in range(width):
                    output[row, col] = (x[row, col] - mean) * rstd * gamma[col] + beta[col]
        else:
            raise Error("layer_norm_naive runs on the CPU only; compile the graph for CPU()")
# ANCHOR_END: naive


# ANCHOR: fast
@extensibility.register("layer_norm_fast")
struct LayerNormFast[epsilon: Float32]:
    """SIMD across each row, rows spread over the CPU cores."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype=DType.float32, rank=2, ...],  # (N, D)
        x: InputTensor[dtype=DType.float32, rank=2, ...],  # (N, D)
        gamma: InputTensor[dtype=DType.float32, rank=1, ...],  # (D,)
        beta: InputTensor[dtype=DType.float32, rank=1, ...],  # (D,)
        ctx: DeviceContext,
    ) raises:
        comptime if is_cpu[target]():
            # Floats per vector register: 16 with AVX-512, 8 with AVX2, 4 with NEON.
            comptime W = simd_width_of[DType.float32]()
            var rows = x.shape()[0]
            var width = x.shape()[1]
            # Row-major and contiguous: row r starts at element r * width.
            var x_ptr = x.unsafe_ptr()
            var y_ptr = output.unsafe_ptr()
            var gamma_ptr = gamma.unsafe_ptr()
            var beta_ptr = beta.unsafe_ptr()

            # TODO-BLOCK: rows
            # TODO: write `normalise_row`, a closure that normalises one row, then run it on
            # every row in parallel. Start from the naive kernel above and change three things:
            #
            # 1. Pointers instead of indexing. A closure lists what it captures:
            #        def normalise_row(row: Int) {var x_ptr, var y_ptr, var gamma_ptr,
            #                                     var beta_ptr, var width} -> None:
            #    and finds its row with `var xs = x_ptr.unsafe_offset(row * width)`.
            #
            # 2. SIMD across the row: `xs.unsafe_load[width=W](col)` reads W floats at once into a
            #    SIMD[DType.float32, W]; accumulate W partial sums side by side and finish with
            #    `.reduce_add()`. Write with `ys.unsafe_store(col, values)`. D is not always a
            #    multiple of W (D = 771): after the vector loop, finish the last D % W columns
            #    one at a time (`unsafe_load(col)` without a width).
            #
            #    Statistics: take the mean in a first pass, then the variance of (x - mean) in a
            #    second pass over the same row. The row is still in L1 cache, so the second pass is
            #    cheap; the one-pass E[x²] - E[x]² cancels catastrophically in float32 when the
            #    mean is large. The variance is the biased one (divide by D), and
            #    rstd = 1 / sqrt(var + Self.epsilon).
            #
            # 3. Threads across rows: rows are independent, so
            #        parallelize(normalise_row, rows)
            #    runs the closure for row = 0 .. rows - 1 on all cores.
            raise Error("TODO: the fast kernel is not written yet (layer_norm_fast in layer_norm.mojo)")
            # TODO-BLOCK-END: rows
        else:
            raise Error("layer_norm_fast runs on the CPU only; compile the graph for CPU()")
# ANCHOR_END: fast
