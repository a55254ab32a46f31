# The step-06 GPU kernel on its own, for machines without MAX or Mojo: `make gpu-ptx` compiles this file
# with `mojo build --target-accelerator sm_90 --emit asm`, which writes the PTX of every kernel the file
# launches beside its output; `make gpu-smoke` loads that PTX with CuPy and runs it.
#
# The kernel is the one the custom op `layer_norm_fast` launches, imported from the solution's package
# (compile with `-I solutions`), not a copy: what the smoke run measures is what MAX runs.
from max.gpu.host import DeviceContext
from solution_06.layer_norm import GPU_BLOCK, GPU_MAX_GRID, layer_norm_gpu


def main() raises:
    # One tiny launch, as the custom op launches it: enough for the compiler to emit the kernel, and a
    # smoke test where Mojo and a GPU meet (`mojo run -I solutions bench/gpu/harness.mojo`).
    comptime rows = 3
    comptime width = 5
    var ctx = DeviceContext()
    var y = ctx.enqueue_create_buffer[DType.float32](rows * width)
    var x = ctx.enqueue_create_buffer[DType.float32](rows * width)
    var gamma = ctx.enqueue_create_buffer[DType.float32](width)
    var beta = ctx.enqueue_create_buffer[DType.float32](width)
    x.enqueue_fill(1)
    gamma.enqueue_fill(1)
    beta.enqueue_fill(0.5)
    ctx.enqueue_function[layer_norm_gpu](
        y.unsafe_ptr(),
        x.unsafe_ptr(),
        gamma.unsafe_ptr(),
        beta.unsafe_ptr(),
        Int64(rows),
        Int64(width),
        Float32(1e-5),
        grid_dim=min(rows, GPU_MAX_GRID),
        block_dim=GPU_BLOCK,
    )
    with y.map_to_host() as host:
        print("y[0, 0] =", host[0], "(a constant row normalises to 0, plus beta: expect 0.5)")
