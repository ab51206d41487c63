// The CPU kernels' layer norm of one row without its scale: the multi-head norm of one head (the
// fused layer steps, the mLSTM output gate).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// The mean of n features x (any element type, summed in T) and 1 / sqrt(var + eps), var their
// biased variance: two passes, so that the variance suffers no cancellation, and the mean summed
// relative to x[0], so that equal features give their value exactly (deviations of 0, not roundings
// that 1 / sqrt(eps) would amplify).
template <typename T>
struct FeatureStats {
  T mean, rstd;
};
template <typename T, typename S>
inline FeatureStats<T> feature_stats(const S* x, int64_t n, T eps) {
  const T shift = T(x[0]);
  T sum = 0;
  XLSTM_VECTOR_SUM(sum)
  for (int64_t j = 0; j < n; ++j) sum += T(x[j]) - shift;
  const T mean = shift + sum / T(n);
  T squares = 0;
  XLSTM_VECTOR_SUM(squares)
  for (int64_t j = 0; j < n; ++j) squares += (T(x[j]) - mean) * (T(x[j]) - mean);
  return {mean, T(1) / std::sqrt(squares / T(n) + eps)};
}

// x (n features) normalised in place: (x - mean) / sqrt(var + eps) (the multi-head norm of one
// head, before its scale).
template <typename T>
inline void normalise_features(T* x, int64_t n, T eps) {
  const FeatureStats<T> stats = feature_stats(x, n, eps);
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < n; ++j) x[j] = (x[j] - stats.mean) * stats.rstd;
}

}  // namespace xlstm
