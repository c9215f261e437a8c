"""Dropout whose mask is a hash of (seed, element index): drawn in parallel, never stored.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, which on CPUs other than Intel's runs
one Mersenne-twister draw pair per element on a single thread (about 9 ns an element on the
machines here: the largest non-matrix operator of a CAST segmentation train step, whose decoder
drops ``2 x 6 x 1174 x 1174`` attention weights per block), and autograd keeps the float mask
for the backward pass.

Here element ``i`` of a tensor (its row-major index) is kept when the top 32 bits of
``splitmix64(i * 0x9E3779B97F4A7C15 + seed)`` fall below ``round((1 - p) * 2^32)``: a
counter-based draw (SplitMix64's output function, a full-period mixer that passes BigCrush), so
the mask of any element is computed independently, in parallel, vectorised, and recomputed
from the seed in the backward pass instead of being saved. The seed is drawn from torch's
default generator of the tensor's device, so ``torch.manual_seed`` and the RNG state saved in
checkpoints reproduce the masks as they do torch's: one random stream per (seed, device kind),
and for a given seed the same mask on every device.

The distribution is dropout's: each element kept independently with probability ``1 - p``
(to within ``2^-32``) and scaled by ``1 / (1 - p)``; only the random stream differs from
``torch.nn.functional.dropout``. Implementations, bitwise equal (tests):

* CPU: the compiled operator ``torch.ops.cast_mm.hashed_dropout_cpu``
  (``cast_mm/ops/csrc/hashed_dropout_cpu.cpp``, torch's thread pool, vectorised);
* CUDA: a Triton kernel (:mod:`cast_mm.ops.hashed_dropout_triton`);
* elsewhere, or without them: the hash as int64 tensor operations (:func:`keep_mask`).
"""
from typing import Optional, Union

import torch
from torch import Tensor

from cast_mm.utils.host_reads import host_values
from . import extension, hashed_dropout_triton

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def implementation(device_type: str) -> str:
    """Which implementation draws the hashed masks on ``device_type``, and why."""
    if device_type == 'cpu':
        if extension.available():
            return 'compiled CPU kernel (cast_mm.ops._C)'
        return f'tensor formulation (cast_mm.ops._C {extension.status()})'
    if device_type == 'cuda':
        if hashed_dropout_triton.available():
            return 'Triton kernel'
        return f'tensor formulation ({hashed_dropout_triton.status()})'
    return f'tensor formulation (no kernel for {device_type})'


def _signed(value: int) -> int:
    """The int64 with the bits of the uint64 ``value``."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: Tensor, bits: int) -> Tensor:
    """Logical right shift of int64 ``x`` (torch's ``>>`` is arithmetic on signed types)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def keep_threshold(p: float) -> int:
    """Elements whose 32 hash bits are below this are kept (probability ``1 - p``)."""
    if not 0. <= p < 1.:
        raise ValueError(f'dropout probability must be in [0, 1), got {p}')
    return round((1. - p) * 2**32)


Seed = Union[int, Tensor]


def keep_mask(shape, seed: Seed, p: float, device=None) -> Tensor:
    """Bool mask of the elements the hashed dropout keeps, computed with tensor operations."""
    numel = 1
    for size in shape:
        numel *= size
    if not isinstance(seed, Tensor):
        seed = _signed(seed)
    z = torch.arange(numel, dtype=torch.int64, device=device) * _signed(_GOLDEN) + seed
    z = (z ^ _shift_right(z, 30)) * _signed(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _signed(_MIX2)
    return (_shift_right(z ^ _shift_right(z, 31), 32) < keep_threshold(p)).view(shape)


def draw_seed(device: Optional[torch.device] = None) -> Seed:
    """A 63-bit seed from torch's default generator of ``device``: an int on the CPU (a draw from
    a host generator, not a read of device values), a 0-dim int64 tensor on other devices (the
    kernels read it there: no device-to-host copy)."""
    seed = torch.randint(0, 2**63 - 1, (), dtype=torch.int64, device=device)
    if seed.device.type != 'cpu':
        return seed
    with host_values():
        return int(seed)


def dropout_with_seed_torch(x: Tensor, p: float, seed: Seed) -> Tensor:
    """:func:`dropout_with_seed` as tensor operations (any device; the reference)."""
    scaled = x * torch.tensor(1. / (1. - p), dtype=x.dtype, device=x.device)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(keep_mask(x.shape, seed, p, x.device), scaled, zero)


def dropout_with_seed(x: Tensor, p: float, seed: Seed) -> Tensor:
    """``x * keep / (1 - p)`` with the mask of ``seed`` (no autograd; see :func:`hashed_dropout`).

    The mask follows the row-major index of ``x``'s elements, whatever its strides.
    """
    threshold = keep_threshold(p)
    scale = 1. / (1. - p)
    kernel_dtype = x.dtype in (torch.float32, torch.float64)
    if x.device.type == 'cpu' and kernel_dtype and extension.available():
        return torch.ops.cast_mm.hashed_dropout_cpu(x, int(seed), threshold, scale)
    if x.device.type == 'cuda' and hashed_dropout_triton.available():
        return hashed_dropout_triton.dropout_with_seed(x, seed, threshold, scale)
    return dropout_with_seed_torch(x, p, seed)


class _HashedDropout(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, p: float, seed: int) -> Tensor:
        ctx.p, ctx.seed = p, seed
        return dropout_with_seed(x, p, seed)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return dropout_with_seed(grad, ctx.p, ctx.seed), None, None


class _HashedDropoutMatmul(torch.autograd.Function):
    """``dropout(a) @ b`` that saves ``a`` (not the dropped copy) and redraws the mask."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, p: float, seed: int) -> Tensor:
        ctx.p, ctx.seed = p, seed
        ctx.save_for_backward(a, b)
        return dropout_with_seed(a, p, seed) @ b

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = dropout_with_seed(a, ctx.p, ctx.seed).transpose(-2, -1) @ grad
        if ctx.needs_input_grad[0]:
            grad_a = dropout_with_seed(grad @ b.transpose(-2, -1), ctx.p, ctx.seed)
        return grad_a, grad_b, None, None


def hashed_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Dropout of ``x`` with a hashed mask (see the module docstring); identity when not
    ``training`` or ``p == 0``."""
    if not training or p == 0.:
        return x
    return _HashedDropout.apply(x, p, draw_seed(x.device))


def hashed_dropout_matmul(a: Tensor, b: Tensor, p: float, training: bool = True) -> Tensor:
    """``hashed_dropout(a, p) @ b`` keeping only ``a`` and ``b`` for the backward pass.

    In attention, ``a`` is the softmax output, which autograd keeps anyway: the dropped weights
    cost neither a saved mask nor a saved copy.
    """
    if not training or p == 0.:
        return a @ b
    return _HashedDropoutMatmul.apply(a, b, p, draw_seed(a.device))
