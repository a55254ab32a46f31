# EXPECT: memory :: Columns 768..770 of every row are never written
# The statistics include the tail, the output loop forgets it.
"""LayerNorm kernels for MAX: a naive scalar one and a fast one.

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

            def normalise_row(
                row: Int
            ) {var x_ptr, var y_ptr, var gamma_ptr, var beta_ptr, var width} -> None:
                var xs = x_ptr.unsafe_offset(row * width)
                var ys = y_ptr.unsafe_offset(row * width)
                # Pass 1, the mean: W lanes accumulate side by side, then one horizontal sum.
                var lanes = SIMD[DType.float32, W](0)
                var col = 0
                while col + W <= width:
                    lanes += xs.unsafe_load[width=W](col)
                    col += W
                var total = lanes.reduce_add()
                while col < width:  # the tail: width % W columns, one at a time
                    total += xs.unsafe_load(col)
                    col += 1
                var mean = total / Float32(width)

                # Pass 2, the variance of the centred row. The row (3 KB for D = 768) is
                # still in L1 cache, so this pass costs no memory traffic, and centring
                # first avoids the cancellation of E[x²] - E[x]² in float32.
                var squares_lanes = SIMD[DType.float32, W](0)
                col = 0
                while col + W <= width:
                    var centred = xs.unsafe_load[width=W](col) - mean
                    squares_lanes += centred * centred
                    col += W
                var squares = squares_lanes.reduce_add()
                while col < width:
                    var centred = xs.unsafe_load(col) - mean
                    squares += centred * centred
                    col += 1
                var rstd = 1 / sqrt(squares / Float32(width) + Self.epsilon)

                # Pass 3: normalise, scale, shift; W columns per instruction, then the tail.
                col = 0
                while col + W <= width:
                    var xhat = (xs.unsafe_load[width=W](col) - mean) * rstd
                    ys.unsafe_store(
                        col,
                        xhat * gamma_ptr.unsafe_load[width=W](col)
                        + beta_ptr.unsafe_load[width=W](col),
                    )
                    col += W

            # Rows are independent: hand them to the runtime's worker threads.
            parallelize(normalise_row, rows)
        else:
            raise Error("layer_norm_fast runs on the CPU only; compile the graph for CPU()")
