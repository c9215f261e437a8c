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
Only ``K N C`` work, no ``N^2`` buffer. Batch items run on ``torch.get_num_threads()``
threads; an item whose transposed points would not stay in one core's cache (CAST's 1025
segment tokens: 3.1 MB), or a batch with fewer items than threads, is split between threads,
each sampling a slice of the points and meeting the others once per sample to take the
largest minimum (the first slice's on ties, so still DGL's first index).
float32 points (CAST's tokens) are read as they are and widened to float64 in the kernel,
which gives the values DGL's float64 copy holds, without that copy.

The C source is built by :class:`~cast_mm.ops.compiled_library.CompiledLibrary` (system C
compiler, cached, loaded with :mod:`ctypes`), with AVX-512 / AVX2 / generic clones chosen at
load time on x86-64 with GCC. Without a compiler, or with ``CAST_MM_FPS_KERNEL=0`` in the
environment, :func:`load` returns None and callers keep the torch formulation.
"""
import ctypes
from typing import Optional

import torch
from torch import Tensor

from .compiled_library import CompiledLibrary

_SOURCE = r"""
#include <pthread.h>
#include <sched.h>
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

/* Dropping points costs a gather of every kept point's channels and saves `saved` columns
 * in each of the `remaining` distance passes. The factor 8 (moving one column costs about as
 * much as 8 columns of distances) was tuned by timing, not derived: on 197 and 1025 points
 * this rule beats compacting at every vector's worth of zeros by 10-25%. */
static int compaction_pays(int64_t saved, int64_t remaining, int64_t active) {
    return saved > 0 && saved * remaining >= 8 * active;
}

/* The points [lo, hi) of one item that one thread samples: transposed, with each point's
 * running minimum distance to the selected set and its index in the item. */
struct slice {
    double *pt, *dist, *min_dist, *centre;
    int64_t *index, *keep;
    int64_t active, stride;
};

/* Bytes of the work buffer of a slice of at most `cap` points. */
static size_t slice_bytes(int64_t cap, int64_t dim) {
    return sizeof(double) * (size_t)(round_up(cap) * (dim + 4) + dim);
}

static void slice_init(struct slice *s, double *buf, int64_t cap, int64_t dim) {
    const int64_t stride = round_up(cap);
    s->pt = buf;
    s->dist = buf + stride * dim;
    s->min_dist = s->dist + stride;
    s->index = (int64_t *)(s->min_dist + stride);
    s->keep = s->index + stride;
    s->centre = (double *)(s->keep + stride);
}

/* Points of x: rows of dim floats if `single`, else doubles; floats are widened, exactly. */
static double coordinate(const void *x, int single, int64_t i) {
    return single ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static void slice_load(struct slice *s, const void *x, int single, int64_t lo, int64_t hi,
                       int64_t dim) {
    const int64_t n = hi - lo, stride = round_up(n);
    double *pt = s->pt;
    for (int64_t d = 0; d < dim; ++d)
        for (int64_t j = n; j < stride; ++j) pt[d * stride + j] = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += TILE) /* transpose in tiles: both sides stay cached */
        for (int64_t d0 = 0; d0 < dim; d0 += TILE) {
            const int64_t j1 = j0 + TILE < n ? j0 + TILE : n;
            const int64_t d1 = d0 + TILE < dim ? d0 + TILE : dim;
            for (int64_t j = j0; j < j1; ++j)
                for (int64_t d = d0; d < d1; ++d)
                    pt[d * stride + j] = coordinate(x, single, (lo + j) * dim + d);
        }
    for (int64_t j = 0; j < n; ++j) s->index[j] = lo + j;
    s->active = n;
    s->stride = stride;
}

/* One sample on a slice: every point's distance to the centre `cur` (the minima start from
 * these when `first`), and the first index of the largest minimum with its value (index 0
 * and 0.0 when all are zero). A point whose minimum is 0 can neither change nor be picked
 * again, so such points are dropped from the working set (order kept) when
 * compaction_pays over the `remaining` samples. */
static void slice_step(struct slice *s, const void *x, int single, int64_t dim, int64_t cur,
                       int first, int64_t remaining, double *best_value, int64_t *best_index) {
    for (int64_t d = 0; d < dim; ++d) s->centre[d] = coordinate(x, single, cur * dim + d);
    distances_to(s->pt, s->stride, dim, s->centre, s->dist);
    double *min_dist = s->min_dist;
    const double *dist = s->dist;
    int64_t best = 0, zeros = 0;
    double best_d = 0.0;
    for (int64_t j = 0; j < s->active; ++j) {
        if (first || min_dist[j] > dist[j]) min_dist[j] = dist[j];
        if (min_dist[j] > best_d) {
            best_d = min_dist[j];
            best = s->index[j];
        }
        zeros += min_dist[j] == 0.0;
    }
    *best_value = best_d;
    *best_index = best;
    const int64_t kept = s->active - zeros, new_stride = round_up(kept);
    if (compaction_pays(s->stride - new_stride, remaining, s->active)) {
        for (int64_t j = 0, m = 0; j < s->active; ++j) {
            if (min_dist[j] != 0.0) {
                s->keep[m] = j;
                min_dist[m] = min_dist[j];
                s->index[m++] = s->index[j];
            }
        }
        for (int64_t d = 0; d < dim; ++d) { /* in place: row d moves down, keep[m] >= m */
            const double *src = s->pt + d * s->stride;
            double *dst = s->pt + d * new_stride;
            for (int64_t m = 0; m < kept; ++m) dst[m] = src[s->keep[m]];
            for (int64_t m = kept; m < new_stride; ++m) dst[m] = 0.0;
        }
        s->active = kept;
        s->stride = new_stride;
    }
}

#define MAX_THREADS 64

/* Threads splitting the points of the same items, one slice each. After every sample they
 * meet at a spinning barrier (a sleeping one costs more than a sample's work) and each takes
 * the largest of their maxima, the first slice on ties: DGL's first index of the largest.
 * Slots alternate between samples, so a thread already writing the next sample's maximum
 * cannot overwrite one that another thread is still reading. */
struct group {
    int size;
    int arrived;
    int sense;
    double value[2][MAX_THREADS];
    int64_t index[2][MAX_THREADS];
};

static void group_wait(struct group *g, int *local_sense) {
    const int sense = !*local_sense;
    *local_sense = sense;
    if (__atomic_add_fetch(&g->arrived, 1, __ATOMIC_ACQ_REL) == g->size) {
        __atomic_store_n(&g->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&g->sense, sense, __ATOMIC_RELEASE);
        return;
    }
    for (long spins = 0; __atomic_load_n(&g->sense, __ATOMIC_ACQUIRE) != sense; ++spins) {
        if (spins > 4096) sched_yield(); /* more threads than free cores: give ours away */
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#endif
    }
}

struct job {
    const void *x;
    int single;
    int64_t batch, n, dim, k, start;
    int64_t first_item, item_step; /* items first_item, first_item + item_step, ... */
    int member;                    /* this thread's slice of each item */
    struct group *group;           /* NULL: the thread samples whole items alone */
    double *buf;
    int64_t *out;
};

static void run_job(struct job *jb) {
    const int size = jb->group ? jb->group->size : 1, r = jb->member;
    const int64_t n = jb->n, dim = jb->dim, k = jb->k;
    const size_t item_bytes = (size_t)(n * dim) * (jb->single ? sizeof(float) : sizeof(double));
    struct slice s;
    slice_init(&s, jb->buf, (n + size - 1) / size, dim);
    int sense = 0, parity = 0;
    for (int64_t b = jb->first_item; b < jb->batch; b += jb->item_step) {
        const void *x = (const char *)jb->x + b * item_bytes;
        int64_t *picks = jb->out + b * k;
        slice_load(&s, x, jb->single, n * r / size, n * (r + 1) / size, dim);
        int64_t cur = jb->start;
        if (r == 0) picks[0] = cur;
        for (int64_t t = 1; t < k; ++t) {
            double value;
            int64_t index;
            slice_step(&s, x, jb->single, dim, cur, t == 1, k - 1 - t, &value, &index);
            if (size > 1) {
                struct group *g = jb->group;
                g->value[parity][r] = value;
                g->index[parity][r] = index;
                group_wait(g, &sense);
                value = 0.0;
                index = 0;
                for (int m = 0; m < size; ++m) {
                    if (g->value[parity][m] > value) {
                        value = g->value[parity][m];
                        index = g->index[parity][m];
                    }
                }
                parity ^= 1;
            }
            cur = index;
            if (r == 0) picks[t] = cur;
        }
    }
}

/* Threads start only once all exist: a member missing from a group would leave the others
 * waiting at its barrier, so if one cannot be created, none runs and the caller samples
 * alone. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state; /* 0 wait, 1 run, -1 exit */
};

struct thread_arg {
    struct job *job;
    struct gate *gate;
};

static void *thread_main(void *arg) {
    struct thread_arg *ta = (struct thread_arg *)arg;
    pthread_mutex_lock(&ta->gate->lock);
    while (ta->gate->state == 0) pthread_cond_wait(&ta->gate->cond, &ta->gate->lock);
    const int run = ta->gate->state == 1;
    pthread_mutex_unlock(&ta->gate->lock);
    if (run) run_job(ta->job);
    return NULL;
}

static void open_gate(struct gate *gate, int state) {
    pthread_mutex_lock(&gate->lock);
    gate->state = state;
    pthread_cond_broadcast(&gate->cond);
    pthread_mutex_unlock(&gate->lock);
}

/* Farthest point sampling of `batch` items of x (batch, n, dim), float32 if `single`, else
 * float64, on `threads` threads: groups of `per_item` threads, each group sampling whole
 * items, each thread of a group a slice of every item's points. Returns 0 on success. */
int cast_mm_fps(const void *x, int64_t single, int64_t batch, int64_t n, int64_t dim,
                int64_t k, int64_t start, int64_t threads, int64_t per_item, int64_t *out) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (per_item > threads) per_item = threads;
    if (per_item < 1) per_item = 1;
    int64_t groups = threads / per_item;
    if (groups > batch) groups = batch;
    if (groups < 1) groups = 1;
    threads = groups * per_item;
    const size_t bytes = slice_bytes((n + per_item - 1) / per_item, dim);
    struct job jobs[MAX_THREADS];
    struct thread_arg args[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    double *bufs[MAX_THREADS] = {NULL};
    struct group *group_state = calloc((size_t)groups, sizeof(struct group));
    int failed = group_state == NULL;
    for (int64_t t = 0; t < threads && !failed; ++t)
        failed = posix_memalign((void **)&bufs[t], 64, bytes) != 0;
    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int64_t created = 0;
    if (!failed) {
        for (int64_t g = 0; g < groups; ++g) group_state[g].size = (int)per_item;
        for (int64_t t = 0; t < threads; ++t) {
            struct job jb = {x, single != 0, batch, n, dim, k, start, t / per_item, groups,
                             (int)(t % per_item), per_item > 1 ? &group_state[t / per_item] : NULL,
                             bufs[t], out};
            jobs[t] = jb;
            args[t].job = &jobs[t];
            args[t].gate = &gate;
        }
        while (created + 1 < threads &&
               pthread_create(&ids[created + 1], NULL, thread_main, &args[created + 1]) == 0)
            ++created;
        const int all = created + 1 == threads;
        open_gate(&gate, all ? 1 : -1);
        if (all) {
            run_job(&jobs[0]);
        } else { /* one thread, whole items */
            struct job alone = {x, single != 0, batch, n, dim, k, start, 0, 1, 0, NULL, bufs[0],
                                out};
            if (per_item > 1) { /* its buffer holds a slice: make one for whole items */
                free(bufs[0]);
                bufs[0] = NULL;
                failed = posix_memalign((void **)&bufs[0], 64, slice_bytes(n, dim)) != 0;
                alone.buf = bufs[0];
            }
            if (!failed) run_job(&alone);
        }
        for (int64_t t = 1; t <= created; ++t) pthread_join(ids[t], NULL);
    }
    for (int64_t t = 0; t < threads; ++t) free(bufs[t]);
    free(group_state);
    return failed;
}
"""
LIBRARY = CompiledLibrary(
    'fps', 'FPS kernel', _SOURCE,
    {'cast_mm_fps': (ctypes.c_int, [ctypes.c_void_p] + [ctypes.c_int64] * 8 + [ctypes.c_void_p])},
    fallback='torch loop')


def load():
    """The compiled sampling function, or None when it cannot be used (see :func:`status`)."""
    library = LIBRARY.load()
    return None if library is None else library.cast_mm_fps


def status() -> str:
    """Which loop CPU farthest point sampling runs, and why."""
    return LIBRARY.status()


#: Transposed float64 points one thread keeps in its cache (about an L2 cache): an item with
#: more is split between threads, each sampling a slice of its points.
SLICE_BYTES = 1 << 20


def threads_per_item(batch: int, num_points: int, channels: int, threads: int) -> int:
    """How many of ``threads`` share each item: enough to bring every thread's slice of the
    points under :data:`SLICE_BYTES`, and all of them when there are fewer items than threads.
    """
    item_bytes = -(-num_points // 8) * 8 * channels * 8  # points padded to 8 lanes, float64
    return max(1, min(threads, max(-(-item_bytes // SLICE_BYTES), threads // max(batch, 1))))


def sample(points: Tensor, num_samples: int, start_idx: int, threads: Optional[int] = None,
           per_item: Optional[int] = None) -> Tensor:
    """Farthest point sampling of CPU ``points`` ``(B, N, C)`` with the compiled kernel.

    Args:
        points (Tensor): ``(B, N, C)`` points; float32 and float64 are read as they are
            (float32 widened exactly in the kernel), other dtypes converted to float32
            (exact for float16 and bfloat16) or float64.
        num_samples (int): samples per item, the start included.
        start_idx (int): first selected index.
        threads (int, optional): threads to run on. Defaults to ``torch.get_num_threads()``.
        per_item (int, optional): threads sharing each item's points. Defaults to
            :func:`threads_per_item`. Every choice gives the same indices.

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
    threads = max(1, torch.get_num_threads()) if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f'FPS kernel: threads must be >= 1, got {threads}')
    if per_item is None:
        per_item = threads_per_item(batch, num_points, channels, threads)
    elif not 1 <= int(per_item) <= threads:
        raise ValueError(f'FPS kernel: per_item must be in [1, threads={threads}], '
                         f'got {per_item}')
    single = int(points.dtype == torch.float32)
    if fn(points.data_ptr(), single, batch, num_points, channels, num_samples, start_idx,
          threads, int(per_item), out.data_ptr()) != 0:
        raise MemoryError('the FPS kernel could not allocate its work buffers')
    return out
