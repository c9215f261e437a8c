// Dropout whose mask is a hash of (seed, element index) on CPU: cast_mm::hashed_dropout_cpu.
//
// Element i (row-major) is kept when the top 32 bits of SplitMix64's output function of
// i * 0x9E3779B97F4A7C15 + seed are below `threshold`; kept elements are multiplied by `scale`.
// cast_mm/ops/hashed_dropout.py evaluates the same hash with int64 tensor operations on any
// device; the outputs are bitwise equal.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>

namespace cast_mm {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CAST_MM_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define CAST_MM_VECTOR_CLONES
#endif

inline uint64_t keep_bits(uint64_t i, uint64_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ULL + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) >> 32;
}

CAST_MM_VECTOR_CLONES
void dropout_f32(const float* x, float* out, int64_t begin, int64_t end, uint64_t seed,
                 uint64_t threshold, float scale) {
  for (int64_t i = begin; i < end; ++i)
    out[i] = keep_bits(static_cast<uint64_t>(i), seed) < threshold ? x[i] * scale : 0.0f;
}

CAST_MM_VECTOR_CLONES
void dropout_f64(const double* x, double* out, int64_t begin, int64_t end, uint64_t seed,
                 uint64_t threshold, double scale) {
  for (int64_t i = begin; i < end; ++i)
    out[i] = keep_bits(static_cast<uint64_t>(i), seed) < threshold ? x[i] * scale : 0.0;
}

at::Tensor hashed_dropout_cpu(const at::Tensor& x, int64_t seed, int64_t threshold,
                              double scale) {
  TORCH_CHECK(x.device().is_cpu(), "cast_mm::hashed_dropout_cpu expects a CPU tensor, got one on ",
              x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "cast_mm::hashed_dropout_cpu expects float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(0 <= threshold && threshold <= (int64_t{1} << 32),
              "cast_mm::hashed_dropout_cpu: threshold must be in [0, 2^32], got ", threshold);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  const uint64_t useed = static_cast<uint64_t>(seed), uthreshold = static_cast<uint64_t>(threshold);
  const int64_t numel = input.numel();
  constexpr int64_t kGrain = 1 << 16;
  if (input.scalar_type() == at::kFloat) {
    const float* src = input.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, numel, kGrain, [&](int64_t begin, int64_t end) {
      dropout_f32(src, dst, begin, end, useed, uthreshold, static_cast<float>(scale));
    });
  } else {
    const double* src = input.data_ptr<double>();
    double* dst = out.data_ptr<double>();
    at::parallel_for(0, numel, kGrain, [&](int64_t begin, int64_t end) {
      dropout_f64(src, dst, begin, end, useed, uthreshold, scale);
    });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(cast_mm, m) {
  m.def("hashed_dropout_cpu(Tensor x, int seed, int threshold, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(cast_mm, CPU, m) { m.impl("hashed_dropout_cpu", &hashed_dropout_cpu); }

}  // namespace cast_mm
