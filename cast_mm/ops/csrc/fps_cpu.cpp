// Farthest point sampling on CPU with DGL's arithmetic: cast_mm::fps_cpu.
//
// For each new centre every point's squared distance is a float64 sum of (x_j[d] - c[d])^2 over
// the channels d in order, each point keeps its minimum distance to the selected set, and the
// next centre is the first index of the largest minimum (index 0 when all are zero): DGL's CPU
// kernel operation for operation. The points are transposed so that one vector lane holds one
// point and adds its own terms in channel order (no reassociation; the extension is compiled
// with -ffp-contract=off, so no fused multiply-add either): every distance, and therefore
// every index, ties included, is bitwise DGL's.
//
// Items whose points stay in one core's cache, in batches of at least as many items as threads,
// are sampled whole, in one at::parallel_for over the items. Otherwise each item is split into
// slices of its points: every sample is then one at::parallel_for over the slices of all items,
// and the largest minimum of an item is taken over its slices, the first slice's on ties, which
// is DGL's first index.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace cast_mm {
namespace {

constexpr int64_t kLanes = 8;  // doubles per vector; slices are padded to a multiple of it
constexpr int64_t kTile = 8;   // side of the square tiles the points are transposed in

typedef double Vec __attribute__((vector_size(kLanes * sizeof(double))));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CAST_MM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CAST_MM_VECTOR_CLONES
#endif

int64_t round_up(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// out[j] = sum over d, in order, of (pt[d][j] - c[d])^2 for every column j of the transposed
// points pt (dim rows of `stride` doubles, stride a multiple of kLanes). Blocks of four
// vectors keep four independent additions in flight.
CAST_MM_VECTOR_CLONES
void distances_to(const double* pt, int64_t stride, int64_t dim, const double* c, double* out) {
  int64_t j0 = 0;
  for (; j0 + 4 * kLanes <= stride; j0 += 4 * kLanes) {
    Vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t d = 0; d < dim; ++d) {
      const double* row = pt + d * stride + j0;
      Vec cv;
      for (int i = 0; i < kLanes; ++i) cv[i] = c[d];
      Vec d0, d1, d2, d3;
      __builtin_memcpy(&d0, row, sizeof(Vec));
      __builtin_memcpy(&d1, row + kLanes, sizeof(Vec));
      __builtin_memcpy(&d2, row + 2 * kLanes, sizeof(Vec));
      __builtin_memcpy(&d3, row + 3 * kLanes, sizeof(Vec));
      d0 -= cv;
      d1 -= cv;
      d2 -= cv;
      d3 -= cv;
      a0 = a0 + d0 * d0;
      a1 = a1 + d1 * d1;
      a2 = a2 + d2 * d2;
      a3 = a3 + d3 * d3;
    }
    __builtin_memcpy(out + j0, &a0, sizeof(Vec));
    __builtin_memcpy(out + j0 + kLanes, &a1, sizeof(Vec));
    __builtin_memcpy(out + j0 + 2 * kLanes, &a2, sizeof(Vec));
    __builtin_memcpy(out + j0 + 3 * kLanes, &a3, sizeof(Vec));
  }
  for (; j0 < stride; j0 += kLanes) {
    Vec a0 = {0};
    for (int64_t d = 0; d < dim; ++d) {
      Vec cv, d0;
      for (int i = 0; i < kLanes; ++i) cv[i] = c[d];
      __builtin_memcpy(&d0, pt + d * stride + j0, sizeof(Vec));
      d0 -= cv;
      a0 = a0 + d0 * d0;
    }
    __builtin_memcpy(out + j0, &a0, sizeof(Vec));
  }
}

// Dropping points costs a gather of every kept point's channels and saves `saved` columns in
// each of the `remaining` distance passes. The factor 8 (moving one column costs about as
// much as 8 columns of distances) is tuned by timing.
bool compaction_pays(int64_t saved, int64_t remaining, int64_t active) {
  return saved > 0 && saved * remaining >= 8 * active;
}

// The points [lo, hi) of one item: transposed, with each point's running minimum distance to
// the selected set and its index in the item.
template <typename scalar_t>
struct Slice {
  std::vector<double> pt, dist, min_dist, centre;
  std::vector<int64_t> index, keep;
  int64_t active = 0, stride = 0;

  void load(const scalar_t* x, int64_t lo, int64_t hi, int64_t dim) {
    const int64_t n = hi - lo;
    stride = round_up(n);
    active = n;
    pt.assign(stride * dim, 0.0);  // padded columns stay 0
    dist.assign(stride, 0.0);
    min_dist.assign(stride, 0.0);
    centre.assign(dim, 0.0);
    index.resize(n);
    keep.resize(n);
    for (int64_t j0 = 0; j0 < n; j0 += kTile) {  // in tiles: both sides stay cached
      for (int64_t d0 = 0; d0 < dim; d0 += kTile) {
        const int64_t j1 = std::min(j0 + kTile, n), d1 = std::min(d0 + kTile, dim);
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t d = d0; d < d1; ++d)
            pt[d * stride + j] = static_cast<double>(x[(lo + j) * dim + d]);
      }
    }
    for (int64_t j = 0; j < n; ++j) index[j] = lo + j;
  }

  // One sample: distances to the centre `cur` (the minima start from them when `first`), the
  // first index of the largest minimum and its value (0 and 0.0 when all are zero). A point
  // whose minimum is 0 can neither change nor be picked, so such points leave the working set
  // (order kept) when compaction_pays over the `remaining` samples.
  void step(const scalar_t* x, int64_t dim, int64_t cur, bool first, int64_t remaining,
            double* best_value, int64_t* best_index) {
    for (int64_t d = 0; d < dim; ++d) centre[d] = static_cast<double>(x[cur * dim + d]);
    distances_to(pt.data(), stride, dim, centre.data(), dist.data());
    int64_t best = 0, zeros = 0;
    double best_d = 0.0;
    for (int64_t j = 0; j < active; ++j) {
      if (first || min_dist[j] > dist[j]) min_dist[j] = dist[j];
      if (min_dist[j] > best_d) {
        best_d = min_dist[j];
        best = index[j];
      }
      zeros += min_dist[j] == 0.0;
    }
    *best_value = best_d;
    *best_index = best;
    const int64_t kept = active - zeros, new_stride = round_up(kept);
    if (!compaction_pays(stride - new_stride, remaining, active)) return;
    for (int64_t j = 0, m = 0; j < active; ++j) {
      if (min_dist[j] != 0.0) {
        keep[m] = j;
        min_dist[m] = min_dist[j];
        index[m++] = index[j];
      }
    }
    for (int64_t d = 0; d < dim; ++d) {  // in place: row d moves down, keep[m] >= m
      const double* src = pt.data() + d * stride;
      double* dst = pt.data() + d * new_stride;
      for (int64_t m = 0; m < kept; ++m) dst[m] = src[keep[m]];
      for (int64_t m = kept; m < new_stride; ++m) dst[m] = 0.0;
    }
    active = kept;
    stride = new_stride;
  }
};

// Whole items, one after another on each thread: no synchronisation between samples.
template <typename scalar_t>
void sample_items(const scalar_t* x, int64_t batch, int64_t n, int64_t dim, int64_t k,
                  int64_t start, int64_t* out) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    Slice<scalar_t> part;
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* item = x + b * n * dim;
      part.load(item, 0, n, dim);
      int64_t cur = start;
      out[b * k] = cur;
      for (int64_t t = 1; t < k; ++t) {
        double value;
        part.step(item, dim, cur, t == 1, k - 1 - t, &value, &cur);
        out[b * k + t] = cur;
      }
    }
  });
}

template <typename scalar_t>
void sample(const scalar_t* x, int64_t batch, int64_t n, int64_t dim, int64_t k, int64_t start,
            int64_t slices, int64_t* out) {
  if (slices == 1) return sample_items(x, batch, n, dim, k, start, out);
  const int64_t units = batch * slices;
  std::vector<Slice<scalar_t>> parts(units);
  std::vector<double> value(units);
  std::vector<int64_t> index(units), cur(batch, start);
  auto item = [&](int64_t u) { return x + (u / slices) * n * dim; };
  at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t r = u % slices;
      parts[u].load(item(u), n * r / slices, n * (r + 1) / slices, dim);
    }
  });
  for (int64_t b = 0; b < batch; ++b) out[b * k] = start;
  for (int64_t t = 1; t < k; ++t) {
    at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u)
        parts[u].step(item(u), dim, cur[u / slices], t == 1, k - 1 - t, &value[u], &index[u]);
    });
    for (int64_t b = 0; b < batch; ++b) {
      double best = 0.0;
      int64_t pick = 0;
      for (int64_t r = 0; r < slices; ++r) {  // strict '>': the first slice wins ties
        if (value[b * slices + r] > best) {
          best = value[b * slices + r];
          pick = index[b * slices + r];
        }
      }
      cur[b] = pick;
      out[b * k + t] = pick;
    }
  }
}

at::Tensor fps_cpu(const at::Tensor& points, int64_t num_samples, int64_t start_idx,
                   int64_t slices) {
  TORCH_CHECK(points.device().is_cpu(), "cast_mm::fps_cpu expects a CPU tensor, got one on ",
              points.device());
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
              "cast_mm::fps_cpu expects float32 or float64 points, got ", points.scalar_type());
  TORCH_CHECK(points.dim() == 3, "cast_mm::fps_cpu expects points of shape (B, N, C), got ",
              points.sizes());
  const int64_t batch = points.size(0), n = points.size(1), dim = points.size(2);
  TORCH_CHECK(num_samples >= 1, "cast_mm::fps_cpu: num_samples must be >= 1, got ",
              num_samples);
  TORCH_CHECK(0 <= start_idx && start_idx < n, "cast_mm::fps_cpu: start_idx ", start_idx,
              " is outside [0, ", n, ")");
  TORCH_CHECK(slices >= 1, "cast_mm::fps_cpu: slices must be >= 1, got ", slices);
  slices = std::min(slices, std::max<int64_t>(n, 1));
  const at::Tensor x = points.contiguous();
  at::Tensor out = at::empty({batch, num_samples}, points.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fps_cpu", [&] {
    sample<scalar_t>(x.data_ptr<scalar_t>(), batch, n, dim, num_samples, start_idx, slices,
                     out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(cast_mm, m) {
  m.def("fps_cpu(Tensor points, int num_samples, int start_idx, int slices) -> Tensor");
}

TORCH_LIBRARY_IMPL(cast_mm, CPU, m) { m.impl("fps_cpu", &fps_cpu); }

}  // namespace cast_mm
