"""Compiled CPU farthest point sampling: DGL's computation, vectorised, built at first use.

The torch formulation of the sampling (:func:`cast_mm.ops.farthest_point_sampling`) costs a
Gram matrix of all ``N^2`` pairs plus three small tensor operations per sample, each with its
dispatch overhead: 600 of them per CAST segmentation forward. On CPU this module does the whole
sampling of a batch in one call of a C function instead.

The C function computes DGL's CPU kernel exactly: for each new centre, the squared distance of
every point to it as a float64 sum of ``(x_j[d] - x_c[d])^2`` over the channels ``d`` in
order, a running minimum per point, and the first index of the largest minimum (index 0 when
all are zero). The points are transposed so that one vector lane holds one point ``j`` and adds
its own terms in channel order (no reassociation, compiled without floating-point
contraction), so every distance, and therefore every index, ties included, is bitwise DGL's.
Only ``K N C`` work, no ``N^2`` buffer; batch items run on ``torch.get_num_threads()`` threads.
float32 points (CAST's tokens) are read as they are and widened to float64 in the kernel,
which gives the values DGL's float64 copy holds, without that copy.

The C source is built by :class:`~cast_mm.ops.compiled_library.CompiledLibrary` (system C
compiler, cached, loaded with :mod:`ctypes`), with AVX-512 / AVX2 / generic clones chosen at
load time on x86-64 with GCC. Without a compiler, or with ``CAST_MM_FPS_KERNEL=0`` in the
environment, :func:`load` returns None and callers keep the torch formulation.
"""
import ctypes

import torch
from torch import Tensor

from .compiled_library import CompiledLibrary

_SOURCE = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define LANES 8 /* doubles per vector; the point count is padded to a multiple of it */
#define TILE 8  /* side of the square tiles the points are transposed in */

typedef double vec __attribute__((vector_size(LANES * sizeof(double))));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* out[j] = sum over d, in order, of (pt[d][j] - c[d])^2 for every column j of the
 * transposed points pt (dim rows of `stride` doubles, 64-byte aligned, stride a multiple of
 * LANES). Each vector lane holds one j and adds its own terms in channel order: every sum
 * is the sequential one. Blocks of four vectors keep four independent additions in flight. */
VECTOR_CLONES
static void distances_to(const double *pt, int64_t stride, int64_t dim, const double *c,
                         double *out) {
    int64_t j0 = 0;
    for (; j0 + 4 * LANES <= stride; j0 += 4 * LANES) {
        vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int64_t d = 0; d < dim; ++d) {
            const double *row = pt + d * stride + j0;
            vec cv;
            for (int i = 0; i < LANES; ++i) cv[i] = c[d];
            const vec d0 = *(const vec *)(row) - cv;
            const vec d1 = *(const vec *)(row + LANES) - cv;
            const vec d2 = *(const vec *)(row + 2 * LANES) - cv;
            const vec d3 = *(const vec *)(row + 3 * LANES) - cv;
            a0 = a0 + d0 * d0;
            a1 = a1 + d1 * d1;
            a2 = a2 + d2 * d2;
            a3 = a3 + d3 * d3;
        }
        *(vec *)(out + j0) = a0;
        *(vec *)(out + j0 + LANES) = a1;
        *(vec *)(out + j0 + 2 * LANES) = a2;
        *(vec *)(out + j0 + 3 * LANES) = a3;
    }
    for (; j0 < stride; j0 += LANES) {
        vec a0 = {0};
        for (int64_t d = 0; d < dim; ++d) {
            vec cv;
            for (int i = 0; i < LANES; ++i) cv[i] = c[d];
            const vec d0 = *(const vec *)(pt + d * stride + j0) - cv;
            a0 = a0 + d0 * d0;
        }
        *(vec *)(out + j0) = a0;
    }
}

static int64_t round_up(int64_t n) { return (n + LANES - 1) / LANES * LANES; }

/* Dropping points costs one gather of every kept point's channels (about one pass of
 * distances_to per LANES / 8 rows kept, measured); it saves `saved` columns in each of the
 * `remaining` passes. Only worth it when the saving is larger: measured on 197 and 1025
 * points, this rule beats compacting at every vector of zeros by 10-25%. */
static int compaction_pays(int64_t saved, int64_t remaining, int64_t active) {
    return saved > 0 && saved * remaining >= 8 * active;
}

/* One item: points x (n rows of dim floats if `single`, else doubles; floats are widened,
 * exactly, as they are read) -> k indices starting at `start`. Keeps each
 * point's minimum distance to the selected set and picks the first index of the largest one
 * (index 0 when all are zero). A point whose minimum is 0 can neither change nor be picked
 * again, so such points are dropped from the transposed working set (order kept) when
 * compaction_pays. */
static void sample_item(const void *x, int single, int64_t n, int64_t dim, int64_t k,
                        int64_t start, double *pt, double *dist, double *min_dist,
                        int64_t *index, int64_t *keep, double *centre, int64_t *picks) {
    const float *xf = (const float *)x;
    const double *xd = (const double *)x;
    int64_t active = n, stride = round_up(n);
    for (int64_t d = 0; d < dim; ++d)
        for (int64_t j = n; j < stride; ++j) pt[d * stride + j] = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += TILE) /* transpose in tiles: both sides stay cached */
        for (int64_t d0 = 0; d0 < dim; d0 += TILE) {
            const int64_t j1 = j0 + TILE < n ? j0 + TILE : n;
            const int64_t d1 = d0 + TILE < dim ? d0 + TILE : dim;
            for (int64_t j = j0; j < j1; ++j)
                for (int64_t d = d0; d < d1; ++d)
                    pt[d * stride + j] = single ? (double)xf[j * dim + d] : xd[j * dim + d];
        }
    for (int64_t j = 0; j < n; ++j) index[j] = j;
    int64_t cur = start;
    picks[0] = cur;
    for (int64_t t = 1; t < k; ++t) {
        for (int64_t d = 0; d < dim; ++d)
            centre[d] = single ? (double)xf[cur * dim + d] : xd[cur * dim + d];
        distances_to(pt, stride, dim, centre, dist);
        int64_t best = 0, zeros = 0;
        double best_d = 0.0;
        for (int64_t j = 0; j < active; ++j) {
            if (t == 1 || min_dist[j] > dist[j]) min_dist[j] = dist[j];
            if (min_dist[j] > best_d) {
                best_d = min_dist[j];
                best = index[j];
            }
            zeros += min_dist[j] == 0.0;
        }
        cur = best;
        picks[t] = cur;
        const int64_t kept = active - zeros, new_stride = round_up(kept);
        if (compaction_pays(stride - new_stride, k - 1 - t, active)) {
            for (int64_t j = 0, m = 0; j < active; ++j) {
                if (min_dist[j] != 0.0) {
                    keep[m] = j;
                    min_dist[m] = min_dist[j];
                    index[m++] = index[j];
                }
            }
            for (int64_t d = 0; d < dim; ++d) { /* in place: row d moves down, keep[m] >= m */
                const double *src = pt + d * stride;
                double *dst = pt + d * new_stride;
                for (int64_t m = 0; m < kept; ++m) dst[m] = src[keep[m]];
                for (int64_t m = kept; m < new_stride; ++m) dst[m] = 0.0;
            }
            active = kept;
            stride = new_stride;
        }
    }
}

struct job {
    const void *x;
    int single;
    int64_t batch, n, dim, k, start, first, step;
    int64_t *out;
    int failed;
};

static void *run_job(void *arg) {
    struct job *jb = (struct job *)arg;
    const int64_t stride = round_up(jb->n);
    double *buf = NULL;
    const size_t bytes = sizeof(double) * (size_t)(stride * (jb->dim + 4) + jb->dim);
    if (posix_memalign((void **)&buf, 64, bytes)) {
        jb->failed = 1;
        return NULL;
    }
    const size_t item_bytes = (size_t)(jb->n * jb->dim) * (jb->single ? sizeof(float)
                                                                      : sizeof(double));
    for (int64_t b = jb->first; b < jb->batch; b += jb->step)
        sample_item((const char *)jb->x + b * item_bytes, jb->single, jb->n, jb->dim, jb->k,
                    jb->start, buf, buf + stride * jb->dim, buf + stride * (jb->dim + 1),
                    (int64_t *)(buf + stride * (jb->dim + 2)),
                    (int64_t *)(buf + stride * (jb->dim + 3)), buf + stride * (jb->dim + 4),
                    jb->out + b * jb->k);
    free(buf);
    return NULL;
}

/* Farthest point sampling of `batch` items of x (batch, n, dim), float32 if `single`, else
 * float64, items spread over `threads` threads; returns 0 on success. */
int cast_mm_fps(const void *x, int64_t single, int64_t batch, int64_t n, int64_t dim,
                int64_t k, int64_t start, int64_t threads, int64_t *out) {
    if (threads > batch) threads = batch;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    struct job jobs[64];
    pthread_t ids[64];
    int started[64] = {0};
    for (int64_t t = 0; t < threads; ++t) {
        struct job jb = {x, single != 0, batch, n, dim, k, start, t, threads, out, 0};
        jobs[t] = jb;
    }
    for (int64_t t = 1; t < threads; ++t)
        started[t] = pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    int failed = jobs[0].failed;
    for (int64_t t = 1; t < threads; ++t) {
        if (started[t]) {
            pthread_join(ids[t], NULL);
        } else {
            run_job(&jobs[t]);
        }
        failed |= jobs[t].failed;
    }
    return failed;
}
"""
LIBRARY = CompiledLibrary(
    'fps', 'FPS kernel', _SOURCE,
    {'cast_mm_fps': (ctypes.c_int, [ctypes.c_void_p] + [ctypes.c_int64] * 7 + [ctypes.c_void_p])},
    fallback='torch loop')


def load():
    """The compiled sampling function, or None when it cannot be used (see :func:`status`)."""
    library = LIBRARY.load()
    return None if library is None else library.cast_mm_fps


def status() -> str:
    """Which loop CPU farthest point sampling runs, and why."""
    return LIBRARY.status()


def sample(points: Tensor, num_samples: int, start_idx: int) -> Tensor:
    """Farthest point sampling of CPU ``points`` ``(B, N, C)`` with the compiled kernel.

    Args:
        points (Tensor): ``(B, N, C)`` points; float32 and float64 are read as they are
            (float32 widened exactly in the kernel), other dtypes converted to float32
            (exact for float16 and bfloat16) or float64.
        num_samples (int): samples per item, the start included.
        start_idx (int): first selected index.

    Returns:
        Tensor: ``(B, num_samples)`` int64 indices, those of DGL's CPU kernel.
    """
    fn = load()
    if fn is None:
        raise RuntimeError(f'the compiled FPS kernel is unavailable: {status()}')
    if points.dtype not in (torch.float32, torch.float64):
        exact_in_single = points.dtype in (torch.float16, torch.bfloat16)
        points = points.to(torch.float32 if exact_in_single else torch.float64)
    points = points.contiguous()
    batch, num_points, channels = points.shape
    out = torch.empty((batch, num_samples), dtype=torch.long)
    threads = max(1, min(torch.get_num_threads(), batch))
    single = int(points.dtype == torch.float32)
    if fn(points.data_ptr(), single, batch, num_points, channels, num_samples, start_idx,
          threads, out.data_ptr()) != 0:
        raise MemoryError('the FPS kernel could not allocate its work buffer')
    return out
