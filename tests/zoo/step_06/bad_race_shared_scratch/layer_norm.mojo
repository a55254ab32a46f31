# EXPECT: threads :: a race
# Keeps each row's mean and rstd in one scratch buffer for all rows: threads overwrite each other's.
"""LayerNorm kernels for MAX: a naive scalar one (given) and a fast one (yours).

The fast one uses SIMD across a row and threads across rows on a CPU, and one thread block per
row on a GPU (`layer_norm_gpu`, at the end of this file). Both compute, for each row of
x (N, D) in float32,

    y = (x - mean) / sqrt(var + epsilon) * gamma + beta

with the biased variance (divide by D). `epsilon` is a compile-time parameter: Python passes it
with `parameters={"epsilon": eps}`. The naive kernel runs on the CPU only.
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm.functional import parallelize
from max.gpu import WARP_SIZE, barrier, block_idx, grid_dim, lane_id, thread_idx, warp_id
from max.gpu.host import DeviceContext
from max.gpu.host.info import is_cpu, is_gpu
from max.gpu.memory import AddressSpace
from max.gpu.primitives.warp import sum as warp_sum
from std.math import sqrt
from std.memory import stack_allocation
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
# ANCHOR: signature
@extensibility.register("layer_norm_fast")
struct LayerNormFast[epsilon: Float32]:
    """SIMD across each row, rows spread over the CPU cores; on a GPU, one thread block per row."""

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
        # ANCHOR_END: signature
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

            # ANCHOR: rows
            var stats = stack_allocation[2, Float32]()  # mean and rstd, kept for the output pass
            def normalise_row(
                row: Int
            ) {var x_ptr, var y_ptr, var gamma_ptr, var beta_ptr, var width, var stats} -> None:
                var xs = x_ptr.unsafe_offset(row * width)
                var ys = y_ptr.unsafe_offset(row * width)
                # ANCHOR: statistics
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
                stats.unsafe_store(0, total / Float32(width))
                var mean = stats.unsafe_load(0)

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
                stats.unsafe_store(1, 1 / sqrt(squares / Float32(width) + Self.epsilon))
                # ANCHOR_END: statistics

                # ANCHOR: normalise
                # Pass 3: normalise, scale, shift; W columns per instruction, then the tail.
                col = 0
                while col + W <= width:
                    var xhat = (xs.unsafe_load[width=W](col) - stats.unsafe_load(0)) * stats.unsafe_load(1)
                    ys.unsafe_store(
                        col,
                        xhat * gamma_ptr.unsafe_load[width=W](col)
                        + beta_ptr.unsafe_load[width=W](col),
                    )
                    col += W
                while col < width:
                    var xhat = (xs.unsafe_load(col) - stats.unsafe_load(0)) * stats.unsafe_load(1)
                    ys.unsafe_store(col, xhat * gamma_ptr.unsafe_load(col) + beta_ptr.unsafe_load(col))
                    col += 1
                # ANCHOR_END: normalise

            # ANCHOR: parallel
            # Rows are independent: hand them to the runtime's worker threads.
            parallelize(normalise_row, rows)
            # ANCHOR_END: parallel
            # ANCHOR_END: rows
        elif is_gpu[target]():
            # ANCHOR: gpu_launch
            # The pointers are the GPU's (MAX hands the kernel device buffers); ctx is its stream.
            var rows = x.shape()[0]
            if rows > 0:  # a grid of zero blocks is a launch error
                ctx.enqueue_function[layer_norm_gpu](
                    output.unsafe_ptr(),
                    x.unsafe_ptr(),
                    gamma.unsafe_ptr(),
                    beta.unsafe_ptr(),
                    Int64(rows),  # device arguments have fixed widths: Int64, not Int
                    Int64(x.shape()[1]),
                    Self.epsilon,
                    grid_dim=min(rows, GPU_MAX_GRID),
                    block_dim=GPU_BLOCK,
                )
            # ANCHOR_END: gpu_launch
        else:
            raise Error("layer_norm_fast runs on a CPU or a GPU; compile the graph for one of them")
# ANCHOR_END: fast


# ANCHOR: gpu
# -- the GPU kernel: one thread block per row -------------------------------------------------------
comptime GPU_BLOCK = 256  # threads per row: 8 warps of 32 on NVIDIA, 4 wavefronts of 64 on AMD
comptime GPU_VEC = 4  # floats per vector load: 16 bytes, one 128-bit load per thread
comptime GPU_MAX_GRID = 65536  # blocks launched at most; with more rows, each block takes several
comptime SharedFloats = Pointer[Float32, MutUntrackedOrigin, address_space=AddressSpace.SHARED]


# ANCHOR: gpu_block_sum
def block_sum(value: Float32, partials: SharedFloats) -> Float32:
    """The sum of `value` over all the block's threads, returned to every thread."""
    # Within a warp: lanes swap registers (shuffles), log2(WARP_SIZE) steps, no memory.
    var warp_total = warp_sum(value)
    # Across warps: lane 0 of each warp leaves its warp's total in shared memory...
    if lane_id() == 0:
        partials.unsafe_store(Int(warp_id()), warp_total)
    barrier()  # ...every warp's total is written before anyone reads...
    # ...and every thread adds the few totals up itself, in the same order: the same result everywhere.
    var total: Float32 = 0
    for w in range(GPU_BLOCK // WARP_SIZE):
        total += partials.unsafe_load(w)
    barrier()  # every thread has read `partials` before the next call overwrites it
    return total
# ANCHOR_END: gpu_block_sum


def normalise_row_gpu[V: Int](
    ys: Pointer[Float32, MutAnyOrigin],
    xs: Pointer[Float32, ImmutAnyOrigin],
    gamma: Pointer[Float32, ImmutAnyOrigin],
    beta: Pointer[Float32, ImmutAnyOrigin],
    width: Int,
    epsilon: Float32,
    partials: SharedFloats,
):
    """One row, by the whole block: thread t takes V columns at t * V, then every GPU_BLOCK * V-th."""
    # ANCHOR: gpu_row
    comptime STRIDE = GPU_BLOCK * V
    # Neighbouring threads read neighbouring floats, so a warp's loads coalesce into whole cache lines.
    var first = Int(thread_idx.x) * V
    # Pass 1, the mean. A thread whose columns lie past the end adds 0 (short rows, D = 1).
    var lanes = SIMD[DType.float32, V](0)
    var col = first
    while col < width:  # V divides width when V > 1, so no vector runs past the end of the row
        lanes += xs.unsafe_load[width=V, alignment=V * 4](col)
        col += STRIDE
    var mean = block_sum(lanes.reduce_add(), partials) / Float32(width)

    # Pass 2, the variance of the centred row; the row is still in the L1/L2 cache.
    var squares = SIMD[DType.float32, V](0)
    col = first
    while col < width:
        var centred = xs.unsafe_load[width=V, alignment=V * 4](col) - mean
        squares += centred * centred
        col += STRIDE
    var rstd = 1 / sqrt(block_sum(squares.reduce_add(), partials) / Float32(width) + epsilon)

    # Pass 3: normalise, scale, shift.
    col = first
    while col < width:
        var xhat = (xs.unsafe_load[width=V, alignment=V * 4](col) - mean) * rstd
        ys.unsafe_store[alignment=V * 4](
            col,
            xhat * gamma.unsafe_load[width=V, alignment=V * 4](col)
            + beta.unsafe_load[width=V, alignment=V * 4](col),
        )
        col += STRIDE
    # ANCHOR_END: gpu_row


# ANCHOR: gpu_kernel
def layer_norm_gpu(
    y: Pointer[Float32, MutAnyOrigin],
    x: Pointer[Float32, ImmutAnyOrigin],
    gamma: Pointer[Float32, ImmutAnyOrigin],
    beta: Pointer[Float32, ImmutAnyOrigin],
    rows: Int64,
    width: Int64,
    epsilon: Float32,
):
    """The GPU kernel, launched with GPU_BLOCK threads per block. Plain pointers: any host can launch it."""
    var partials = stack_allocation[GPU_BLOCK // WARP_SIZE, Float32, address_space=AddressSpace.SHARED]()
    var d = Int(width)
    # A 16-byte load needs a 16-byte address: every row start has one when D is a multiple of GPU_VEC
    # and the buffers do. The test gives the same answer in every thread, so all reach every barrier.
    var aligned = d % GPU_VEC == 0 and (Int(x) | Int(y) | Int(gamma) | Int(beta)) % (GPU_VEC * 4) == 0
    var row = Int(block_idx.x)
    while row < Int(rows):  # more rows than blocks: block b takes rows b, b + grid_dim.x, ...
        var xs = x.unsafe_offset(row * d)
        var ys = y.unsafe_offset(row * d)
        if aligned:
            normalise_row_gpu[GPU_VEC](ys, xs, gamma, beta, d, epsilon, partials)
        else:
            normalise_row_gpu[1](ys, xs, gamma, beta, d, epsilon, partials)
        row += Int(grid_dim.x)
# ANCHOR_END: gpu_kernel
# ANCHOR_END: gpu
