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
checkpoints reproduce the masks as they do torch's.

The distribution is dropout's: each element kept independently with probability ``1 - p``
(to within ``2^-32``) and scaled by ``1 / (1 - p)``; only the random stream differs from
``torch.nn.functional.dropout``. On CPU the masked product is one call of a C function
(:class:`~cast_mm.ops.compiled_library.CompiledLibrary`, switch ``CAST_MM_DROPOUT_KERNEL=0``);
without it, and on other devices, the same hash is evaluated with int64 tensor operations, which
gives bitwise the same outputs.
"""
import ctypes
from typing import Optional

import torch
from torch import Tensor

from cast_mm.utils.host_reads import host_values
from .compiled_library import CompiledLibrary

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

_SOURCE = r"""
#include <pthread.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

static inline uint64_t keep_bits(uint64_t i, uint64_t seed) {
    uint64_t z = i * 0x9E3779B97F4A7C15ULL + seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) >> 32;
}

VECTOR_CLONES
static void dropout_f32(const float *x, float *out, int64_t begin, int64_t end,
                        uint64_t seed, uint64_t threshold, float scale) {
    for (int64_t i = begin; i < end; ++i)
        out[i] = keep_bits((uint64_t)i, seed) < threshold ? x[i] * scale : 0.0f;
}

VECTOR_CLONES
static void dropout_f64(const double *x, double *out, int64_t begin, int64_t end,
                        uint64_t seed, uint64_t threshold, double scale) {
    for (int64_t i = begin; i < end; ++i)
        out[i] = keep_bits((uint64_t)i, seed) < threshold ? x[i] * scale : 0.0;
}

struct job {
    const void *x;
    void *out;
    int64_t begin, end;
    uint64_t seed, threshold;
    double scale;
    int is_double;
};

static void *run_job(void *arg) {
    const struct job *jb = (const struct job *)arg;
    if (jb->is_double)
        dropout_f64((const double *)jb->x, (double *)jb->out, jb->begin, jb->end, jb->seed,
                    jb->threshold, jb->scale);
    else
        dropout_f32((const float *)jb->x, (float *)jb->out, jb->begin, jb->end, jb->seed,
                    jb->threshold, (float)jb->scale);
    return NULL;
}

/* out[i] = keep(i) ? x[i] * scale : 0 for i < n, split over `threads` threads. */
void cast_mm_hashed_dropout(const void *x, void *out, int64_t n, uint64_t seed,
                            uint64_t threshold, double scale, int is_double, int64_t threads) {
    if (threads > 64) threads = 64;
    if (threads < 1 || n < (1 << 16)) threads = 1;
    struct job jobs[64];
    pthread_t ids[64];
    int started[64] = {0};
    const int64_t chunk = ((n + threads - 1) / threads + 63) / 64 * 64;
    for (int64_t t = 0; t < threads; ++t) {
        int64_t begin = t * chunk, end = begin + chunk;
        if (begin > n) begin = n;
        if (end > n) end = n;
        struct job jb = {x, out, begin, end, seed, threshold, scale, is_double};
        jobs[t] = jb;
    }
    for (int64_t t = 1; t < threads; ++t)
        started[t] = pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int64_t t = 1; t < threads; ++t) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            run_job(&jobs[t]);
    }
}
"""

LIBRARY = CompiledLibrary(
    'dropout', 'dropout kernel', _SOURCE,
    {'cast_mm_hashed_dropout': (None, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                       ctypes.c_uint64, ctypes.c_uint64, ctypes.c_double,
                                       ctypes.c_int, ctypes.c_int64])})


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


def keep_mask(shape, seed: int, p: float, device=None) -> Tensor:
    """Bool mask of the elements the hashed dropout keeps, computed with tensor operations."""
    numel = 1
    for size in shape:
        numel *= size
    z = torch.arange(numel, dtype=torch.int64, device=device) * _signed(_GOLDEN) + _signed(seed)
    z = (z ^ _shift_right(z, 30)) * _signed(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _signed(_MIX2)
    return (_shift_right(z ^ _shift_right(z, 31), 32) < keep_threshold(p)).view(shape)


def draw_seed(device: Optional[torch.device] = None) -> int:
    """A 63-bit seed from torch's default generator of ``device``.

    On CPU (the only device the hashed dropout runs on) a draw from a host generator, not a
    read of device values.
    """
    seed = torch.randint(0, 2**63 - 1, (), dtype=torch.int64, device=device)
    if seed.device.type != 'cpu':
        return int(seed)
    with host_values():
        return int(seed)


def dropout_with_seed(x: Tensor, p: float, seed: int) -> Tensor:
    """``x * keep / (1 - p)`` with the mask of ``seed`` (no autograd; see :func:`hashed_dropout`).

    The mask follows the row-major index of ``x``'s elements, whatever its strides.
    """
    threshold = keep_threshold(p)
    scale = 1. / (1. - p)
    x = x.contiguous()
    library = LIBRARY.load() if x.device.type == 'cpu' else None
    if library is not None and x.dtype in (torch.float32, torch.float64):
        out = torch.empty_like(x)
        library.cast_mm_hashed_dropout(x.data_ptr(), out.data_ptr(), x.numel(), seed, threshold,
                                       scale, int(x.dtype == torch.float64),
                                       torch.get_num_threads())
        return out
    scaled = x * torch.tensor(scale, dtype=x.dtype, device=x.device)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(keep_mask(x.shape, seed, p, x.device), scaled, zero)


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
