"""Hashed dropout (:mod:`cast_mm.ops.hashed_dropout`) as a Triton kernel, for CUDA tensors.

The same SplitMix64 hash of ``(seed, row-major index)`` in uint64 arithmetic, one element per
lane, so the masks are bitwise those of the CPU kernel and of the tensor formulation. Under
``TRITON_INTERPRET=1`` (set before Triton is imported) it runs on CPU tensors (tests).
"""
import functools
from typing import Union

import torch
from torch import Tensor

BLOCK = 1024


@functools.lru_cache(maxsize=None)
def _kernel():
    """The jitted kernel, or the reason Triton is unusable (a str)."""
    try:
        import triton
        import triton.language as tl
    except ImportError as err:
        return f'Triton is not installed ({err})'

    # Integer arguments equal to 1 would otherwise become compile-time constants (no .to()).
    @triton.jit(do_not_specialize=['numel', 'threshold'])
    def hashed_dropout_kernel(x_ptr, out_ptr, scale_ptr, seed_ptr, numel, threshold,
                              BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < numel
        seed = tl.load(seed_ptr).to(tl.uint64)
        z = offs.to(tl.uint64) * 0x9E3779B97F4A7C15 + seed
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        keep = ((z ^ (z >> 31)) >> 32) < threshold.to(tl.uint64)
        x = tl.load(x_ptr + offs, mask=valid, other=0.)
        scale = tl.load(scale_ptr)
        if x.dtype.primitive_bitwidth < 32:
            # float16 / bfloat16: the exact product in float32, rounded once (as torch does).
            product = x.to(tl.float32) * scale.to(tl.float32)
            scaled = product.to(x.dtype, fp_downcast_rounding='rtne')
        else:
            scaled = x * scale
        tl.store(out_ptr + offs, tl.where(keep, scaled, tl.zeros_like(scaled)), mask=valid)

    return hashed_dropout_kernel


def status() -> str:
    """``'Triton kernel'``, or why it cannot run."""
    kernel = _kernel()
    return kernel if isinstance(kernel, str) else 'Triton kernel'


def available() -> bool:
    """Whether the kernel can run (Triton importable)."""
    return not isinstance(_kernel(), str)


def dropout_with_seed(x: Tensor, seed: Union[int, Tensor], threshold: int,
                      scale: float) -> Tensor:
    """``x * keep * scale`` with the hashed mask of ``seed`` (``x`` float, on a Triton device;
    ``seed`` an int or an int64 tensor on that device, read by the kernel)."""
    kernel = _kernel()
    if isinstance(kernel, str):
        raise RuntimeError(f'the Triton dropout kernel is unavailable: {kernel}')
    x = x.contiguous()
    out = torch.empty_like(x)
    numel = x.numel()
    if numel:
        scale_t = torch.full((1, ), scale, dtype=x.dtype, device=x.device)
        if not isinstance(seed, Tensor) and seed >= 1 << 63:
            seed -= 1 << 64  # the int64 with the bits of the uint64 seed
        seed_t = torch.as_tensor(seed, dtype=torch.int64, device=x.device).reshape(1)
        kernel[(-(-numel // BLOCK), )](x, out, scale_t, seed_t, numel, threshold, BLOCK=BLOCK)
    return out
