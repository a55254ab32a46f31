# Calls a learner's `LayerNormFast` CPU kernel directly, outside MAX, on buffers the checker laid out.
#
# Built by kernel_harness.py with the learner's package on the import path (as `learner_kernels`), once
# per content of that package. The checker maps one file (descriptor argv[1], argv[2] bytes) shared with
# this process: a header of int64 slots, then float32 regions for x, gamma, beta and y, each with guard
# values around it. Whatever the kernel writes, in bounds or out, stays visible to the checker after this
# process ends or is killed; the STATUS slot says how far it got.

from std.ffi import c_int, external_call
from std.math import sqrt
from std.sys import argv, simd_width_of
from std.time import perf_counter_ns
from std.utils.index import IndexList

from extensibility import DynamicTensor, InputTensor, OutputTensor
from max.gpu.host import DeviceContext

from learner_kernels.layer_norm import LayerNormFast

comptime Floats = Pointer[Float32, MutAnyOrigin]
comptime MATRIX = DynamicTensor[DType.float32, 2].static_spec  # shapes known at run time, as in MAX
comptime VECTOR = DynamicTensor[DType.float32, 1].static_spec

# The header's int64 slots (kernel_harness.py names the same ones).
comptime ROWS = 0
comptime WIDTH = 1
comptime EPSILON = 2  # an index into EPSILONS: epsilon is a compile-time parameter of the kernel
comptime X_AT = 3  # where each region starts, in floats after the header
comptime GAMMA_AT = 4
comptime BETA_AT = 5
comptime Y_AT = 6
comptime STATUS = 7  # written here: 1 the reference runs, 2 the learner's kernel runs, 3 it returned
comptime REFERENCE_NS = 8  # written here
comptime KERNEL_NS = 9  # written here
comptime SIMD_WIDTH = 10  # written here: floats per vector register on this machine
comptime CALLS = 11  # how many times to call the kernel on the same input (threads race differently each time)
comptime DIFFERENT_CALLS = 12  # written here: the calls whose output differs, bit for bit, from the first's
comptime FIRST_DIFFERENT_ROW = 13  # written here: the first row where one did
comptime HEADER_BYTES = 128


def reference(x: Floats, gamma: Floats, beta: Floats, y: Floats, rows: Int, width: Int, epsilon: Float32):
    """Plain two-pass LayerNorm, one row after another: what the learner's kernel's time budget is measured by."""
    for row in range(rows):
        var xs = x.unsafe_offset(row * width)
        var total: Float32 = 0
        for col in range(width):
            total += xs.unsafe_load(col)
        var mean = total / Float32(width)
        var squares: Float32 = 0
        for col in range(width):
            var centred = xs.unsafe_load(col) - mean
            squares += centred * centred
        var rstd = 1 / sqrt(squares / Float32(width) + epsilon)
        for col in range(width):
            var xhat = (xs.unsafe_load(col) - mean) * rstd
            y.unsafe_store(row * width + col, xhat * gamma.unsafe_load(col) + beta.unsafe_load(col))


def learners[epsilon: Float32](x: Floats, gamma: Floats, beta: Floats, y: Floats, rows: Int, width: Int) raises:
    """The learner's kernel, called as MAX calls it on a CPU: output first, then x, gamma, beta."""
    var ctx = DeviceContext(api="cpu")
    LayerNormFast[epsilon].execute["cpu"](
        OutputTensor[static_spec=MATRIX](y, IndexList[2](rows, width)),
        InputTensor[static_spec=MATRIX](x, IndexList[2](rows, width)),
        InputTensor[static_spec=VECTOR](gamma, IndexList[1](width)),
        InputTensor[static_spec=VECTOR](beta, IndexList[1](width)),
        ctx,
    )


def main() raises:
    var args = argv()
    var size = Int(String(args[2]))
    # PROT_READ | PROT_WRITE, MAP_SHARED: the checker reads the same pages
    var base = external_call["mmap", Int](0, size, c_int(3), c_int(1), c_int(Int(String(args[1]))), 0)
    var header = Pointer[Int64, MutAnyOrigin](unsafe_from_address=base)
    var floats = Floats(unsafe_from_address=base + HEADER_BYTES)
    var rows = Int(header.unsafe_load(ROWS))
    var width = Int(header.unsafe_load(WIDTH))
    var x = floats.unsafe_offset(Int(header.unsafe_load(X_AT)))
    var gamma = floats.unsafe_offset(Int(header.unsafe_load(GAMMA_AT)))
    var beta = floats.unsafe_offset(Int(header.unsafe_load(BETA_AT)))
    var y = floats.unsafe_offset(Int(header.unsafe_load(Y_AT)))
    var which = Int(header.unsafe_load(EPSILON))
    var epsilons: List[Float32] = [1e-5, 10.0, 0.5]  # kernel_harness.EPSILONS, in this order

    header.unsafe_store(SIMD_WIDTH, Int64(simd_width_of[DType.float32]()))
    header.unsafe_store(STATUS, 1)
    var scratch = List[Float32](length=max(rows * width, 1), fill=0)
    var start = perf_counter_ns()
    reference(x, gamma, beta, Floats(unsafe_from_address=Int(scratch.unsafe_ptr())), rows, width, epsilons[which])
    header.unsafe_store(REFERENCE_NS, Int64(perf_counter_ns() - start))

    header.unsafe_store(STATUS, 2)
    var calls = max(Int(header.unsafe_load(CALLS)), 1)
    var first = List[Float32](length=max(rows * width, 1), fill=0)
    var different = 0
    var first_row = -1
    start = perf_counter_ns()
    for call in range(calls):
        if which == 0:
            learners[1e-5](x, gamma, beta, y, rows, width)
        elif which == 1:
            learners[10.0](x, gamma, beta, y, rows, width)
        else:
            learners[0.5](x, gamma, beta, y, rows, width)
        for i in range(rows * width):  # a deterministic kernel writes the same bits every time
            if call == 0:
                first[i] = y.unsafe_load(i)
            elif y.unsafe_load(i).to_bits() != first[i].to_bits():
                different += 1
                first_row = i // width if first_row < 0 else first_row
                break
    header.unsafe_store(KERNEL_NS, Int64(perf_counter_ns() - start))
    header.unsafe_store(DIFFERENT_CALLS, Int64(different))
    header.unsafe_store(FIRST_DIFFERENT_ROW, Int64(first_row))
    header.unsafe_store(STATUS, 3)
