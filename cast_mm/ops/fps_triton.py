"""Farthest point sampling on the GPU in one Triton kernel launch.

One program per batch item samples all of its points: for each new centre, every point's
squared distance is a float64 sum of ``(x_j[d] - c[d])^2`` over the channels ``d`` in order,
each point keeps its minimum distance to the selected set in registers, and the next centre is
the first index of the largest minimum (``tl.argmax`` with ties to the left; index 0 when all
are zero). That is DGL's CPU kernel operation for operation, so the indices are DGL's, ties and
padded tokens included. The kernel is compiled with ``enable_fp_fusion=False`` (no contraction
of a product and a sum into a fused multiply-add, in LLVM and in ``ptxas --fmad=false``), so
every float64 operation rounds as DGL's does. Points of any float dtype are read as they are
and widened to float64 in the kernel (exact).

Under ``TRITON_INTERPRET=1`` (set before Triton is imported) the same kernel runs on CPU
tensors through Triton's interpreter, with numpy's float64 arithmetic (no contraction either);
the tests run it that way.
"""
import functools
import os

import torch
from torch import Tensor

#: Points one program holds per sample in registers (the kernel's block, a power of two).
MAX_POINTS = 4096
#: Compile options of the kernel on a GPU: no contraction of a product and a sum into a fused
#: multiply-add (LLVM, and ``ptxas --fmad=false``), which would round differently from DGL.
COMPILE_OPTIONS = dict(enable_fp_fusion=False)


@functools.lru_cache(maxsize=None)
def _kernel():
    """The jitted kernel, or the reason Triton is unusable (a str)."""
    try:
        import triton
        import triton.language as tl
    except ImportError as err:
        return f'Triton is not installed ({err})'

    # Integer arguments equal to 1 would otherwise become compile-time constants (no .to()).
    @triton.jit(do_not_specialize=['num_points', 'channels', 'num_samples', 'start_idx'])
    def fps_kernel(x_ptr, out_ptr, num_points, channels, num_samples, start_idx, stride_b,
                   stride_n, stride_c, BLOCK_N: tl.constexpr):
        item = tl.program_id(0)
        offs = tl.arange(0, BLOCK_N)
        valid = offs < num_points
        base = x_ptr + item.to(tl.int64) * stride_b
        rows = base + offs * stride_n
        out = out_ptr + item.to(tl.int64) * num_samples
        tl.store(out, start_idx.to(tl.int64))
        cur = start_idx + 0 * tl.program_id(0)
        min_dist = tl.full([BLOCK_N], float('inf'), tl.float64)
        for t in range(1, num_samples):
            dist = tl.zeros([BLOCK_N], tl.float64)
            centre = base + cur * stride_n
            for d in range(0, channels):
                xd = tl.load(rows + d * stride_c, mask=valid, other=0.).to(tl.float64)
                cd = tl.load(centre + d * stride_c).to(tl.float64)
                diff = xd - cd
                dist = dist + diff * diff
            min_dist = tl.minimum(min_dist, dist)
            cur = tl.argmax(tl.where(valid, min_dist, 0.), axis=0, tie_break_left=True)
            tl.store(out + t, cur.to(tl.int64))

    return fps_kernel


def interpreted() -> bool:
    """Whether Triton kernels run through the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def status() -> str:
    """``'Triton kernel'``, or why it cannot run."""
    kernel = _kernel()
    return kernel if isinstance(kernel, str) else 'Triton kernel'


def available() -> bool:
    """Whether the kernel can run (Triton importable)."""
    return not isinstance(_kernel(), str)


def fps_triton(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    """Farthest point sampling of ``points`` ``(B, N, C)`` in one kernel launch.

    ``points`` must be on a device Triton runs on (CUDA; CPU under ``TRITON_INTERPRET=1``).

    Returns:
        Tensor: ``(B, num_samples)`` int64 indices, DGL's.
    """
    kernel = _kernel()
    if isinstance(kernel, str):
        raise RuntimeError(f'the Triton FPS kernel is unavailable: {kernel}')
    batch, num_points, channels = points.shape
    if num_points > MAX_POINTS:
        raise ValueError(f'the Triton FPS kernel holds at most {MAX_POINTS} points per item, '
                         f'got {num_points}')
    if not points.is_floating_point():
        points = points.to(torch.float64)
    out = torch.empty((batch, num_samples), dtype=torch.long, device=points.device)
    if batch == 0:
        return out
    block = max(16, 1 << (num_points - 1).bit_length())
    options = {} if interpreted() else dict(COMPILE_OPTIONS,
                                            num_warps=8 if block >= 1024 else 4)
    kernel[(batch, )](points, out, num_points, channels, num_samples, start_idx,
                      points.stride(0), points.stride(1), points.stride(2), BLOCK_N=block,
                      **options)
    return out
